"""Settlement: the one rule that moves Fiscus's records to what the provider says about a charge.

The call's own answer, a lookup by key (the janitor) and an inbound webhook all go through
`apply_charge_snapshot`, in any order: amounts only grow, and only the growth is recorded, as the
attempt's status, its captures (which pay the document) and its refunds (each with its credit note)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.domain.clock import Clock
from fiscus.domain.payments import UNSETTLED, AttemptStatus, ChargeSnapshot, attempt_status
from fiscus.services.payments.attempts import audit_attempt, payment_event, sum_amounts, touch_document
from fiscus.services.payments.receipts import payable_document, record_payment
from fiscus.services.payments.refunds import record_provider_refund, settle_refund
from fiscus.services.payments.retries import settle_failed


def apply_charge_snapshot(
    conn: Connection, clock: Clock, attempt: dict[str, Any], snapshot: ChargeSnapshot, actor: str
) -> None:
    """Bring one (locked) attempt and its document in line with what the provider says about the charge.
    Idempotent and order-independent: amounts only grow, and only the growth is recorded."""
    now = clock.now()
    current = AttemptStatus(attempt["status"])
    target = attempt_status(snapshot)
    attempt_id = attempt["id"]
    org_id = attempt["organization_id"]
    if attempt["provider_charge_id"] is None:
        conn.execute(
            update(t.payment_attempts)
            .where(t.payment_attempts.c.id == attempt_id)
            .values(provider_charge_id=snapshot.charge_id, updated_at=now)
        )
    elif attempt["provider_charge_id"] != snapshot.charge_id:
        return
    if target is AttemptStatus.FAILED:
        if current in UNSETTLED:
            settle_failed(
                conn, now, attempt, snapshot.decline_code or "declined", snapshot.message or "", actor
            )
        return
    if current in UNSETTLED or (
        current is AttemptStatus.AUTHORIZED and target is not AttemptStatus.AUTHORIZED
    ):
        authorized = min(snapshot.amount_minor, attempt["amount_minor"])
        conn.execute(
            update(t.payment_attempts)
            .where(t.payment_attempts.c.id == attempt_id)
            .values(status=target.value, authorized_minor=authorized, settled_at=now, updated_at=now)
        )
        audit_attempt(
            conn,
            org_id,
            attempt_id,
            target.value,
            actor,
            now,
            {"status": current.value},
            {"status": target.value, "provider_charge_id": snapshot.charge_id},
        )
        touch_document(conn, attempt["document_id"], now)
        attempt = {**attempt, "status": target.value, "authorized_minor": authorized}
        if target is AttemptStatus.AUTHORIZED:
            payment_event(conn, attempt, "payment.authorized", now)
    _follow_captures(conn, clock, attempt, snapshot.captured_minor, actor, now)
    _follow_refunds(conn, clock, attempt, snapshot, actor, now)


def _follow_captures(
    conn: Connection, clock: Clock, attempt: dict[str, Any], captured: int, actor: str, now: datetime
) -> None:
    pc = t.payment_captures.c
    recorded = sum_amounts(conn, t.payment_captures, attempt["id"], ("succeeded",))
    if captured <= recorded:
        return
    pending = (
        conn.execute(select(t.payment_captures).where(pc.attempt_id == attempt["id"], pc.status == "pending"))
        .mappings()
        .first()
    )
    delta = captured - recorded
    target_doc = payable_document(conn, clock, attempt, actor, now)
    if pending is not None:
        conn.execute(
            update(t.payment_captures)
            .where(pc.id == pending["id"])
            .values(status="succeeded", amount_minor=delta, document_id=target_doc["id"], settled_at=now)
        )
    else:
        conn.execute(
            insert(t.payment_captures).values(
                organization_id=attempt["organization_id"],
                attempt_id=attempt["id"],
                document_id=target_doc["id"],
                amount_minor=delta,
                status="succeeded",
                idempotency_key=f"{attempt['idempotency_key']}:capture:{recorded}",
                created_at=now,
                settled_at=now,
            )
        )
    if attempt["status"] != AttemptStatus.SUCCEEDED.value:
        conn.execute(
            update(t.payment_attempts)
            .where(t.payment_attempts.c.id == attempt["id"])
            .values(status=AttemptStatus.SUCCEEDED.value, settled_at=now, updated_at=now)
        )
    payment_event(conn, attempt, "payment.succeeded", now, amount_minor=delta)
    record_payment(conn, clock, target_doc, delta, actor, now)


def _follow_refunds(
    conn: Connection,
    clock: Clock,
    attempt: dict[str, Any],
    snapshot: ChargeSnapshot,
    actor: str,
    now: datetime,
) -> None:
    """Refunds the provider reports that Fiscus has not recorded (made in the provider's dashboard) are
    recorded, each with its credit note, like one Fiscus made. Refunds the provider lists are matched by
    id, or by the idempotency key of one of Fiscus's own still pending, so reports in any order record
    the same refunds; what the list leaves out of the total (a provider that lists none, or only the
    latest) is recorded as one refund."""
    recorded = sum_amounts(conn, t.payment_refunds, attempt["id"], ("succeeded", "pending"))
    if snapshot.refunded_minor <= recorded and not snapshot.refunds:
        return
    doc_id = conn.execute(
        select(t.payment_captures.c.document_id)
        .where(t.payment_captures.c.attempt_id == attempt["id"])
        .limit(1)
    ).scalar_one_or_none()
    if doc_id is None:
        return
    if snapshot.refunds:
        _follow_listed_refunds(conn, clock, attempt, doc_id, snapshot, actor, now)
        recorded = sum_amounts(conn, t.payment_refunds, attempt["id"], ("succeeded", "pending"))
    if snapshot.refunded_minor > recorded:
        key = f"{attempt['idempotency_key']}:external-refund:{recorded}"
        amount = snapshot.refunded_minor - recorded
        record_provider_refund(conn, clock, attempt, doc_id, amount, None, key, actor)


def _follow_listed_refunds(
    conn: Connection,
    clock: Clock,
    attempt: dict[str, Any],
    doc_id: int,
    snapshot: ChargeSnapshot,
    actor: str,
    now: datetime,
) -> None:
    pr = t.payment_refunds.c
    lines = snapshot.refunds or ()
    ours = conn.execute(
        select(pr.id, pr.status, pr.amount_minor, pr.idempotency_key, pr.provider_refund_id).where(
            pr.attempt_id == attempt["id"]
        )
    ).all()
    by_id = {r.provider_refund_id: r for r in ours if r.provider_refund_id}
    by_key = {r.idempotency_key: r for r in ours}
    fresh = []
    for line in lines:
        mine = by_id.get(line.refund_id) or (by_key.get(line.reference) if line.reference else None)
        if mine is None:
            fresh.append(line)
        elif mine.status == "pending":
            settle_refund(conn, clock, mine.id, line.refund_id, actor, now)
    listed = {line.refund_id for line in lines}
    references = {line.reference for line in lines}
    unlisted = sum(
        r.amount_minor
        for r in ours
        if r.status == "succeeded"
        and r.provider_refund_id not in listed
        and r.idempotency_key not in references
    )
    known = sum(line.amount_minor for line in lines if line not in fresh)
    room = snapshot.refunded_minor - known - unlisted  # refunds once recorded from a total count too
    for line in fresh:
        if line.amount_minor > room:
            break
        key = f"{attempt['idempotency_key']}:refund:{line.refund_id}"
        record_provider_refund(conn, clock, attempt, doc_id, line.amount_minor, line.refund_id, key, actor)
        room -= line.amount_minor
