"""Inbound provider events (webhooks), applied once each through the settlement rule."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.payments import InboundEvent
from fiscus.services.payments.attempts import locked_attempt
from fiscus.services.payments.settlement import apply_charge_snapshot


def handle_provider_event(db: Database, clock: Clock, provider_name: str, event: InboundEvent) -> bool:
    """Apply a verified provider webhook. Each event id is applied once (a replay is acknowledged and
    ignored); the event's charge snapshot decides, so events may come in any order. Returns whether it
    was new."""
    now = clock.now()
    with db.write() as conn:
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(t.inbound_events).values(
                        provider=provider_name, event_id=event.event_id, type=event.type, received_at=now
                    )
                )
        except IntegrityError:
            return False
        pa = t.payment_attempts.c
        attempt_id = conn.execute(
            select(pa.id).where(pa.provider == provider_name, pa.provider_charge_id == event.charge.charge_id)
        ).scalar_one_or_none()
        if attempt_id is None and event.charge.reference:
            attempt_id = conn.execute(
                select(pa.id).where(
                    pa.provider == provider_name, pa.idempotency_key == event.charge.reference
                )
            ).scalar_one_or_none()
        if attempt_id is None:
            return True
        attempt = locked_attempt(conn, attempt_id)
        apply_charge_snapshot(conn, clock, attempt, event.charge, "provider")
    return True
