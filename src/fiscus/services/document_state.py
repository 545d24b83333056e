"""A document's rules applied inside a caller's transaction: its state transitions (with their audit
row and outbox event), converting a proforma into its final invoice, what is still due on it, and the
guard that keeps anything else from deciding what it is owed while a card payment is in flight.

The document services, credit notes and payments all build on these; nothing here calls back up.
"""

from __future__ import annotations

from dataclasses import replace
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
    outbox_row,
    persist_documents,
    stored_line_input,
)
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
from fiscus.domain.errors import InvalidStateError
from fiscus.domain.money import currency, from_minor
from fiscus.domain.payments import IN_FLIGHT, AttemptStatus, amount_due
from fiscus.domain.periods import Period
from fiscus.domain.tax import TaxTreatment
from fiscus.services.discount_billing import return_discount_periods, stored_discounts
from fiscus.services.wallets import credit_paid_topup, restore_consumed

COLLECTABLE = frozenset({DocumentStatus.OPEN, DocumentStatus.UNCOLLECTIBLE})


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
    """Move a (locked) document by `action` if the state machine allows it, with `values` written
    alongside, its audit row and its outbox event; returns the row as it now is."""
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
        "discard": "voided",
    }[action.value]
    append_outbox(conn, [outbox_row(org_id, event_type(doc_type, what), "document", doc["id"], now, payload)])
    if action is DocumentAction.PAY and doc_type is DocumentType.INVOICE:
        credit_paid_topup(conn, after, now)  # issue 17: a paid top-up credits its wallet, here, once
    elif action is DocumentAction.VOID:
        restore_consumed(conn, after, now)  # issue 17: credit a voided document took goes back
    elif action is DocumentAction.DISCARD:  # a draft never reached anyone: all it took goes back
        restore_consumed(conn, after, now)
        return_discount_periods(conn, after, actor, now)
    return after


def convert_within(
    conn: Connection, clock: Clock, proforma: dict[str, Any], actor: str, now: datetime
) -> int:
    """Convert a (locked) issued proforma into its final invoice, issued with its own number and the
    proforma's figures and orders; returns the invoice's id."""
    org_id = proforma["organization_id"]
    apply_document_action(conn, proforma, DocumentAction.CONVERT, {}, actor, now)
    org = load_org(conn, org_id)
    customer = load_customers(conn, org_id, [proforma["customer_id"]])[proforma["customer_id"]]
    order_ids = list(
        conn.execute(
            select(t.document_orders.c.order_id).where(t.document_orders.c.document_id == proforma["id"])
        ).scalars()
    )
    invoice = NewDocument(
        org=org,
        customer=customer,
        doc_type=DocumentType.INVOICE,
        computed=stored_computed(conn, proforma),
        subscription_id=proforma["subscription_id"],
        period=stored_period(proforma),
        order_ids=order_ids,
        converted_from_id=proforma["id"],
    )
    [invoice_id] = persist_documents(
        conn, [invoice], now=now, issue=True, actor=actor, issued_at_fn=clock.now
    )
    return invoice_id


def locked_document(conn: Connection, document_id: int) -> dict[str, Any]:
    """A document row, locked for the rest of the caller's transaction."""
    row = conn.execute(select(t.documents).where(t.documents.c.id == document_id).with_for_update())
    return dict(row.mappings().one())


def stored_period(doc: dict[str, Any]) -> Period | None:
    """The period a stored document bills, if it bills one (a document of orders does not)."""
    if doc["period_start"] and doc["period_end"]:
        return Period(doc["period_start"], doc["period_end"])
    return None


def stored_computed(conn: Connection, doc: dict[str, Any]) -> ComputedDocument:
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
    discounts = stored_discounts(conn, doc["id"], len(lines))  # issue 17: the allowances go along
    if discounts:
        off = [sum(d.parts[i] for d in discounts) for i in range(len(lines))]
        lines = [replace(line, discount_minor=o) for line, o in zip(lines, off, strict=True)]
    return ComputedDocument(
        cur,
        lines,
        breakdown,
        doc["subtotal_minor"],
        doc["tax_minor"],
        doc["total_minor"],
        list(doc["notes"]),
        discounts,
    )


def due_of(doc: dict[str, Any]) -> int:
    """What is still owed on an open or uncollectible invoice or proforma (0 otherwise)."""
    if DocumentStatus(doc["status"]) not in COLLECTABLE or doc["type"] == DocumentType.CREDIT_NOTE.value:
        return 0
    return amount_due(
        doc["total_minor"],
        doc["amount_paid_minor"],
        doc["amount_refunded_minor"],
        doc["amount_credited_minor"],
    )


def refuse_while_card_payment_in_flight(conn: Connection, doc: dict[str, Any], why: str) -> None:
    """A charge that is pending, unknown or authorised may have moved (or holds) the customer's money:
    until it settles, nothing else may decide what the document is owed."""
    pa = t.payment_attempts.c
    in_flight = conn.execute(
        select(pa.status).where(pa.document_id == doc["id"], pa.status.in_([s.value for s in IN_FLIGHT]))
    ).scalar_one_or_none()
    if in_flight is not None:
        raise InvalidStateError(
            f"a card payment for this document is {in_flight} ({why}); wait until it has settled"
            + (" or void the authorisation" if in_flight == AttemptStatus.AUTHORIZED.value else ""),
            status=doc["status"],
        )
