"""The billing run: every due subscription period and every pending order becomes a document, once.

Work is claimed in batches, one transaction per batch: `FOR UPDATE SKIP LOCKED` on PostgreSQL lets
several processes share the queue; on SQLite `BEGIN IMMEDIATE` serialises them. Each batch inserts
the documents, the period rows (unique per subscription and start) and advances the subscriptions in
the same transaction, so a crash at any point leaves either the whole batch or none of it, and a
restart carries on from where the last commit left off.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, func, insert, select, text, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.arrays import any_of, update_by_id
from fiscus.adapters.db.context import (
    CustomerContext,
    OrgContext,
    PriceContext,
    load_customers,
    load_orgs,
    load_prices,
)
from fiscus.adapters.db.documents import NewDocument, persist_documents
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.documents import DocumentType, LineInput, LineKind, compute_document, prorated_quantity
from fiscus.domain.errors import DomainError
from fiscus.domain.money import currency, from_minor
from fiscus.domain.periods import Interval
from fiscus.domain.subscriptions import BILLABLE_STATUSES, Schedule, SubscriptionStatus, due_periods
from fiscus.domain.tax import line_tax
from fiscus.services.common import get_scoped
from fiscus.services.credit_notes import apply_customer_credit
from fiscus.services.discount_billing import apply_discounts, expire_due
from fiscus.services.downgrade_credits import HeldCredits, hold_credits, issue_held_credits
from fiscus.services.payments.collection import planned_at_issue, settle_planned
from fiscus.services.usage_billing import bill_usage
from fiscus.services.usage_prices import usage_price_ids
from fiscus.services.wallet_topups import apply_paid_credit, paid_credit_preview

log = logging.getLogger(__name__)

DEFAULT_BATCH = 250
ACTOR = "system:billing-run"


@dataclass(slots=True)
class BillingRunSummary:
    run_id: int
    at: datetime
    documents: int = 0
    subscriptions: int = 0
    orders: int = 0
    failed_subscriptions: dict[int, str] = field(default_factory=dict)
    failed_orders: dict[int, str] = field(default_factory=dict)
    totals: dict[str, Decimal] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rate(self) -> float:  # float-ok: a throughput figure, not money
        return self.documents / self.seconds if self.seconds else 0.0


Progress = Callable[[int, int], None]
"""Called with (units done in this step, total units expected) after each committed batch."""


def count_due(db: Database, at: datetime, organization_id: int | None = None) -> tuple[int, int]:
    """How many subscriptions and orders are due at `at` (for progress bars and previews)."""
    s, o = t.subscriptions.c, t.orders.c
    with db.read() as conn:
        subs = (
            select(func.count())
            .select_from(t.subscriptions)
            .where(text(t.BILLABLE), s.next_period_start <= at)
        )
        orders = select(func.count()).select_from(t.orders).where(text(t.PENDING), o.created_at <= at)
        if organization_id is not None:
            subs = subs.where(s.organization_id == organization_id)
            orders = orders.where(o.organization_id == organization_id)
        return int(conn.execute(subs).scalar_one()), int(conn.execute(orders).scalar_one())


def run_billing(
    db: Database,
    clock: Clock,
    *,
    at: datetime | None = None,
    organization_id: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    actor: str = ACTOR,
    run_id: int | None = None,
) -> BillingRunSummary:
    """Bill everything due at `at` (default: now). Safe to run in several processes at once.

    Progress is written to the run's row in each batch's own transaction, so it is exact at any time.
    """
    at = at or clock.now()
    started = time.perf_counter()
    expire_due(db, clock.now(), organization_id)  # issue 17: coupons and credit past their dates
    due_subs, due_orders = count_due(db, at, organization_id)
    expected = due_subs + due_orders
    with db.write() as conn:
        if run_id is None:
            run_id = conn.execute(
                insert(t.billing_runs)
                .values(
                    organization_id=organization_id,
                    at=at,
                    status="running",
                    started_at=clock.now(),
                    totals={},
                    expected=expected,
                    requested_by=actor,
                )
                .returning(t.billing_runs.c.id)
            ).scalar_one()
        else:
            conn.execute(
                update(t.billing_runs).where(t.billing_runs.c.id == run_id).values(expected=expected)
            )
    summary = BillingRunSummary(run_id=run_id, at=at)
    totals_minor: dict[str, int] = defaultdict(int)
    for batch, counter in (
        (_bill_subscription_batch, "subscriptions_billed"),
        (_bill_order_batch, "orders_billed"),
    ):
        while True:
            with db.write() as conn:
                done, docs = batch(conn, clock, at, organization_id, batch_size, summary, run_id, actor)
                if done:
                    runs = t.billing_runs.c
                    conn.execute(
                        update(t.billing_runs)
                        .where(runs.id == run_id)
                        .values(
                            {
                                counter: runs[counter] + done,
                                "documents_created": runs.documents_created + len(docs),
                            }
                        )
                    )
            if not done:
                break
            if counter == "subscriptions_billed":
                summary.subscriptions += done
            else:
                summary.orders += done
            _add_totals(totals_minor, docs)
            summary.documents += len(docs)
            if progress:
                progress(done, expected)
    # Usage billed in arrears (services/usage_billing.py): ended periods past their grace window.
    usage_docs, usage_failed = bill_usage(
        db, clock, at, organization_id=organization_id, batch_size=batch_size, run_id=run_id, actor=actor
    )
    _add_totals(totals_minor, usage_docs)
    summary.documents += len(usage_docs)
    summary.failed_subscriptions.update(usage_failed)
    summary.totals = {code: from_minor(v, currency(code)) for code, v in sorted(totals_minor.items())}
    summary.seconds = time.perf_counter() - started
    with db.write() as conn:
        conn.execute(
            update(t.billing_runs)
            .where(t.billing_runs.c.id == run_id)
            .values(
                status="finished",
                finished_at=clock.now(),
                failures=len(summary.failed_subscriptions) + len(summary.failed_orders),
                totals={k: str(v) for k, v in summary.totals.items()},
            )
        )
    return summary


def _add_totals(acc: dict[str, int], docs: list[NewDocument]) -> None:
    for d in docs:
        acc[d.computed.currency.code] += d.computed.total_minor


def _claim(conn: Connection, query: Any, batch_size: int) -> list[dict[str, Any]]:
    return [
        dict(r) for r in conn.execute(query.limit(batch_size).with_for_update(skip_locked=True)).mappings()
    ]


def _billing_inputs(
    conn: Connection, org_id: int | None, sub_ids: list[int]
) -> tuple[dict[int, list[tuple[int, Decimal]]], dict[int, list[dict[str, Any]]], dict[int, PriceContext]]:
    """What billing the given subscriptions needs besides their rows: items (price, quantity) and
    unbilled pending items per subscription, and every price either names."""
    items: dict[int, list[tuple[int, Decimal]]] = defaultdict(list)
    si = t.subscription_items.c
    rows = conn.execute(
        select(si.subscription_id, si.price_id, si.quantity)
        .where(any_of(conn, si.subscription_id, sub_ids))
        .order_by(si.id)
    ).all()
    in_arrears = usage_price_ids(conn, {r.price_id for r in rows})  # billed by services/usage_billing.py
    for r in rows:
        if r.price_id not in in_arrears:
            items[r.subscription_id].append((r.price_id, r.quantity))
    pending: dict[int, list[dict[str, Any]]] = defaultdict(list)
    pi = t.pending_items.c
    for row in conn.execute(
        select(t.pending_items)
        .where(any_of(conn, pi.subscription_id, sub_ids), pi.document_id.is_(None))
        .order_by(pi.id)
    ).mappings():
        pending[row["subscription_id"]].append(dict(row))
    price_ids = {p for lst in items.values() for p, _q in lst} | {
        p["price_id"] for lst in pending.values() for p in lst
    }
    return items, pending, load_prices(conn, org_id, price_ids)


def _bill_subscription_batch(
    conn: Connection,
    clock: Clock,
    at: datetime,
    organization_id: int | None,
    batch_size: int,
    summary: BillingRunSummary,
    run_id: int,
    actor: str,
) -> tuple[int, list[NewDocument]]:
    s = t.subscriptions.c
    query = (
        select(t.subscriptions)
        .where(text(t.BILLABLE), s.next_period_start <= at)
        .order_by(s.next_period_start, s.id)
    )
    if organization_id is not None:
        query = query.where(s.organization_id == organization_id)
    if summary.failed_subscriptions:
        query = query.where(s.id.not_in(list(summary.failed_subscriptions)))
    subs = _claim(conn, query, batch_size)
    if not subs:
        return 0, []
    items, pending, prices = _billing_inputs(conn, None, [r["id"] for r in subs])
    orgs = load_orgs(conn, {r["organization_id"] for r in subs})
    customers = load_customers(conn, None, {r["customer_id"] for r in subs})
    docs: list[NewDocument] = []
    held: list[HeldCredits] = []
    updates: list[dict[str, Any]] = []
    for sub in subs:
        try:
            sub_docs, change, sub_held = _bill_one(
                sub,
                orgs[sub["organization_id"]],
                customers[sub["customer_id"]],
                items[sub["id"]],
                pending[sub["id"]],
                prices,
                at,
            )
        except DomainError as exc:
            summary.failed_subscriptions[sub["id"]] = f"{exc.code}: {exc}"
            log.warning("subscription %s not billed: %s", sub["id"], exc)
            continue
        docs.extend(sub_docs)
        held.extend(sub_held)
        updates.append(change)
    now = clock.now()
    _persist_split(conn, docs, now, clock, actor, run_id, held)
    update_by_id(conn, t.subscriptions, updates, id_key="sid", updated_at=now)
    return len(updates), docs


def _persist_split(
    conn: Connection,
    docs: list[NewDocument],
    now: datetime,
    clock: Clock,
    actor: str,
    run_id: int | None,
    held: Sequence[HeldCredits] = (),
) -> None:
    """Organisations that issue automatically get numbers now; the others keep drafts to issue later.
    Held proration credits become credit notes first, so the customer's credit can pay the new
    documents."""
    for h in held:
        issue_held_credits(conn, clock, h, actor, now)
    credit = apply_discounts(conn, docs, now)  # issue 17: coupons, codes, promotional credit; before tax
    auto = [d for d in docs if d.org.row["auto_issue"]]
    manual = [d for d in docs if not d.org.row["auto_issue"]]
    planned = [planned_at_issue(d.org.row, d.doc_type.value, d.computed.total_minor, now) for d in auto]
    issued = persist_documents(
        conn,
        auto,
        now=now,
        issue=True,
        actor=actor,
        issued_at_fn=clock.now,
        billing_run_id=run_id,
        collect_at=planned,
    )
    drafts = persist_documents(conn, manual, now=now, issue=False, actor=actor, billing_run_id=run_id)
    credit.record(conn, [*zip(auto, issued, strict=True), *zip(manual, drafts, strict=True)], now)
    with_credit = _customers_with_credit(conn, {d.customer.id for d in auto})
    credited: set[int] = set()
    if with_credit:
        credited |= apply_customer_credit(
            conn,
            [i for i, d in zip(issued, auto, strict=True) if d.customer.id in with_credit],
            now=now,
            actor=actor,
        ).keys()
    # issue 17: bought credit, after tax
    credited |= apply_paid_credit(conn, issued, now=now, actor=actor, org_ids={d.org.id for d in auto}).keys()
    # Only credit changes a just-issued document's status, so only those it reached can need unplanning.
    settle_planned(
        conn, [i for i, at in zip(issued, planned, strict=True) if at is not None and i in credited]
    )


def _customers_with_credit(conn: Connection, customer_ids: set[int]) -> set[int]:
    """Customers holding credit (a cheap check, so a batch without any pays nothing for the feature)."""
    if not customer_ids:
        return set()
    cc = t.customer_credits.c
    return set(
        conn.execute(
            select(cc.customer_id).where(any_of(conn, cc.customer_id, sorted(customer_ids))).distinct()
        ).scalars()
    )


def _bill_one(
    sub: dict[str, Any],
    org: OrgContext,
    customer: CustomerContext,
    items: list[tuple[int, Decimal]],
    pending: list[dict[str, Any]],
    prices: dict[int, PriceContext],
    at: datetime,
) -> tuple[list[NewDocument], dict[str, Any], list[HeldCredits]]:
    """The documents for one subscription's due periods, and the subscription's new position."""
    schedule = Schedule(sub["billing_anchor"], Interval.parse(sub["interval"], sub["interval_count"]), org.tz)
    periods = due_periods(schedule, sub["next_period_start"], at, sub["cancel_at"])
    cur = currency(sub["currency"])
    doc_type = DocumentType(org.row["subscription_document"])
    docs: list[NewDocument] = []
    held: list[HeldCredits] = []
    for k, period in enumerate(periods):
        ratio = schedule.charge_ratio(period)
        lines = [
            _line(
                prices[price_id], qty, org, customer, ratio, LineKind.SUBSCRIPTION, period.start, period.end
            )
            for price_id, qty in items
        ]
        carried = pending if k == 0 else []
        if not lines and not carried:
            continue  # only usage prices: billed in arrears, no advance document
        for p in carried:
            price = prices[p["price_id"]]
            lines.append(
                _line(
                    price,
                    p["quantity"],
                    org,
                    customer,
                    Fraction(p["ratio"]),
                    LineKind.PRORATION,
                    p["period_start"],
                    p["period_end"],
                    sign=p["sign"],
                    description=p["description"],
                )
            )
        doc = NewDocument(
            org=org,
            customer=customer,
            doc_type=doc_type,
            computed=compute_document(cur, lines, org.rounding),
            subscription_id=sub["id"],
            period=period,
            billed_period=True,
            pending_item_ids=[p["id"] for p in carried],
        )
        docs.append(doc)
        if doc.computed.total_minor < 0 and org.row["auto_issue"]:
            held.append(hold_credits(doc, carried, lines, len(items), cur, org))
    next_start = periods[-1].end if periods else sub["next_period_start"]
    status = SubscriptionStatus(sub["status"])
    ended_at = sub["ended_at"]
    if status is SubscriptionStatus.TRIALING and periods:
        status = SubscriptionStatus.ACTIVE
    if sub["cancel_at"] is not None and next_start >= sub["cancel_at"]:
        status, ended_at = SubscriptionStatus.ENDED, sub["cancel_at"]
    change = {
        "sid": sub["id"],
        "next_period_start": next_start,
        "current_period_start": periods[-1].start if periods else sub["current_period_start"],
        "current_period_end": periods[-1].end if periods else sub["current_period_end"],
        "status": status.value,
        "ended_at": ended_at,
    }
    return docs, change, held


def _line(
    price: PriceContext,
    quantity: Decimal,
    org: OrgContext,
    customer: CustomerContext,
    ratio: Fraction,
    kind: LineKind,
    start: datetime | None,
    end: datetime | None,
    *,
    sign: int = 1,
    description: str | None = None,
    order_id: int | None = None,
) -> LineInput:
    return LineInput(
        description=description or price.description,
        quantity=prorated_quantity(quantity, ratio, credit=sign < 0),
        unit_price=price.unit_amount,
        tax=line_tax(price.tax_category, org.tax_party, customer.tax_party, org.rates),
        tax_inclusive=price.tax_inclusive,
        ratio=ratio,
        kind=kind,
        product_id=price.product_id,
        variant_id=price.variant_id,
        price_id=price.id,
        period_start=start,
        period_end=end,
        order_id=order_id,
    )


def _bill_order_batch(
    conn: Connection,
    clock: Clock,
    at: datetime,
    organization_id: int | None,
    batch_size: int,
    summary: BillingRunSummary,
    run_id: int,
    actor: str,
) -> tuple[int, list[NewDocument]]:
    o = t.orders.c
    query = select(t.orders).where(text(t.PENDING), o.created_at <= at).order_by(o.id)
    if organization_id is not None:
        query = query.where(o.organization_id == organization_id)
    if summary.failed_orders:
        query = query.where(o.id.not_in(list(summary.failed_orders)))
    orders = _claim(conn, query, batch_size)
    if not orders:
        return 0, []
    docs = build_order_documents(conn, orders, summary)
    now = clock.now()
    _persist_split(conn, docs, now, clock, actor, run_id)
    billed = [d.order_ids[0] for d in docs]
    if billed:
        conn.execute(update(t.orders).where(o.id.in_(billed)).values(status="billed", billed_at=now))
    return len(billed), docs


def build_order_documents(
    conn: Connection, orders: list[dict[str, Any]], summary: BillingRunSummary | None = None
) -> list[NewDocument]:
    """One document per order, typed by the organisation's `order_document` setting."""
    order_ids = [r["id"] for r in orders]
    items: dict[int, list[tuple[int, Decimal]]] = defaultdict(list)
    oi = t.order_items.c
    for r in conn.execute(
        select(oi.order_id, oi.price_id, oi.quantity).where(oi.order_id.in_(order_ids)).order_by(oi.id)
    ):
        items[r.order_id].append((r.price_id, r.quantity))
    prices = load_prices(conn, None, {p for lst in items.values() for p, _ in lst})
    orgs = load_orgs(conn, {r["organization_id"] for r in orders})
    customers = load_customers(conn, None, {r["customer_id"] for r in orders})
    docs = []
    for order in orders:
        org, customer = orgs[order["organization_id"]], customers[order["customer_id"]]
        try:
            lines = [
                _line(
                    prices[pid],
                    qty,
                    org,
                    customer,
                    Fraction(1),
                    LineKind.ORDER,
                    None,
                    None,
                    order_id=order["id"],
                )
                for pid, qty in items[order["id"]]
            ]
            computed = compute_document(currency(order["currency"]), lines, org.rounding)
        except DomainError as exc:
            if summary is None:
                raise
            summary.failed_orders[order["id"]] = f"{exc.code}: {exc}"
            continue
        docs.append(
            NewDocument(
                org=org,
                customer=customer,
                doc_type=DocumentType(org.row["order_document"]),
                computed=computed,
                order_ids=[order["id"]],
            )
        )
    return docs


@dataclass(frozen=True, slots=True)
class NextDocumentPreview:
    document: NewDocument | None
    period_start: datetime | None
    period_end: datetime | None
    prepaid_minor: int = 0  # paid wallet credit it would take after tax (issue 17, ADR 0009)


def preview_next_document(db: Database, org_id: int, subscription_id: int) -> NextDocumentPreview:
    """The document the next billing of a subscription would create, computed by the same code as the
    run (`_bill_one`) and written nowhere (Kill Bill's dry run, Stripe's upcoming invoice)."""
    with db.read() as conn:
        sub = get_scoped(conn, t.subscriptions, org_id, subscription_id)
        if SubscriptionStatus(sub["status"]) not in BILLABLE_STATUSES:
            return NextDocumentPreview(None, None, None)
        items, pending, prices = _billing_inputs(conn, org_id, [subscription_id])
        org = load_orgs(conn, [org_id])[org_id]
        customer = load_customers(conn, org_id, [sub["customer_id"]])[sub["customer_id"]]
        docs, _change, _held = _bill_one(
            sub,
            org,
            customer,
            items[subscription_id],
            pending[subscription_id],
            prices,
            sub["next_period_start"],
        )
        apply_discounts(conn, docs[:1], sub["next_period_start"], record=False)  # issue 17: its discounts
        if not docs:
            return NextDocumentPreview(None, None, None)
        doc = docs[0]
        c = doc.computed
        prepaid = 0
        if doc.doc_type is DocumentType.INVOICE:
            prepaid = paid_credit_preview(conn, customer.id, c.currency.code, c.total_minor)
    return NextDocumentPreview(
        doc, doc.period.start if doc.period else None, doc.period.end if doc.period else None, prepaid
    )
