"""Background work that runs outside HTTP requests: fanning out events and delivering webhooks."""
