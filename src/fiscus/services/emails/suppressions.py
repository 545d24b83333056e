"""Addresses an organisation no longer writes to: unsubscribed from reminders (by the customer) or
bounced (by the mail system, recorded by `delivery.py`)."""

from __future__ import annotations

from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql, sqlite

from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_email import email_outbox, email_suppressions
from fiscus.domain.clock import Clock
from fiscus.domain.email import TRANSACTIONAL


def unsubscribe(db: Database, clock: Clock, org_id: int, address: str) -> None:
    """Stop reminders to `address` from this organisation, queued ones included; idempotent."""
    e = email_outbox.c
    with db.write() as conn:
        now = clock.now()
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(email_suppressions)
            .values(organization_id=org_id, address=address.lower(), reason="unsubscribed", created_at=now)
            .on_conflict_do_nothing(index_elements=["organization_id", "address", "reason"])
        )
        conn.execute(
            update(email_outbox)
            .where(
                e.organization_id == org_id,
                func.lower(e.recipient) == address.lower(),
                e.status == "queued",
                e.kind.not_in([k.value for k in TRANSACTIONAL]),
            )
            .values(status="suppressed", updated_at=now)
        )
