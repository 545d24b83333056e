"""Bought credit (issue 17, ADR 0009): top-up invoices, paid credit spent on later invoices after tax,
and refunds of what is left of it.

A top-up is an invoice of its own, taxed when it is issued (EU: a payment on account is taxed when
received, Art. 65 Directive 2006/112/EC); its single "Prepaid credit" line is priced tax-inclusive, so
the wallet receives exactly the invoice's total once it is paid (`wallets.credit_paid_topup`, called
from the payment's transaction). A later invoice is not taxed again: the paid credit comes off what is
due, like a payment (EN 16931 BT-113 "Paid amount", the document's `amount_credited`), never as an
allowance. Unused paid credit goes back through the refund service: a provider refund of the top-up's
payment and the credit note that goes with it, the wallet debited (ledger `refunded`) in the same
transaction as the refund is recorded; a refund the provider refuses gives the credit back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db.arrays import any_of
from fiscus.adapters.db.context import load_customers, load_org
from fiscus.adapters.db.documents import (
    NewDocument,
    append_audit,
    append_outbox,
    audit_row,
    outbox_row,
    persist_documents,
)
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.documents import DocumentStatus, DocumentType, LineInput, LineKind, compute_document
from fiscus.domain.errors import FieldConflictError, InvalidFieldError, InvalidStateError
from fiscus.domain.money import currency, from_minor
from fiscus.domain.payments import PaymentProvider, amount_due
from fiscus.domain.tax import TaxCategory, line_tax
from fiscus.services.common import get_scoped
from fiscus.services.credit_notes import _settle_if_covered
from fiscus.services.payments.collection import schedule_collection
from fiscus.services.payments.refunds import plan_refunds, send_refund
from fiscus.services.wallets import _debit, _ledger, _lock_wallets, _wallet

TOPUP_LINE = "Prepaid credit"


def create_topup(
    db: Database,
    clock: Clock,
    org_id: int,
    customer_id: int,
    *,
    currency_code: str,
    amount: Decimal,
    actor: str = "api",
) -> int:
    """Issue a top-up invoice of `amount` (tax included) in the customer's currency; paid, it credits
    the wallet with `amount`. Returns the invoice id."""
    now = clock.now()
    cur = currency(currency_code, "currency")
    if amount <= 0 or amount != amount.quantize(cur.quantum):
        raise InvalidFieldError("amount", f"must be greater than zero, in {cur.code}'s minor units")
    with db.write() as conn:
        row = get_scoped(conn, t.customers, org_id, customer_id)
        if row["currency"] != cur.code:
            raise FieldConflictError("currency", f"the customer is billed in {row['currency']}")
        org = load_org(conn, org_id)
        customer = load_customers(conn, org_id, [customer_id])[customer_id]
        line = LineInput(
            description=TOPUP_LINE,
            quantity=Decimal(1),
            unit_price=amount,
            tax=line_tax(TaxCategory.STANDARD, org.tax_party, customer.tax_party, org.rates),
            tax_inclusive=True,
            kind=LineKind.ORDER,
        )
        computed = compute_document(cur, [line], org.rounding)
        doc = NewDocument(org=org, customer=customer, doc_type=DocumentType.INVOICE, computed=computed)
        [doc_id] = persist_documents(conn, [doc], now=now, issue=True, actor=actor, issued_at_fn=clock.now)
        conn.execute(
            td.wallet_topups.insert().values(
                organization_id=org_id,
                customer_id=customer_id,
                currency=cur.code,
                document_id=doc_id,
                amount_minor=computed.total_minor,
                created_at=now,
            )
        )
        payload = {
            "customer_id": customer_id,
            "document_id": doc_id,
            "amount": str(amount),
            "currency": cur.code,
        }
        append_audit(
            conn, [audit_row(org_id, "document", doc_id, "topup_invoiced", actor, now, None, payload)]
        )
        append_outbox(conn, [outbox_row(org_id, "credits.topup_invoiced", "document", doc_id, now, payload)])
        schedule_collection(conn, [doc_id], now)
    return int(doc_id)


def _paid_grants(conn: Connection, customer_ids: Sequence[int]) -> dict[tuple[int, str], list[Any]]:
    """Usable paid grants per (customer, currency), oldest first, their wallets locked."""
    g, w = td.wallet_grants.c, td.wallets.c
    rows = conn.execute(
        select(td.wallet_grants, w.customer_id, w.currency)
        .join(td.wallets, w.id == g.wallet_id)
        .where(
            w.customer_id.in_(sorted(set(customer_ids))),
            g.kind == "paid",
            g.status == "active",
            g.remaining_minor > 0,
        )
        .order_by(g.id)
    ).all()
    _lock_wallets(conn, {r.wallet_id for r in rows})
    out: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for r in rows:
        out[(r.customer_id, r.currency)].append(r)
    return out


def has_paid_credit(conn: Connection, org_ids: set[int]) -> bool:
    """A cheap check, so a batch of organisations nobody bought credit from pays one lookup."""
    g = td.wallet_grants.c
    query = (
        select(g.id)
        .where(g.organization_id.in_(sorted(org_ids)), g.kind == "paid", g.status == "active")
        .limit(1)
    )
    return conn.execute(query).first() is not None


def apply_paid_credit(
    conn: Connection,
    invoice_ids: Sequence[int],
    *,
    now: datetime,
    actor: str,
    org_ids: set[int] | None = None,
) -> dict[int, int]:
    """Spend paid credit on just-issued open invoices (never top-ups), after tax: what is due falls by
    it (`amount_credited`, EN 16931 BT-113), each take a `consumed` ledger row naming the invoice; an
    invoice covered in full is paid. Runs in the caller's transaction. Returns invoice id → minor units.

    `org_ids` (the invoices' organisations, when the caller knows them) lets a batch of organisations
    nobody bought credit from skip reading the invoices back (the billing run, issue 18)."""
    if not invoice_ids or (org_ids is not None and not has_paid_credit(conn, org_ids)):
        return {}
    d, tu = t.documents.c, td.wallet_topups.c
    invoices = [
        dict(r)
        for r in conn.execute(
            select(t.documents)
            .where(
                any_of(conn, d.id, sorted(set(invoice_ids))),
                d.type == DocumentType.INVOICE.value,
                d.status == DocumentStatus.OPEN.value,
                d.total_minor > 0,
                d.id.not_in(select(tu.document_id)),
            )
            .order_by(d.id)
        ).mappings()
    ]
    if not invoices or not has_paid_credit(conn, {i["organization_id"] for i in invoices}):
        return {}
    grants = _paid_grants(conn, [i["customer_id"] for i in invoices])
    left = {r.id: int(r.remaining_minor) for rows in grants.values() for r in rows}
    applied: dict[int, int] = {}
    for inv in invoices:
        due = amount_due(
            inv["total_minor"],
            inv["amount_paid_minor"],
            inv["amount_refunded_minor"],
            inv["amount_credited_minor"],
        )
        cur = currency(inv["currency"])
        for r in grants.get((inv["customer_id"], cur.code), []):
            take = min(left[r.id], due)
            if take <= 0:
                continue
            _debit(conn, _Grant(r, left[r.id]), take, "consumed", inv["id"], now)
            left[r.id] -= take
            due -= take
            applied[inv["id"]] = applied.get(inv["id"], 0) + take
            payload = {"grant_id": r.id, "document_id": inv["id"], "amount_minor": take, "kind": "paid"}
            append_outbox(
                conn, [outbox_row(r.organization_id, "credits.consumed", "wallet", r.wallet_id, now, payload)]
            )
        take_all = applied.get(inv["id"], 0)
        if not take_all:
            continue
        credited = inv["amount_credited_minor"] + take_all
        conn.execute(
            update(t.documents)
            .where(d.id == inv["id"])
            .values(amount_credited_minor=credited, updated_at=now)
        )
        append_audit(
            conn,
            [
                audit_row(
                    inv["organization_id"],
                    "document",
                    inv["id"],
                    "prepaid_credit_applied",
                    actor,
                    now,
                    {"amount_credited_minor": inv["amount_credited_minor"]},
                    {"amount_credited_minor": credited, "prepaid": str(from_minor(take_all, cur))},
                )
            ],
        )
        inv["amount_credited_minor"] = credited
        _settle_if_covered(conn, inv, actor, now)
    return applied


class _Grant:
    """A grant row with its remaining amount as this transaction has it (what `_debit` reads)."""

    def __init__(self, row: Any, remaining: int) -> None:
        self.id = row.id
        self.wallet_id = row.wallet_id
        self.organization_id = row.organization_id
        self.remaining_minor = remaining


def refund_unused_credit(
    db: Database,
    clock: Clock,
    provider: PaymentProvider,
    org_id: int,
    customer_id: int,
    *,
    actor: str = "api",
) -> list[int]:
    """Refund the customer's unused paid credit: per top-up (newest first), what is left of its grant
    and still refundable at the provider; the wallet is debited (ledger `refunded`, naming the top-up)
    when the refund is recorded, and the refund settles with its credit note of the top-up invoice.
    Returns the refund ids."""
    now = clock.now()
    sent: list[tuple[Any, int, tuple[int, str, str, int]]] = []
    with db.write() as conn:
        customer = get_scoped(conn, t.customers, org_id, customer_id)
        wallet = _wallet(conn, org_id, customer_id, customer["currency"], now)
        g, tu = td.wallet_grants.c, td.wallet_topups.c
        rows = conn.execute(
            select(td.wallet_grants, tu.document_id)
            .join(td.wallet_topups, tu.grant_id == g.id)
            .where(g.wallet_id == wallet["id"], g.kind == "paid", g.status == "active", g.remaining_minor > 0)
            .order_by(g.id.desc())
        ).all()
        for r in rows:
            doc = get_scoped(conn, t.documents, org_id, r.document_id, lock=True)
            refundable = _refundable(conn, doc["id"], provider.name)
            take = min(int(r.remaining_minor), refundable)
            if take <= 0:
                continue
            _debit(conn, _Grant(r, int(r.remaining_minor)), take, "refunded", doc["id"], now)
            planned = plan_refunds(
                conn, doc, take, provider.name, "refund of unused prepaid credit", actor, now
            )
            sent += [(r, doc["id"], p) for p in planned]
        if not sent:
            raise InvalidStateError("the customer has no unused paid credit that can be refunded")
    for grant, doc_id, (refund_id, key, charge_id, take) in sent:
        try:
            send_refund(db, clock, provider, refund_id, key, charge_id, take, actor)
        except InvalidFieldError:  # the provider refused: the credit was not given back, so it stays
            with db.write() as conn:
                _give_back(conn, grant, doc_id, take, clock.now())
            raise
    return [p[0] for _g, _d, p in sent]


def _refundable(conn: Connection, document_id: int, provider_name: str) -> int:
    pc, pa, pr = t.payment_captures.c, t.payment_attempts.c, t.payment_refunds.c
    captured = conn.execute(
        select(pc.amount_minor)
        .join(t.payment_attempts, pa.id == pc.attempt_id)
        .where(pc.document_id == document_id, pc.status == "succeeded", pa.provider == provider_name)
    ).scalars()
    refunded = conn.execute(
        select(pr.amount_minor)
        .join(t.payment_attempts, pa.id == pr.attempt_id)
        .where(
            pr.document_id == document_id,
            pr.status.in_(("succeeded", "pending")),
            pa.provider == provider_name,
        )
    ).scalars()
    return sum(int(x) for x in captured) - sum(int(x) for x in refunded)


def _give_back(conn: Connection, grant: Any, document_id: int, amount: int, now: datetime) -> None:
    _lock_wallets(conn, {grant.wallet_id})
    w, g = td.wallets.c, td.wallet_grants.c
    conn.execute(
        update(td.wallets).where(w.id == grant.wallet_id).values(balance_minor=w.balance_minor + amount)
    )
    conn.execute(
        update(td.wallet_grants)
        .where(g.id == grant.id)
        .values(remaining_minor=g.remaining_minor + amount, status="active")
    )
    _ledger(conn, grant.organization_id, grant.wallet_id, grant.id, "restored", amount, document_id, now)


def paid_credit_preview(conn: Connection, customer_id: int, code: str, total_minor: int) -> int:
    """What paid credit would take off a document of `total_minor` (read only, for previews)."""
    g, w = td.wallet_grants.c, td.wallets.c
    balance = conn.execute(
        select(g.remaining_minor)
        .join(td.wallets, w.id == g.wallet_id)
        .where(w.customer_id == customer_id, w.currency == code, g.kind == "paid", g.status == "active")
    ).scalars()
    return max(0, min(sum(int(x) for x in balance), total_minor))
