"""Document state changes: issue, void, mark uncollectible, record payment, convert a proforma.

Each is one transaction that locks the document row, asks the domain state machine whether the move
is allowed, writes the new state, and appends the audit row and the outbox event alongside. Nothing
else ever changes an issued document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.context import load_customers, load_org
from fiscus.adapters.db.documents import (
    NewDocument,
    append_audit,
    append_outbox,
    audit_row,
    event_type,
    number_documents,
    outbox_row,
    persist_documents,
    stored_line_input,
)
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.documents import (
    ComputedDocument,
    DocumentAction,
    DocumentStatus,
    DocumentType,
    SettledLine,
    TaxBreakdownRow,
    transition,
)
from fiscus.domain.money import currency, from_minor
from fiscus.domain.periods import Period
from fiscus.domain.tax import TaxTreatment
from fiscus.services.common import get_scoped
from fiscus.services.payments import schedule_collection

STATE_KEYS = ("status", "number", "amount_paid_minor", "paid_at", "voided_at", "issue_date", "due_date")


def _state(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if row.get(k) is None else row[k] if isinstance(row[k], int | str) else str(row[k]))
        for k in STATE_KEYS
    }


def apply_document_action(
    conn: Connection,
    doc: dict[str, Any],
    action: DocumentAction,
    values: dict[str, Any],
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    doc_type = DocumentType(doc["type"])
    target = transition(doc_type, DocumentStatus(doc["status"]), action)
    values = {**values, "status": target.value, "updated_at": now}
    conn.execute(update(t.documents).where(t.documents.c.id == doc["id"]).values(**values))
    after = {**doc, **values}
    payload = {
        "id": doc["id"],
        "type": doc_type.value,
        "status": target.value,
        "number": after["number"],
        "customer_id": doc["customer_id"],
        "currency": doc["currency"],
        "total": str(from_minor(doc["total_minor"], currency(doc["currency"]))),
    }
    org_id = doc["organization_id"]
    append_audit(
        conn, [audit_row(org_id, "document", doc["id"], action.value, actor, now, _state(doc), _state(after))]
    )
    what = {
        "issue": "issued",
        "pay": "paid",
        "void": "voided",
        "mark_uncollectible": "marked_uncollectible",
        "convert": "converted",
    }[action.value]
    append_outbox(conn, [outbox_row(org_id, event_type(doc_type, what), "document", doc["id"], now, payload)])
    return after


def issue_document(db: Database, clock: Clock, org_id: int, document_id: int, *, actor: str = "cli") -> str:
    """Give a draft its legal number and freeze its seller and buyer; returns the number."""
    now = clock.now()
    with db.write() as conn:
        doc = get_scoped(conn, t.documents, org_id, document_id, lock=True)
        transition(DocumentType(doc["type"]), DocumentStatus(doc["status"]), DocumentAction.ISSUE)
        org = load_org(conn, org_id)
        customer = load_customers(conn, org_id, [doc["customer_id"]])[doc["customer_id"]]
        shell = NewDocument(
            org, customer, DocumentType(doc["type"]), _stored_computed(conn, doc), series=doc["series"]
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
    from fiscus.services.payments import refuse_while_card_payment_in_flight

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


def mark_paid(db: Database, clock: Clock, org_id: int, document_id: int, *, actor: str = "cli") -> int:
    """Record full payment received outside Fiscus (an external capture of what is due). Paying a
    proforma converts it into a final invoice first (the invoice is what is paid); returns the id of the
    paid invoice."""
    from fiscus.services.payments import record_external_payment

    now = clock.now()
    with db.write() as conn:
        doc = get_scoped(conn, t.documents, org_id, document_id, lock=True)
        transition(DocumentType(doc["type"]), DocumentStatus(doc["status"]), _PAY_OR_CONVERT[doc["type"]])
        if doc["type"] == DocumentType.PROFORMA.value:
            invoice_id = convert_within(conn, clock, doc, actor, now)
            doc = get_scoped(conn, t.documents, org_id, invoice_id, lock=True)
        record_external_payment(conn, clock, doc, actor, now)
        return int(doc["id"])


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


def convert_within(
    conn: Connection, clock: Clock, proforma: dict[str, Any], actor: str, now: datetime
) -> int:
    org_id = proforma["organization_id"]
    apply_document_action(conn, proforma, DocumentAction.CONVERT, {}, actor, now)
    org = load_org(conn, org_id)
    customer = load_customers(conn, org_id, [proforma["customer_id"]])[proforma["customer_id"]]
    order_ids = list(
        conn.execute(
            select(t.document_orders.c.order_id).where(t.document_orders.c.document_id == proforma["id"])
        ).scalars()
    )
    period = (
        Period(proforma["period_start"], proforma["period_end"])
        if proforma["period_start"] and proforma["period_end"]
        else None
    )
    invoice = NewDocument(
        org=org,
        customer=customer,
        doc_type=DocumentType.INVOICE,
        computed=_stored_computed(conn, proforma),
        subscription_id=proforma["subscription_id"],
        period=period,
        order_ids=order_ids,
        converted_from_id=proforma["id"],
    )
    [invoice_id] = persist_documents(
        conn, [invoice], now=now, issue=True, actor=actor, issued_at_fn=clock.now
    )
    return invoice_id


def _stored_computed(conn: Connection, doc: dict[str, Any]) -> ComputedDocument:
    """A stored document's settled figures, reused as they are (never recomputed) when a proforma is
    converted, so the final invoice matches it to the minor unit."""
    cur = currency(doc["currency"])
    lines = []
    for r in conn.execute(
        select(t.document_lines)
        .where(t.document_lines.c.document_id == doc["id"])
        .order_by(t.document_lines.c.position)
    ).mappings():
        source = stored_line_input(r)
        lines.append(SettledLine(source, r["amount_minor"], r["tax_minor"]))
    breakdown = [
        TaxBreakdownRow(TaxTreatment(r["treatment"]), r["rate"], r["base_minor"], r["tax_minor"], r["note"])
        for r in conn.execute(
            select(t.document_taxes)
            .where(t.document_taxes.c.document_id == doc["id"])
            .order_by(t.document_taxes.c.id)
        ).mappings()
    ]
    return ComputedDocument(
        cur, lines, breakdown, doc["subtotal_minor"], doc["tax_minor"], doc["total_minor"], list(doc["notes"])
    )
