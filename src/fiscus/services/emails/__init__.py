"""Customers' emails: composing (`compose.py`, `labels.py`, `templates/`), sending from the email outbox
(`delivery.py`, wired by `outlet.py`), the time-based reminders (`scheduled.py`), settings and the
dunning policy (`settings.py`), suppressions (`suppressions.py`) and previews for the console
(`preview.py`). Queueing happens with the change itself: `adapters/db/email_queue.py`."""
