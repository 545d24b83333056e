"""Document state changes: issue, void, mark uncollectible, record payment, convert a proforma.

Each is one transaction that locks the document row, asks the domain state machine whether the move
is allowed, writes the new state, and appends the audit row and the outbox event alongside. The moves
themselves are `services.document_state`'s, which credit notes and payments apply inside their own
transactions; nothing else ever changes an issued document.
"""

from __future__ import annotations

from typing import Final

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.context import load_customers, load_org
from fiscus.adapters.db.documents import NewDocument, number_documents
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.documents import DocumentAction, DocumentStatus, DocumentType, transition
from fiscus.domain.errors import InvalidFieldError
from fiscus.services.common import get_scoped
from fiscus.services.document_state import (
    apply_document_action,
    convert_within,
    refuse_while_card_payment_in_flight,
    stored_computed,
)
from fiscus.services.payments.collection import schedule_collection
from fiscus.services.payments.receipts import record_external_payment


def issue_document(db: Database, clock: Clock, org_id: int, document_id: int, *, actor: str = "cli") -> str:
    """Give a draft its legal number and freeze its seller and buyer; returns the number."""
    now = clock.now()
    with db.write() as conn:
        doc = get_scoped(conn, t.documents, org_id, document_id, lock=True)
        transition(DocumentType(doc["type"]), DocumentStatus(doc["status"]), DocumentAction.ISSUE)
        org = load_org(conn, org_id)
        customer = load_customers(conn, org_id, [doc["customer_id"]])[doc["customer_id"]]
        shell = NewDocument(
            org, customer, DocumentType(doc["type"]), stored_computed(conn, doc), series=doc["series"]
        )
        n = number_documents(conn, [shell], clock.now)[0]
        after = apply_document_action(
            conn,
            doc,
            DocumentAction.ISSUE,
            {
                "sequence": n.sequence,
                "number": n.number,
                "issued_at": n.issued_at,
                "issue_date": n.issue_date,
                "due_date": n.due_date,
                "seller": org.seller_snapshot(),
                "buyer": customer.buyer_snapshot(),
            },
            actor,
            now,
        )
        schedule_collection(conn, [document_id], now)
    return str(after["number"])


def void_document(db: Database, clock: Clock, org_id: int, document_id: int, *, actor: str = "cli") -> None:
    now = clock.now()
    with db.write() as conn:
        doc = get_scoped(conn, t.documents, org_id, document_id, lock=True)
        refuse_while_card_payment_in_flight(conn, doc, "a void invoice must not keep the money")
        apply_document_action(conn, doc, DocumentAction.VOID, {"voided_at": now}, actor, now)


def mark_uncollectible(
    db: Database, clock: Clock, org_id: int, document_id: int, *, actor: str = "cli"
) -> None:
    now = clock.now()
    with db.write() as conn:
        doc = get_scoped(conn, t.documents, org_id, document_id, lock=True)
        apply_document_action(conn, doc, DocumentAction.MARK_UNCOLLECTIBLE, {}, actor, now)


def mark_paid(
    db: Database,
    clock: Clock,
    org_id: int,
    document_id: int,
    *,
    reference: str | None = None,
    actor: str = "cli",
) -> int:
    """Record full payment received outside Fiscus (an external capture of what is due), with the
    payment's own reference if given (stored stripped, at most 100 characters). Paying a proforma
    converts it into a final invoice first (the invoice is what is paid); returns the id of the paid
    invoice."""
    reference = _reference(reference)
    now = clock.now()
    with db.write() as conn:
        doc = get_scoped(conn, t.documents, org_id, document_id, lock=True)
        transition(DocumentType(doc["type"]), DocumentStatus(doc["status"]), _PAY_OR_CONVERT[doc["type"]])
        if doc["type"] == DocumentType.PROFORMA.value:
            invoice_id = convert_within(conn, clock, doc, actor, now)
            doc = get_scoped(conn, t.documents, org_id, invoice_id, lock=True)
        record_external_payment(conn, clock, doc, actor, now, reference)
        return int(doc["id"])


MAX_REFERENCE: Final = 100


def _reference(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if not text:
        raise InvalidFieldError("reference", "must not be blank")
    if len(text) > MAX_REFERENCE:
        raise InvalidFieldError("reference", f"must be at most {MAX_REFERENCE} characters")
    return text


_PAY_OR_CONVERT = {
    DocumentType.PROFORMA.value: DocumentAction.CONVERT,
    DocumentType.INVOICE.value: DocumentAction.PAY,
    DocumentType.CREDIT_NOTE.value: DocumentAction.PAY,
}


def convert_proforma(db: Database, clock: Clock, org_id: int, document_id: int, *, actor: str = "cli") -> int:
    """Turn an issued proforma into a final invoice with its own number; returns the invoice's id."""
    now = clock.now()
    with db.write() as conn:
        doc = get_scoped(conn, t.documents, org_id, document_id, lock=True)
        invoice_id = convert_within(conn, clock, doc, actor, now)
        schedule_collection(conn, [invoice_id], now)
        return invoice_id
