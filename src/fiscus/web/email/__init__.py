"""Pages for people that emails link to: unsubscribing from reminders."""
