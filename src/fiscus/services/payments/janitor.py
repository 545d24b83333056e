"""The janitor: settles what a timeout or a crash left unsettled by asking the provider, so nothing is
charged twice and nothing is marked paid without a capture."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.errors import InvalidFieldError, InvalidStateError
from fiscus.domain.payments import (
    UNSETTLED,
    AttemptStatus,
    OutcomeUnknown,
    PaymentProvider,
    ProviderUnreachable,
)
from fiscus.services.payments.attempts import locked_attempt
from fiscus.services.payments.captures import send_capture
from fiscus.services.payments.refunds import send_refund
from fiscus.services.payments.retries import settle_failed
from fiscus.services.payments.settlement import apply_charge_snapshot

NOT_PROCESSED_CODE = "not_processed"


SETTLE_GRACE = timedelta(seconds=60)
"""How long after its call an unsettled attempt is left alone: past it, no call can still be in flight
(client timeouts are seconds), so a provider with no charge for the key never received it."""


def settle_unknown(
    db: Database,
    clock: Clock,
    provider: PaymentProvider,
    *,
    grace: timedelta = SETTLE_GRACE,
    actor: str = "janitor",
) -> int:
    """The janitor: settle attempts left pending or unknown (a timeout, a crash) by asking the provider
    for the charge their key created, and re-send captures and refunds left pending (their keys make
    that harmless). Returns how many rows it settled."""
    cutoff = clock.now() - grace
    pa = t.payment_attempts.c
    with db.read() as conn:
        attempts = conn.execute(
            select(pa.id, pa.idempotency_key, pa.provider).where(
                pa.status.in_((AttemptStatus.PENDING.value, AttemptStatus.UNKNOWN.value)),
                pa.created_at <= cutoff,
            )
        ).all()
        captures = conn.execute(
            select(t.payment_captures.c.idempotency_key, t.payment_captures.c.amount_minor, pa.id)
            .join(t.payment_attempts, pa.id == t.payment_captures.c.attempt_id)
            .where(t.payment_captures.c.status == "pending", t.payment_captures.c.created_at <= cutoff)
        ).all()
        refunds = conn.execute(
            select(
                t.payment_refunds.c.id,
                t.payment_refunds.c.idempotency_key,
                t.payment_refunds.c.amount_minor,
                pa.provider_charge_id,
            )
            .join(t.payment_attempts, pa.id == t.payment_refunds.c.attempt_id)
            .where(t.payment_refunds.c.status == "pending", t.payment_refunds.c.created_at <= cutoff)
        ).all()
    settled = 0
    for attempt_id, key, provider_name in attempts:
        if provider_name != provider.name:
            continue
        try:
            snapshot = provider.find_charge(key)
        except ProviderUnreachable:
            return settled
        with db.write() as conn:
            attempt = locked_attempt(conn, attempt_id)
            if AttemptStatus(attempt["status"]) not in UNSETTLED:
                continue
            if snapshot is None:
                settle_failed(
                    conn,
                    clock.now(),
                    attempt,
                    NOT_PROCESSED_CODE,
                    "the payment provider never received the charge",
                    actor,
                )
            else:
                apply_charge_snapshot(conn, clock, attempt, snapshot, actor)
        settled += 1
    for key, amount, attempt_id in captures:
        with db.read() as conn:
            attempt = dict(
                conn.execute(select(t.payment_attempts).where(pa.id == attempt_id)).mappings().one()
            )
        try:
            send_capture(db, clock, provider, attempt, key, amount, actor)
            settled += 1
        except (OutcomeUnknown, InvalidStateError):
            continue
    for refund_id, key, amount, charge_id in refunds:
        try:
            send_refund(db, clock, provider, refund_id, key, charge_id, amount, actor)
            settled += 1
        except InvalidFieldError:
            continue
    return settled
