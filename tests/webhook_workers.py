"""Webhook worker code that runs in child processes of the crash test (importable by spawn)."""

from __future__ import annotations

from datetime import datetime

from fiscus.adapters.db.engine import Database
from fiscus.adapters.webhooks.sender import WebhookSender
from fiscus.domain.clock import FixedClock
from fiscus.worker.webhooks import deliver_due


def deliver_all(url: str, at: datetime, batch: int, concurrency: int) -> None:
    """Deliver everything due at `at` (a fixed instant, so the parent decides when locks expire)."""
    db = Database(url)
    clock = FixedClock(at)
    with WebhookSender() as sender:
        while deliver_due(db, clock, sender, limit=batch, allow_private=True, concurrency=concurrency):
            pass
    db.dispose()
