"""Money received for a document: the document it pays (a proforma becomes its final invoice on its
first payment), paid in full or partly, and payments received outside Fiscus recorded like captures."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import append_audit, audit_row
from fiscus.adapters.db.email_queue import queue_external_receipt
from fiscus.domain.clock import Clock
from fiscus.domain.documents import DocumentAction, DocumentStatus, DocumentType
from fiscus.domain.errors import InvalidStateError
from fiscus.domain.money import currency, from_minor
from fiscus.domain.payments import AttemptStatus, CaptureMode, Trigger, amount_due
from fiscus.services.document_state import (
    COLLECTABLE,
    apply_document_action,
    convert_within,
    due_of,
    locked_document,
    refuse_while_card_payment_in_flight,
)
from fiscus.services.payments.attempts import touch_document
from fiscus.services.payments.retries import subscription_recovered


def payable_document(
    conn: Connection, clock: Clock, attempt: dict[str, Any], actor: str, now: datetime
) -> dict[str, Any]:
    """The document money for this attempt pays: the attempt's invoice; for a proforma, the final invoice
    it converts into on its first payment (with its own number, linked to the proforma and its orders)."""
    doc = locked_document(conn, attempt["document_id"])
    if doc["type"] != DocumentType.PROFORMA.value:
        return doc
    invoice_id = conn.execute(
        select(t.documents.c.id).where(t.documents.c.converted_from_id == doc["id"])
    ).scalar_one_or_none()
    if invoice_id is None:
        invoice_id = convert_within(conn, clock, doc, actor, now)
    return locked_document(conn, invoice_id)


def record_payment(
    conn: Connection, clock: Clock, doc: dict[str, Any], amount_minor: int, actor: str, now: datetime
) -> None:
    """Money received for a (locked) document: raise what is paid; paid in full once what is kept and
    credited covers the total. A partial payment leaves it open with the remainder due."""
    paid = doc["amount_paid_minor"] + amount_minor
    status = DocumentStatus(doc["status"])
    due = amount_due(doc["total_minor"], paid, doc["amount_refunded_minor"], doc["amount_credited_minor"])
    if due == 0 and status in COLLECTABLE:
        apply_document_action(
            conn,
            doc,
            DocumentAction.PAY,
            {"amount_paid_minor": paid, "paid_at": now, "next_payment_attempt_at": None},
            actor,
            now,
        )
        subscription_recovered(conn, doc, actor, now)
        return
    touch_document(conn, doc["id"], now, amount_paid_minor=paid)
    append_audit(
        conn,
        [
            audit_row(
                doc["organization_id"],
                "document",
                doc["id"],
                "payment_recorded",
                actor,
                now,
                {"amount_paid_minor": doc["amount_paid_minor"]},
                {"amount_paid_minor": paid, "amount_due_minor": due},
            )
        ],
    )


def record_external_payment(
    conn: Connection,
    clock: Clock,
    doc: dict[str, Any],
    actor: str,
    now: datetime,
    reference: str | None = None,
) -> None:
    """A payment received outside Fiscus (bank transfer, cash) for everything due: recorded as an
    external attempt with its capture, so paid = Σ captures holds for every document. The operator's
    `reference` (a bank transfer's reference, a receipt number) is kept as the attempt's provider
    reference and in the audit trail, so the payment can be traced back to the statement."""
    due = due_of(doc)
    if due <= 0:
        raise InvalidStateError("nothing is due on this document", status=doc["status"])
    refuse_while_card_payment_in_flight(conn, doc, "recording a payment as well would collect twice")
    key = f"fiscus_ext_{secrets.token_urlsafe(18)}"
    attempt_id = int(
        conn.execute(
            insert(t.payment_attempts)
            .values(
                organization_id=doc["organization_id"],
                document_id=doc["id"],
                customer_id=doc["customer_id"],
                payment_method_id=None,
                currency=doc["currency"],
                amount_minor=due,
                capture_mode=CaptureMode.SALE.value,
                status=AttemptStatus.SUCCEEDED.value,
                idempotency_key=key,
                provider="external",
                provider_charge_id=reference,
                authorized_minor=due,
                trigger=Trigger.MANUAL.value,
                created_at=now,
                settled_at=now,
                updated_at=now,
            )
            .returning(t.payment_attempts.c.id)
        ).scalar_one()
    )
    conn.execute(
        insert(t.payment_captures).values(
            organization_id=doc["organization_id"],
            attempt_id=attempt_id,
            document_id=doc["id"],
            amount_minor=due,
            status="succeeded",
            idempotency_key=f"{key}:capture",
            created_at=now,
            settled_at=now,
        )
    )
    append_audit(
        conn,
        [
            audit_row(
                doc["organization_id"],
                "document",
                doc["id"],
                "external_payment",
                actor,
                now,
                None,
                {"attempt_id": attempt_id, "amount_minor": due, "reference": reference},
            )
        ],
    )
    record_payment(conn, clock, doc, due, actor, now)
    if doc["type"] != DocumentType.CREDIT_NOTE.value:  # a credit note is paid to the customer, not by them
        cur = currency(doc["currency"])
        queue_external_receipt(conn, now, doc, attempt_id, str(from_minor(due, cur)), cur.code)
