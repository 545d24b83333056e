"""Credit notes: correcting an issued invoice with a numbered document of its own series.

One transaction locks the invoice, settles the credit against what earlier credit notes left open,
issues the credit note through the same writer as every other document (gapless number, audit and
outbox rows), links it to the invoice and records what the credit does. Customer credit is a ledger
(`customer_credits`) that `apply_customer_credit` spends on the customer's next invoices.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.arrays import any_of
from fiscus.adapters.db.context import load_customers, load_org
from fiscus.adapters.db.documents import (
    NewDocument,
    append_audit,
    append_outbox,
    audit_row,
    outbox_row,
    persist_documents,
    stored_line_input,
)
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.credit_notes import (
    CreditableLine,
    CreditDisposition,
    CreditMode,
    CreditRequest,
    LineSelection,
    compute_credit_note,
)
from fiscus.domain.documents import (
    DocumentAction,
    DocumentStatus,
    DocumentType,
    SettledLine,
    transition,
)
from fiscus.domain.errors import FieldConflictError, InvalidFieldError, InvalidStateError
from fiscus.domain.money import Currency, currency, from_minor
from fiscus.domain.payments import amount_due
from fiscus.services.common import get_scoped
from fiscus.services.document_state import refuse_while_card_payment_in_flight, stored_period
from fiscus.services.wallets import credit_paid_topup

CREDITABLE_STATUSES = frozenset({DocumentStatus.OPEN, DocumentStatus.PAID, DocumentStatus.UNCOLLECTIBLE})
MAX_REASON = 1000


def issue_credit_note(
    db: Database,
    clock: Clock,
    org_id: int,
    invoice_id: int,
    *,
    mode: str,
    lines: Sequence[tuple[int, Decimal | None]] | None = None,
    amount: Decimal | None = None,
    reason: str,
    disposition: str,
    actor: str = "cli",
) -> int:
    """Issue a credit note against an issued invoice; returns the credit note's id.

    `reduce_due` lowers what is still owed and may not exceed it (an invoice settled by payments and
    credits becomes paid). `refund` and `customer_credit` give back money already paid and may not
    exceed it. `refund` through this call records the credit note for money given back outside Fiscus (a
    refund through the payment provider, `services.payments.refunds.refund_payment`, issues its own);
    `customer_credit` adds the total to the customer's balance.
    """
    credit_mode = _mode(mode)
    credit_disposition = _disposition(disposition)
    reason = reason.strip()
    if not reason:
        raise InvalidFieldError("reason", "must say why the invoice is corrected")
    if len(reason) > MAX_REASON:
        raise InvalidFieldError("reason", f"must be at most {MAX_REASON} characters")
    request = CreditRequest(
        credit_mode, [LineSelection(pos, qty) for pos, qty in (lines or [])], amount=amount
    )
    now = clock.now()
    with db.write() as conn:
        return credit_invoice(
            conn, clock, org_id, invoice_id, request, reason, credit_disposition, actor, now
        )


def credit_invoice(
    conn: Connection,
    clock: Clock,
    org_id: int,
    invoice_id: int,
    request: CreditRequest,
    reason: str,
    credit_disposition: CreditDisposition,
    actor: str,
    now: datetime,
) -> int:
    """`issue_credit_note` inside a caller's transaction (a refund issues its credit note with it)."""
    invoice = get_scoped(conn, t.documents, org_id, invoice_id, lock=True)
    if invoice["type"] != DocumentType.INVOICE.value:
        raise InvalidStateError(
            f"only an invoice can be credited, not a {invoice['type']}", type=invoice["type"]
        )
    if DocumentStatus(invoice["status"]) not in CREDITABLE_STATUSES:
        raise InvalidStateError(
            f"an invoice in status '{invoice['status']}' cannot be credited", status=invoice["status"]
        )
    cur = currency(invoice["currency"])
    previous = _previous_credit_notes(conn, org_id, invoice_id)
    note = compute_credit_note(cur, _creditable_lines(conn, invoice, previous), request)
    total = note.computed.total_minor
    _check_disposition(cur, invoice, previous, credit_disposition, total)
    if credit_disposition is CreditDisposition.REDUCE_DUE:
        refuse_while_card_payment_in_flight(
            conn, invoice, "the charge is for the amount due before the credit"
        )

    org = load_org(conn, org_id)
    customer = load_customers(conn, org_id, [invoice["customer_id"]])[invoice["customer_id"]]
    shell = NewDocument(
        org=org,
        customer=customer,
        doc_type=DocumentType.CREDIT_NOTE,
        computed=note.computed,
        subscription_id=invoice["subscription_id"],
        period=stored_period(invoice),
    )
    [note_id] = persist_documents(conn, [shell], now=now, issue=True, actor=actor, issued_at_fn=clock.now)
    _renumber_lines(conn, note_id, note.positions)
    link = {
        "corrected_document_id": invoice_id,
        "reason": reason,
        "credit_disposition": credit_disposition.value,
    }
    conn.execute(update(t.documents).where(t.documents.c.id == note_id).values(**link))

    credited = int(invoice["amount_credited_minor"]) + total
    conn.execute(
        update(t.documents)
        .where(t.documents.c.id == invoice_id)
        .values(amount_credited_minor=credited, updated_at=now)
    )
    note_number = conn.execute(select(t.documents.c.number).where(t.documents.c.id == note_id)).scalar_one()
    payload = {
        "id": invoice_id,
        "number": invoice["number"],
        "credit_note_id": note_id,
        "credit_note_number": note_number,
        "disposition": credit_disposition.value,
        "currency": cur.code,
        "amount": str(from_minor(total, cur)),
        "amount_credited": str(from_minor(credited, cur)),
    }
    audit = [
        audit_row(org_id, "document", note_id, "linked", actor, now, None, {**link, "number": note_number}),
        audit_row(
            org_id,
            "document",
            invoice_id,
            "credited",
            actor,
            now,
            {"amount_credited_minor": invoice["amount_credited_minor"]},
            {"amount_credited_minor": credited, "credit_note_id": note_id},
        ),
    ]
    outbox = [outbox_row(org_id, "invoice.credited", "document", invoice_id, now, payload)]
    if credit_disposition is CreditDisposition.CUSTOMER_CREDIT:
        conn.execute(
            insert(t.customer_credits).values(
                organization_id=org_id,
                customer_id=invoice["customer_id"],
                currency=cur.code,
                amount_minor=total,
                document_id=note_id,
                created_at=now,
            )
        )
        audit.append(
            audit_row(
                org_id,
                "customer",
                invoice["customer_id"],
                "credit_granted",
                actor,
                now,
                None,
                {"credit_note_id": note_id, "currency": cur.code, "amount_minor": total},
            )
        )
    append_audit(conn, audit)
    append_outbox(conn, outbox)
    if credit_disposition is CreditDisposition.REDUCE_DUE:
        _settle_if_covered(conn, {**invoice, "amount_credited_minor": credited}, actor, now)
    return note_id


def credit_disposition_for(
    conn: Connection, org_id: int, invoice_id: int, amount_minor: int
) -> CreditDisposition | None:
    """How a credit nobody asked for (a downgrade's unused time) can go on an invoice whole: as the
    customer's balance if that much was paid and not given back, else off what is still due; None if
    neither can take it."""
    invoice = get_scoped(conn, t.documents, org_id, invoice_id)
    if invoice["type"] != DocumentType.INVOICE.value or DocumentStatus(invoice["status"]) not in (
        CREDITABLE_STATUSES
    ):
        return None
    previous = _previous_credit_notes(conn, org_id, invoice_id)
    for disposition in (CreditDisposition.CUSTOMER_CREDIT, CreditDisposition.REDUCE_DUE):
        try:
            _check_disposition(currency(invoice["currency"]), invoice, previous, disposition, amount_minor)
        except InvalidFieldError:
            continue
        return disposition
    return None


def apply_customer_credit(
    conn: Connection, invoice_ids: Sequence[int], *, now: datetime, actor: str
) -> dict[int, int]:
    """Spend customers' credit balances on just-created open invoices in the same currency, oldest
    invoice first; returns invoice id → minor units applied.

    Runs inside the caller's transaction (the billing run's batch). Each customer's row is locked
    first, in id order, so two batches never spend one balance twice.
    """
    if not invoice_ids:
        return {}
    d = t.documents.c
    invoices = [
        dict(r)
        for r in conn.execute(
            select(t.documents)
            .where(
                any_of(conn, d.id, sorted(set(invoice_ids))),
                d.type == DocumentType.INVOICE.value,
                d.status == DocumentStatus.OPEN.value,
            )
            .order_by(d.id)
        ).mappings()
    ]
    if not invoices:
        return {}
    by_customer: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for inv in invoices:
        by_customer[(inv["organization_id"], inv["customer_id"])].append(inv)
    cc = t.customer_credits.c
    customer_ids = sorted({cid for _org, cid in by_customer})
    conn.execute(
        select(t.customers.c.id)
        .where(t.customers.c.id.in_(customer_ids))
        .order_by(t.customers.c.id)
        .with_for_update()
    ).all()
    balances: dict[tuple[int, int, str], int] = {
        (r.organization_id, r.customer_id, r.currency): int(r.balance)
        for r in conn.execute(
            select(
                cc.organization_id, cc.customer_id, cc.currency, func.sum(cc.amount_minor).label("balance")
            )
            .where(cc.customer_id.in_(customer_ids))
            .group_by(cc.organization_id, cc.customer_id, cc.currency)
        )
    }
    applied: dict[int, int] = {}
    ledger: list[dict[str, Any]] = []
    audit: list[dict[str, Any]] = []
    outbox: list[dict[str, Any]] = []
    for (org_id, customer_id), members in sorted(by_customer.items()):
        for inv in members:
            key = (org_id, customer_id, inv["currency"])
            due = amount_due(
                inv["total_minor"],
                inv["amount_paid_minor"],
                inv["amount_refunded_minor"],
                inv["amount_credited_minor"],
            )
            take = min(balances.get(key, 0), due)
            if take <= 0:
                continue
            balances[key] -= take
            applied[inv["id"]] = take
            credited = inv["amount_credited_minor"] + take
            conn.execute(
                update(t.documents)
                .where(t.documents.c.id == inv["id"])
                .values(amount_credited_minor=credited, updated_at=now)
            )
            cur = currency(inv["currency"])
            ledger.append(
                {
                    "organization_id": org_id,
                    "customer_id": customer_id,
                    "currency": cur.code,
                    "amount_minor": -take,
                    "document_id": inv["id"],
                    "created_at": now,
                }
            )
            audit.append(
                audit_row(
                    org_id,
                    "document",
                    inv["id"],
                    "credit_applied",
                    actor,
                    now,
                    {"amount_credited_minor": inv["amount_credited_minor"]},
                    {"amount_credited_minor": credited},
                )
            )
            outbox.append(
                outbox_row(
                    org_id,
                    "invoice.credit_applied",
                    "document",
                    inv["id"],
                    now,
                    {
                        "id": inv["id"],
                        "number": inv["number"],
                        "customer_id": customer_id,
                        "currency": cur.code,
                        "amount": str(from_minor(take, cur)),
                        "amount_credited": str(from_minor(credited, cur)),
                    },
                )
            )
            inv["amount_credited_minor"] = credited
    if ledger:
        conn.execute(insert(t.customer_credits), ledger)
    append_audit(conn, audit)
    append_outbox(conn, outbox)
    for inv in invoices:
        if inv["id"] in applied:
            _settle_if_covered(conn, inv, actor, now)
    return applied


def customer_credit_balance(conn: Connection, org_id: int, customer_id: int, currency_code: str) -> int:
    """A customer's unspent credit in one currency, in minor units."""
    cc = t.customer_credits.c
    total = conn.execute(
        select(func.coalesce(func.sum(cc.amount_minor), 0)).where(
            cc.organization_id == org_id, cc.customer_id == customer_id, cc.currency == currency_code
        )
    ).scalar_one()
    return int(total)


def list_credit_notes(conn: Connection, org_id: int, invoice_id: int) -> list[int]:
    """Ids of the credit notes correcting an invoice, oldest first."""
    d = t.documents.c
    return [
        int(i)
        for i in conn.execute(
            select(d.id)
            .where(
                d.organization_id == org_id,
                d.corrected_document_id == invoice_id,
                d.type == DocumentType.CREDIT_NOTE.value,
            )
            .order_by(d.id)
        ).scalars()
    ]


def _mode(value: str) -> CreditMode:
    try:
        return CreditMode(value)
    except ValueError:
        raise InvalidFieldError("mode", "must be one of full, lines, amount") from None


def _disposition(value: str) -> CreditDisposition:
    try:
        return CreditDisposition(value)
    except ValueError:
        raise InvalidFieldError("disposition", "must be one of reduce_due, refund, customer_credit") from None


def _previous_credit_notes(conn: Connection, org_id: int, invoice_id: int) -> list[dict[str, Any]]:
    d = t.documents.c
    return [
        dict(r)
        for r in conn.execute(
            select(d.id, d.total_minor, d.credit_disposition).where(
                d.organization_id == org_id,
                d.corrected_document_id == invoice_id,
                d.type == DocumentType.CREDIT_NOTE.value,
                d.status != DocumentStatus.DRAFT.value,
            )
        ).mappings()
    ]


def _creditable_lines(
    conn: Connection, invoice: dict[str, Any], previous: list[dict[str, Any]]
) -> list[CreditableLine]:
    """The invoice's stored lines (never recomputed) with what earlier credit notes took from each."""
    dl = t.document_lines.c
    taken: dict[int, tuple[int, int]] = {}
    if previous:
        for position, amount_sum, tax_sum in conn.execute(
            select(dl.position, func.sum(dl.amount_minor), func.sum(dl.tax_minor))
            .where(dl.document_id.in_([p["id"] for p in previous]))
            .group_by(dl.position)
        ):
            taken[int(position)] = (int(amount_sum), int(tax_sum))
    x = t.document_taxes.c
    notes = {
        (treatment, Decimal(rate)): str(note)
        for treatment, rate, note in conn.execute(
            select(x.treatment, x.rate, x.note).where(x.document_id == invoice["id"])
        )
    }
    out = []
    for r in conn.execute(
        select(t.document_lines).where(dl.document_id == invoice["id"]).order_by(dl.position)
    ).mappings():
        source = stored_line_input(r, notes.get((r["tax_treatment"], Decimal(r["tax_rate"])), ""))
        amount, tax = taken.get(int(r["position"]), (0, 0))
        out.append(
            CreditableLine(
                int(r["position"]), SettledLine(source, r["amount_minor"], r["tax_minor"]), amount, tax
            )
        )
    return out


def _check_disposition(
    cur: Currency,
    invoice: dict[str, Any],
    previous: list[dict[str, Any]],
    disposition: CreditDisposition,
    total: int,
) -> None:
    if disposition is CreditDisposition.REDUCE_DUE:
        due = 0
        if invoice["status"] in (DocumentStatus.OPEN.value, DocumentStatus.UNCOLLECTIBLE.value):
            due = amount_due(
                invoice["total_minor"],
                invoice["amount_paid_minor"],
                invoice["amount_refunded_minor"],
                invoice["amount_credited_minor"],
            )
        limit, what = max(0, due), "the amount due"
    else:
        returned = sum(
            p["total_minor"]
            for p in previous
            if p["credit_disposition"]
            in (CreditDisposition.REFUND.value, CreditDisposition.CUSTOMER_CREDIT.value)
        )
        limit, what = invoice["amount_paid_minor"] - returned, "the amount paid and not yet given back"
    if total > limit:
        raise FieldConflictError(
            "disposition",
            f"{disposition.value}: the credit of {from_minor(total, cur)} {cur.code} exceeds {what} "
            f"({from_minor(max(0, limit), cur)} {cur.code})",
        )


def _renumber_lines(conn: Connection, note_id: int, positions: list[int]) -> None:
    """Store each credit-note line at the position of the invoice line it credits. Highest first:
    each line only moves up, so no two lines ever share a position mid-way."""
    dl = t.document_lines.c
    for index in range(len(positions), 0, -1):
        target = positions[index - 1]
        if target != index:
            conn.execute(
                update(t.document_lines)
                .where(dl.document_id == note_id, dl.position == index)
                .values(position=target)
            )


def _settle_if_covered(conn: Connection, invoice: dict[str, Any], actor: str, now: datetime) -> None:
    """An open or uncollectible invoice that payments and credits cover in full is paid."""
    status = DocumentStatus(invoice["status"])
    if status not in (DocumentStatus.OPEN, DocumentStatus.UNCOLLECTIBLE):
        return
    due = amount_due(
        invoice["total_minor"],
        invoice["amount_paid_minor"],
        invoice["amount_refunded_minor"],
        invoice["amount_credited_minor"],
    )
    if due > 0:
        return
    target = transition(DocumentType.INVOICE, status, DocumentAction.PAY)
    conn.execute(
        update(t.documents)
        .where(t.documents.c.id == invoice["id"])
        .values(status=target.value, paid_at=now, updated_at=now)
    )
    credit_paid_topup(conn, invoice, now)  # issue 17: a top-up covered by credit still credits its wallet
    org_id = invoice["organization_id"]
    cur = currency(invoice["currency"])
    payload = {
        "id": invoice["id"],
        "type": DocumentType.INVOICE.value,
        "status": target.value,
        "number": invoice["number"],
        "customer_id": invoice["customer_id"],
        "currency": cur.code,
        "total": str(from_minor(invoice["total_minor"], cur)),
    }
    append_audit(
        conn,
        [
            audit_row(
                org_id,
                "document",
                invoice["id"],
                DocumentAction.PAY.value,
                actor,
                now,
                {"status": status.value},
                {"status": target.value, "settled_by": "credit"},
            )
        ],
    )
    append_outbox(conn, [outbox_row(org_id, "invoice.paid", "document", invoice["id"], now, payload)])
