"""Cancelling a subscription now when the billing run has already issued a document for a later period
(it bills in advance, and `fiscus bill --at` may bill ahead of now).

The rule, per document whose period starts at or after the cancellation:

* a draft (no number yet) is discarded: it becomes void without ever getting a number (the state
  machine's `discard`), and gives back the promotional credit and the discount periods it took;
* with the organisation's `cancel_issued_ahead` = `void`, an open invoice or proforma is voided when
  nothing was paid on it and no card payment is in flight (a void document must not keep money);
* otherwise an invoice gets a full credit note: what is still due is reduced to nothing, what was paid
  becomes the customer's credit (applied by the billing run to the next invoice; refund it through the
  payment endpoints if the customer wants the money back);
* a proforma cannot be credited: it is voided when nothing was paid and no card payment is in flight,
  and the cancellation is refused otherwise (a paid proforma has already become an invoice).

All of it happens in the cancellation's transaction, each document with its own audit row and event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Connection, select

from fiscus.adapters.db import tables as t
from fiscus.domain.clock import Clock
from fiscus.domain.credit_notes import CreditDisposition, CreditMode, CreditRequest
from fiscus.domain.documents import DocumentAction, DocumentStatus, DocumentType
from fiscus.domain.errors import InvalidStateError
from fiscus.domain.money import currency, from_minor
from fiscus.domain.payments import IN_FLIGHT
from fiscus.services.credit_notes import credit_invoice
from fiscus.services.document_state import apply_document_action, due_of

VOID: Final = "void"
CREDIT_NOTE: Final = "credit_note"
REASON: Final = "Subscription cancelled before this period began"


@dataclass(frozen=True, slots=True)
class AheadOutcome:
    """What cancelling did to one document issued for a later period."""

    document_id: int
    number: str | None
    outcome: str  # "voided" | "credited"
    credit_note_ids: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "number": self.number,
            "outcome": self.outcome,
            "credit_note_ids": self.credit_note_ids,
        }


def _in_flight(conn: Connection, document_id: int) -> bool:
    pa = t.payment_attempts.c
    return (
        conn.execute(
            select(pa.id).where(pa.document_id == document_id, pa.status.in_([s.value for s in IN_FLIGHT]))
        ).first()
        is not None
    )


def settle_issued_ahead(
    conn: Connection, clock: Clock, sub: dict[str, Any], at: datetime, actor: str, now: datetime
) -> list[AheadOutcome]:
    """Void or credit every document of `sub` for a period starting at or after `at` (see the module)."""
    d = t.documents.c
    org_id = sub["organization_id"]
    policy = conn.execute(
        select(t.organizations.c.cancel_issued_ahead).where(t.organizations.c.id == org_id)
    ).scalar_one()
    rows = conn.execute(
        select(t.documents)
        .where(
            d.organization_id == org_id,
            d.subscription_id == sub["id"],
            d.period_start >= at,
            d.type.in_((DocumentType.INVOICE.value, DocumentType.PROFORMA.value)),
            d.status.in_((DocumentStatus.DRAFT.value, DocumentStatus.OPEN.value, DocumentStatus.PAID.value)),
        )
        .order_by(d.period_start, d.id)
        .with_for_update()
    ).mappings()
    outcomes = []
    for doc in [dict(r) for r in rows]:
        outcomes.append(_settle_one(conn, clock, doc, policy, actor, now))
    return outcomes


def _settle_one(
    conn: Connection, clock: Clock, doc: dict[str, Any], policy: str, actor: str, now: datetime
) -> AheadOutcome:
    status = DocumentStatus(doc["status"])
    voidable = (
        status is DocumentStatus.OPEN and doc["amount_paid_minor"] == 0 and not _in_flight(conn, doc["id"])
    )
    is_proforma = doc["type"] == DocumentType.PROFORMA.value
    if status is DocumentStatus.DRAFT:  # no number, never sent: discarded (void unnumbered), not voided
        values = {"voided_at": now, "next_payment_attempt_at": None}
        apply_document_action(conn, doc, DocumentAction.DISCARD, values, actor, now)
        return AheadOutcome(doc["id"], doc["number"], "voided")
    if voidable and (policy == VOID or is_proforma):
        values = {"voided_at": now, "next_payment_attempt_at": None}
        apply_document_action(conn, doc, DocumentAction.VOID, values, actor, now)
        return AheadOutcome(doc["id"], doc["number"], "voided")
    if is_proforma:
        raise InvalidStateError(
            f"proforma {doc['number']} for a later period has a card payment in flight or was paid; "
            "wait until the payment has settled, then cancel",
            status=doc["status"],
        )
    cur = currency(doc["currency"])
    due = due_of(doc)
    kept = doc["amount_paid_minor"] - doc["amount_refunded_minor"]
    notes: list[int] = []
    for amount, disposition in (
        (due, CreditDisposition.REDUCE_DUE),
        (kept, CreditDisposition.CUSTOMER_CREDIT),
    ):
        if amount <= 0:
            continue
        request = CreditRequest(CreditMode.AMOUNT, amount=Decimal(from_minor(amount, cur)))
        notes.append(
            credit_invoice(
                conn, clock, doc["organization_id"], doc["id"], request, REASON, disposition, actor, now
            )
        )
    if doc["next_payment_attempt_at"] is not None:
        conn.execute(
            t.documents.update().where(t.documents.c.id == doc["id"]).values(next_payment_attempt_at=None)
        )
    return AheadOutcome(doc["id"], doc["number"], "credited", notes)
