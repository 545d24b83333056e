"""Refunds: money captured for a document given back, newest capture first, in any number of partial
refunds; on a final invoice each goes with a credit note issued once the money has gone back."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import append_audit, audit_row
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.credit_notes import CreditDisposition, CreditMode, CreditRequest
from fiscus.domain.documents import DocumentType
from fiscus.domain.errors import FieldConflictError, InvalidFieldError, InvalidStateError
from fiscus.domain.money import currency, from_minor
from fiscus.domain.payments import (
    OutcomeUnknown,
    PaymentProvider,
    ProviderError,
    ProviderUnreachable,
    check_refund,
)
from fiscus.services.common import get_scoped
from fiscus.services.credit_notes import credit_invoice
from fiscus.services.document_state import locked_document
from fiscus.services.payments.attempts import payment_event, sum_amounts, touch_document


def refund_payment(
    db: Database,
    clock: Clock,
    provider: PaymentProvider,
    org_id: int,
    document_id: int,
    *,
    amount_minor: int | None = None,
    reason: str = "",
    actor: str = "api",
) -> list[int]:
    """Give back money captured for a document (all that is refundable by default), newest capture
    first; any number of partial refunds up to what was captured. On a final invoice each refund goes
    with a credit note issued when the money has gone back. Returns the refund ids."""
    now = clock.now()
    reason = reason.strip()[:1000]
    with db.write() as conn:
        doc = get_scoped(conn, t.documents, org_id, document_id, lock=True)
        planned = plan_refunds(conn, doc, amount_minor, provider.name, reason, actor, now)
    for refund_id, refund_key, charge_id, take in planned:
        send_refund(db, clock, provider, refund_id, refund_key, charge_id, take, actor)
    return [p[0] for p in planned]


def plan_refunds(
    conn: Connection,
    doc: dict[str, Any],
    amount_minor: int | None,
    provider_name: str,
    reason: str,
    actor: str,
    now: datetime,
) -> list[tuple[int, str, str, int]]:
    """Inside the caller's transaction, on a locked document: record pending refunds of what was captured
    by `provider_name` (all that is refundable when `amount_minor` is None), newest capture first; returns
    (refund id, key, charge id, amount) for `send_refund`."""
    org_id, document_id = doc["organization_id"], doc["id"]
    planned: list[tuple[int, str, str, int]] = []
    pc, pa = t.payment_captures.c, t.payment_attempts.c
    rows = conn.execute(
        select(pa.id, pa.idempotency_key, pa.provider_charge_id, pa.provider, func.sum(pc.amount_minor))
        .join(t.payment_captures, pc.attempt_id == pa.id)
        .where(pc.document_id == document_id, pc.status == "succeeded", pa.organization_id == org_id)
        .group_by(pa.id, pa.idempotency_key, pa.provider_charge_id, pa.provider)
        .order_by(pa.id.desc())
    ).all()
    refundable: list[tuple[int, str, str, int]] = []
    for attempt_id, key, charge_id, name, captured in rows:
        if name != provider_name:
            continue
        left = int(captured) - sum_amounts(conn, t.payment_refunds, attempt_id, ("succeeded", "pending"))
        if left > 0:
            refundable.append((attempt_id, key, charge_id, left))
    available = sum(r[3] for r in refundable)
    if amount_minor is None:
        amount_minor = available
        if amount_minor == 0:
            raise InvalidStateError(
                "nothing captured on this document is left to refund", status=doc["status"]
            )
    cur = currency(doc["currency"])
    if amount_minor > available:
        raise FieldConflictError(
            "amount",
            f"exceeds what can be refunded: {from_minor(available, cur)} {cur.code} "
            "captured and not yet refunded",
        )
    check_refund(amount_minor, available)
    remaining = amount_minor
    for attempt_id, key, charge_id, left in refundable:
        take = min(left, remaining)
        if take <= 0:
            break
        refund_key = f"{key}:refund:{secrets.token_urlsafe(9)}"
        refund_id = int(
            conn.execute(
                insert(t.payment_refunds)
                .values(
                    organization_id=org_id,
                    attempt_id=attempt_id,
                    document_id=document_id,
                    amount_minor=take,
                    status="pending",
                    idempotency_key=refund_key,
                    reason=reason,
                    created_at=now,
                )
                .returning(t.payment_refunds.c.id)
            ).scalar_one()
        )
        planned.append((refund_id, refund_key, charge_id, take))
        remaining -= take
    append_audit(
        conn,
        [
            audit_row(
                org_id,
                "document",
                document_id,
                "refund_requested",
                actor,
                now,
                None,
                {"amount_minor": amount_minor, "refund_ids": [p[0] for p in planned]},
            )
        ],
    )
    return planned


def send_refund(
    db: Database,
    clock: Clock,
    provider: PaymentProvider,
    refund_id: int,
    key: str,
    charge_id: str,
    amount_minor: int,
    actor: str,
) -> None:
    """Send one recorded refund (again: the key makes a re-send harmless) and settle it."""
    try:
        result = provider.refund(charge_id=charge_id, amount_minor=amount_minor, key=key)
    except (OutcomeUnknown, ProviderUnreachable):
        return
    except ProviderError as exc:
        with db.write() as conn:
            conn.execute(
                update(t.payment_refunds)
                .where(t.payment_refunds.c.id == refund_id, t.payment_refunds.c.status == "pending")
                .values(status="failed", error_message=exc.message[:500], settled_at=clock.now())
            )
        raise InvalidFieldError("amount", f"the payment provider refused the refund: {exc.message}") from None
    with db.write() as conn:
        settle_refund(conn, clock, refund_id, result.refund_id, actor, clock.now())


def settle_refund(
    conn: Connection, clock: Clock, refund_id: int, provider_refund_id: str | None, actor: str, now: datetime
) -> None:
    """A refund the provider made: record it, issue its credit note on a final invoice and raise
    what the document had refunded (once: a refund no longer pending is left alone)."""
    refund = dict(
        conn.execute(select(t.payment_refunds).where(t.payment_refunds.c.id == refund_id).with_for_update())
        .mappings()
        .one()
    )
    if refund["status"] != "pending":
        return
    doc = locked_document(conn, refund["document_id"])
    org_id = doc["organization_id"]
    cur = currency(doc["currency"])
    credit_note_id = None
    if doc["type"] == DocumentType.INVOICE.value:
        credit_note_id = credit_invoice(
            conn,
            clock,
            org_id,
            doc["id"],
            CreditRequest(CreditMode.AMOUNT, [], amount=from_minor(refund["amount_minor"], cur)),
            refund["reason"] or "refund of a payment",
            CreditDisposition.REFUND,
            actor,
            now,
        )
    conn.execute(
        update(t.payment_refunds)
        .where(t.payment_refunds.c.id == refund_id)
        .values(
            status="succeeded",
            provider_refund_id=provider_refund_id,
            credit_note_id=credit_note_id,
            settled_at=now,
        )
    )
    refunded = doc["amount_refunded_minor"] + refund["amount_minor"]
    touch_document(conn, doc["id"], now, amount_refunded_minor=refunded)
    append_audit(
        conn,
        [
            audit_row(
                org_id,
                "document",
                doc["id"],
                "refunded",
                actor,
                now,
                {"amount_refunded_minor": doc["amount_refunded_minor"]},
                {"amount_refunded_minor": refunded, "refund_id": refund_id, "credit_note_id": credit_note_id},
            )
        ],
    )
    attempt = (
        conn.execute(select(t.payment_attempts).where(t.payment_attempts.c.id == refund["attempt_id"]))
        .mappings()
        .one()
    )
    payment_event(
        conn,
        dict(attempt),
        "payment.refunded",
        now,
        amount_minor=refund["amount_minor"],
        refund_id=refund_id,
        credit_note_id=credit_note_id,
    )


def record_provider_refund(
    conn: Connection,
    clock: Clock,
    attempt: dict[str, Any],
    doc_id: int,
    amount_minor: int,
    provider_refund_id: str | None,
    key: str,
    actor: str,
) -> None:
    """Record a refund made at the provider (its dashboard), then settle it like one of Fiscus's."""
    refund_id = int(
        conn.execute(
            insert(t.payment_refunds)
            .values(
                organization_id=attempt["organization_id"],
                attempt_id=attempt["id"],
                document_id=doc_id,
                amount_minor=amount_minor,
                status="pending",
                idempotency_key=key,
                reason="refunded at the payment provider",
                created_at=clock.now(),
            )
            .returning(t.payment_refunds.c.id)
        ).scalar_one()
    )
    settle_refund(conn, clock, refund_id, provider_refund_id, actor, clock.now())
