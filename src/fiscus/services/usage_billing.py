"""Billing usage in arrears: each ended subscription period's usage charges become one document.

Called by the billing run (`run_billing`, after the advance documents) in batches, one transaction
each, claimed with `FOR UPDATE SKIP LOCKED` like the run's own batches. A period is billed once its
end plus the organisation's grace window has passed (late events inside the grace still count); the
`usage_periods` row (unique per subscription and start) makes billing a period twice impossible, and
`usage_cursors` says which period is next and when it is due.

Each charge is computed per group value from the hour buckets (`queries/usage.py: measure`) with the
price's charge model (`domain/charges.py`); each part of it is one line (quantity × unit price,
settled once), described with metric, group and tier, and dated with the period. `usage_lines` keeps
what was measured (metric, group, quantity, events, tier breakdown) for the API and for adjustments.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db import tables_usage_features as tf
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
from fiscus.adapters.db.upsert import insert_for
from fiscus.domain.clock import Clock
from fiscus.domain.documents import ComputedDocument, DocumentType, compute_document
from fiscus.domain.errors import DomainError
from fiscus.domain.money import currency
from fiscus.domain.periods import Interval, Period
from fiscus.domain.subscriptions import Schedule, due_periods
from fiscus.services.common import get_scoped
from fiscus.services.credit_notes import apply_customer_credit
from fiscus.services.payments.collection import schedule_collection
from fiscus.services.usage_adjustments import adjust_late
from fiscus.services.usage_charges import Measured, usage_lines_for
from fiscus.services.usage_prices import UsagePrice, load_usage_prices
from fiscus.services.usage_settings import load_usage_settings
from fiscus.services.usage_windows import changed

log = logging.getLogger(__name__)


@dataclass(slots=True)
class UsageBatch:
    subscriptions: int = 0
    documents: list[NewDocument] = field(default_factory=list)
    last_id: int = 0
    failed: dict[int, str] = field(default_factory=dict)


def _candidates(
    conn: Connection, at: datetime, org_id: int | None, after: int, limit: int
) -> list[dict[str, Any]]:
    """Subscriptions with a usage price whose next usage period may be due, claimed in id order."""
    s, si, up, c = t.subscriptions.c, t.subscription_items.c, tu.usage_prices.c, tu.usage_cursors.c
    with_usage = select(si.subscription_id).join(tu.usage_prices, up.price_id == si.price_id)
    changed = select(tf.usage_item_changes.c.subscription_id)  # usage prices a plan change removed
    done_or_later = select(c.subscription_id).where((c.next_due_at.is_(None)) | (c.next_due_at > at))
    query = (
        select(t.subscriptions)
        .where(
            s.id.in_(with_usage) | s.id.in_(changed),
            s.id.not_in(done_or_later),
            s.id > after,
            s.start_at <= at,
        )
        .order_by(s.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=t.subscriptions)
    )
    if org_id is not None:
        query = query.where(s.organization_id == org_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def bill_usage_batch(
    conn: Connection,
    clock: Clock,
    at: datetime,
    org_id: int | None,
    after: int,
    limit: int,
    run_id: int | None,
    actor: str,
) -> UsageBatch:
    """Bill every due usage period of the next `limit` subscriptions after id `after` (one transaction)."""
    batch = UsageBatch(last_id=after)
    subs = _candidates(conn, at, org_id, after, limit)
    if not subs:
        return batch
    batch.last_id = subs[-1]["id"]
    ids = [r["id"] for r in subs]
    si = t.subscription_items.c
    items: dict[int, list[int]] = defaultdict(list)
    for sid, pid in conn.execute(
        select(si.subscription_id, si.price_id).where(si.subscription_id.in_(ids)).order_by(si.id)
    ):
        items[sid].append(pid)
    usage = load_usage_prices(conn, {p for ps in items.values() for p in ps})
    prices = load_prices(conn, None, set(usage))
    orgs = load_orgs(conn, {r["organization_id"] for r in subs})
    customers = load_customers(conn, None, {r["customer_id"] for r in subs})
    c = tu.usage_cursors.c
    cursors = dict(
        conn.execute(select(c.subscription_id, c.next_start).where(c.subscription_id.in_(ids))).all()
    )
    grace = {o: timedelta(hours=load_usage_settings(conn, o).grace_hours) for o in orgs}
    now = clock.now()
    planned: list[tuple[NewDocument | None, list[Measured], dict[str, Any], Period]] = []
    cursor_rows = []
    for sub in subs:
        org = orgs[sub["organization_id"]]
        schedule = Schedule(
            sub["billing_anchor"], Interval.parse(sub["interval"], sub["interval_count"]), org.tz
        )
        start = cursors.get(sub["id"], sub["start_at"])
        stop = sub["ended_at"] or sub["cancel_at"]
        periods = [p for p in due_periods(schedule, start, at, stop) if p.end + grace[org.id] <= at]
        sub_prices = [usage[p] for p in items[sub["id"]] if p in usage]
        try:
            for period in periods:
                doc, measured = _period_document(
                    conn, sub, org, customers[sub["customer_id"]], sub_prices, prices, period
                )
                planned.append((doc, measured, sub, period))
        except DomainError as exc:
            batch.failed[sub["id"]] = f"{exc.code}: {exc}"
            log.warning("usage of subscription %s not billed: %s", sub["id"], exc)
            continue
        next_start = periods[-1].end if periods else start
        upcoming = due_periods(schedule, next_start, next_start, stop)
        next_due = upcoming[0].end + grace[org.id] if upcoming else None
        cursor_rows.append(
            {
                "subscription_id": sub["id"],
                "organization_id": org.id,
                "next_start": next_start,
                "next_due_at": next_due,
            }
        )
        batch.subscriptions += 1
    _persist(conn, clock, planned, now, actor, run_id)
    if cursor_rows:
        ins = insert_for(conn, tu.usage_cursors).values(cursor_rows)
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=["subscription_id"],
                set_={"next_start": ins.excluded.next_start, "next_due_at": ins.excluded.next_due_at},
            )
        )
    batch.documents = [d for d, _m, _s, _p in planned if d is not None]
    return batch


def _period_document(
    conn: Connection,
    sub: dict[str, Any],
    org: OrgContext,
    customer: CustomerContext,
    sub_prices: Sequence[UsagePrice],
    prices: dict[int, PriceContext],
    period: Period,
) -> tuple[NewDocument | None, list[Measured]]:
    lines, measured = usage_lines_for(conn, sub, org, customer, sub_prices, prices, period)
    computed = compute_document(currency(sub["currency"]), lines, org.rounding)
    if computed.total_minor == 0 and all(line.amount_minor == 0 for line in computed.lines):
        return None, measured  # nothing used and nothing owed: the period is marked billed, no document
    doc = NewDocument(
        org=org,
        customer=customer,
        doc_type=DocumentType(org.row["subscription_document"]),
        computed=computed,
        subscription_id=sub["id"],
        period=period,
    )
    return doc, measured


def _persist(
    conn: Connection,
    clock: Clock,
    planned: list[tuple[NewDocument | None, list[Measured], dict[str, Any], Period]],
    now: datetime,
    actor: str,
    run_id: int | None,
) -> None:
    docs = [(i, d) for i, (d, _m, _s, _p) in enumerate(planned) if d is not None]
    auto = [(i, d) for i, d in docs if d.org.row["auto_issue"]]
    manual = [(i, d) for i, d in docs if not d.org.row["auto_issue"]]
    doc_ids: dict[int, int] = {}
    issued = persist_documents(
        conn,
        [d for _i, d in auto],
        now=now,
        issue=True,
        actor=actor,
        issued_at_fn=clock.now,
        billing_run_id=run_id,
    )
    doc_ids.update({i: did for (i, _d), did in zip(auto, issued, strict=True)})
    drafts = persist_documents(
        conn, [d for _i, d in manual], now=now, issue=False, actor=actor, billing_run_id=run_id
    )
    doc_ids.update({i: did for (i, _d), did in zip(manual, drafts, strict=True)})
    if issued:
        apply_customer_credit(conn, issued, now=now, actor=actor)
        schedule_collection(conn, issued, now)
    period_rows, line_rows = [], []
    for i, (doc, measured, sub, period) in enumerate(planned):
        did = doc_ids.get(i)
        period_rows.append(
            {
                "organization_id": sub["organization_id"],
                "subscription_id": sub["id"],
                "period_start": period.start,
                "period_end": period.end,
                "document_id": did,
                "billed_at": now,
            }
        )
        if did is None or doc is None:
            continue
        for m in measured:
            amount = sum(doc.computed.lines[m.first_line + k].amount_minor for k in range(len(m.parts)))
            line_rows.append(
                {
                    "organization_id": sub["organization_id"],
                    "document_id": did,
                    "subscription_id": sub["id"],
                    "price_id": m.price_id,
                    "metric_id": m.metric_id,
                    "group_value": m.group,
                    "period_start": period.start,
                    "period_end": period.end,
                    "quantity": m.quantity,
                    "events": m.events,
                    "amount_minor": amount,
                    "breakdown": [{**p, "position": m.first_line + k + 1} for k, p in enumerate(m.parts)],
                }
            )
    if period_rows:
        conn.execute(tu.usage_periods.insert(), period_rows)
    if line_rows:
        conn.execute(tu.usage_lines.insert(), line_rows)


def bill_usage(
    db: Database,
    clock: Clock,
    at: datetime,
    *,
    organization_id: int | None = None,
    batch_size: int = 100,
    run_id: int | None = None,
    actor: str = "system:billing-run",
) -> tuple[list[NewDocument], dict[int, str]]:
    """Every due usage period, in batches (one transaction each); the documents made and the failures."""
    docs: list[NewDocument] = []
    failed: dict[int, str] = {}
    after = 0
    while True:
        with db.write() as conn:
            batch = bill_usage_batch(conn, clock, at, organization_id, after, batch_size, run_id, actor)
            if batch.documents and run_id is not None:
                runs = t.billing_runs.c
                conn.execute(
                    update(t.billing_runs)
                    .where(runs.id == run_id)
                    .values(documents_created=runs.documents_created + len(batch.documents))
                )
        docs.extend(batch.documents)
        failed.update(batch.failed)
        if batch.last_id == after:
            break
        after = batch.last_id
    last = None
    while True:  # late events in periods already billed: adjustment documents
        with db.write() as conn:
            last = adjust_late(conn, clock, organization_id, batch_size, actor, run_id, last)
        if last is None:
            return docs, failed


@dataclass(frozen=True, slots=True)
class UsagePreview:
    """The usage of a subscription's current period as it would be billed now (written nowhere)."""

    subscription: dict[str, Any]
    period: Period
    computed: ComputedDocument
    measured: list[Measured]


def preview_usage(db: Database, org_id: int, subscription_id: int, at: datetime) -> UsagePreview | None:
    """The current period's usage charges, computed by the code that bills them (None: no usage price)."""
    with db.read() as conn:
        sub = get_scoped(conn, t.subscriptions, org_id, subscription_id, field="subscription")
        si = t.subscription_items.c
        price_ids = list(
            conn.execute(select(si.price_id).where(si.subscription_id == subscription_id)).scalars()
        )
        usage = load_usage_prices(conn, price_ids)
        if not usage and not changed(conn, subscription_id):
            return None
        org = load_orgs(conn, [org_id])[org_id]
        customer = load_customers(conn, org_id, [sub["customer_id"]])[sub["customer_id"]]
        prices = load_prices(conn, org_id, set(usage))
        schedule = Schedule(
            sub["billing_anchor"], Interval.parse(sub["interval"], sub["interval_count"]), org.tz
        )
        c = tu.usage_cursors.c
        billed_to = conn.execute(select(c.next_start).where(c.subscription_id == subscription_id)).scalar()
        start = max(billed_to or sub["start_at"], sub["start_at"])
        at = max(at, start)
        stop = sub["ended_at"] or sub["cancel_at"]
        if stop is not None and stop <= start:
            return None  # everything up to the subscription's end is billed
        period = schedule.period_from(start)
        while period.end <= at and (stop is None or period.end < stop):
            period = schedule.period_from(period.end)
        if stop is not None and period.end > stop:
            period = Period(period.start, stop)
        lines, measured = usage_lines_for(
            conn, sub, org, customer, [usage[p] for p in price_ids if p in usage], prices, period
        )
    computed = compute_document(currency(sub["currency"]), lines, org.rounding)
    return UsagePreview(sub, period, computed, measured)


def preview_customer_usage(db: Database, org_id: int, customer_id: int, at: datetime) -> list[UsagePreview]:
    """The current usage of each of the customer's subscriptions that has usage prices (id order);
    another organisation's customer is not found."""
    s, si, up = t.subscriptions.c, t.subscription_items.c, tu.usage_prices.c
    with db.read() as conn:
        get_scoped(conn, t.customers, org_id, customer_id)
        with_usage = select(si.subscription_id).join(tu.usage_prices, up.price_id == si.price_id)
        ids = list(
            conn.execute(
                select(s.id)
                .where(
                    s.organization_id == org_id,
                    s.customer_id == customer_id,
                    s.id.in_(with_usage) | s.id.in_(select(tf.usage_item_changes.c.subscription_id)),
                )
                .order_by(s.id)
            ).scalars()
        )
    previews = (preview_usage(db, org_id, sid, at) for sid in ids)
    return [pv for pv in previews if pv is not None]
