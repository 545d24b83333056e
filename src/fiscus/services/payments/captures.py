"""Authorisations: captured fully or partly (once; the rest is released), or voided. A capture is
recorded before it is sent, so the janitor can send it again under the same key."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.errors import InvalidStateError
from fiscus.domain.payments import (
    AttemptStatus,
    OutcomeUnknown,
    PaymentProvider,
    ProviderError,
    ProviderUnreachable,
    check_capture,
)
from fiscus.services.common import get_scoped
from fiscus.services.payments.attempts import AttemptOutcome, attempt_outcome, locked_attempt
from fiscus.services.payments.settlement import apply_charge_snapshot


def capture_payment(
    db: Database,
    clock: Clock,
    provider: PaymentProvider,
    org_id: int,
    attempt_id: int,
    *,
    amount_minor: int | None = None,
    actor: str = "api",
) -> AttemptOutcome:
    """Capture an authorisation, fully or partly (once; the rest is released)."""
    now = clock.now()
    with db.write() as conn:
        attempt = get_scoped(conn, t.payment_attempts, org_id, attempt_id, lock=True)
        if attempt["status"] != AttemptStatus.AUTHORIZED.value:
            raise InvalidStateError(
                f"a payment in status '{attempt['status']}' cannot be captured", status=attempt["status"]
            )
        amount = check_capture(amount_minor, attempt["authorized_minor"])
        key = f"{attempt['idempotency_key']}:capture"
        existing = conn.execute(
            select(t.payment_captures.c.id).where(t.payment_captures.c.idempotency_key == key)
        ).scalar_one_or_none()
        if existing is None:
            conn.execute(
                insert(t.payment_captures).values(
                    organization_id=org_id,
                    attempt_id=attempt_id,
                    document_id=attempt["document_id"],
                    amount_minor=amount,
                    status="pending",
                    idempotency_key=key,
                    created_at=now,
                )
            )
        else:
            amount = conn.execute(
                select(t.payment_captures.c.amount_minor).where(t.payment_captures.c.id == existing)
            ).scalar_one()
    return send_capture(db, clock, provider, attempt, key, amount, actor)


def send_capture(
    db: Database,
    clock: Clock,
    provider: PaymentProvider,
    attempt: dict[str, Any],
    key: str,
    amount: int,
    actor: str,
) -> AttemptOutcome:
    """Send a recorded capture (again: its key makes a re-send harmless) and settle the attempt."""
    try:
        snapshot = provider.capture(charge_id=attempt["provider_charge_id"], amount_minor=amount, key=key)
    except (OutcomeUnknown, ProviderUnreachable) as exc:
        raise OutcomeUnknown(
            f"the capture's outcome is not known yet ({exc}); it is settled automatically"
        ) from None
    except ProviderError as exc:
        with db.write() as conn:
            conn.execute(
                update(t.payment_captures)
                .where(t.payment_captures.c.idempotency_key == key, t.payment_captures.c.status == "pending")
                .values(status="failed", settled_at=clock.now())
            )
        raise InvalidStateError(
            f"the payment provider refused the capture: {exc.message}", status=attempt["status"]
        ) from None
    with db.write() as conn:
        locked = locked_attempt(conn, attempt["id"])
        apply_charge_snapshot(conn, clock, locked, snapshot, actor)
        return attempt_outcome(conn, attempt["id"])


def void_payment(
    db: Database, clock: Clock, provider: PaymentProvider, org_id: int, attempt_id: int, *, actor: str = "api"
) -> AttemptOutcome:
    """Release an authorisation that will not be captured."""
    with db.read() as conn:
        attempt = get_scoped(conn, t.payment_attempts, org_id, attempt_id)
    if attempt["status"] != AttemptStatus.AUTHORIZED.value:
        raise InvalidStateError(
            f"a payment in status '{attempt['status']}' cannot be voided", status=attempt["status"]
        )
    try:
        snapshot = provider.void(
            charge_id=attempt["provider_charge_id"], key=f"{attempt['idempotency_key']}:void"
        )
    except ProviderError as exc:
        raise InvalidStateError(
            f"the payment provider refused the void: {exc.message}", status=attempt["status"]
        ) from None
    with db.write() as conn:
        locked = locked_attempt(conn, attempt_id)
        apply_charge_snapshot(conn, clock, locked, snapshot, actor)
        return attempt_outcome(conn, attempt_id)
