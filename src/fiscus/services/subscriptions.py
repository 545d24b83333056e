"""Subscriptions: create, cancel (now or at period end), change items with proration.

A change mid-period credits the unused part of the old items and charges the new items for the same
remaining time (exact `Fraction` ratios); both land as pending items on the subscription's next
document, as Stripe's default `create_prorations` does. Changes keep the interval and currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.context import CustomerContext, OrgContext, load_customers, load_org, load_prices
from fiscus.adapters.db.documents import append_audit, append_outbox, audit_row, outbox_row
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.documents import (
    ComputedDocument,
    LineInput,
    LineKind,
    check_line_size,
    compute_document,
    prorated_quantity,
)
from fiscus.domain.errors import FieldConflictError, InvalidFieldError, InvalidStateError, NotFoundError
from fiscus.domain.money import currency
from fiscus.domain.periods import Interval, Period, ensure_aware_utc
from fiscus.domain.subscriptions import BILLABLE_STATUSES, Schedule, SubscriptionStatus
from fiscus.domain.tax import line_tax
from fiscus.services import validation as v
from fiscus.services.billing_now import bill_subscription_within
from fiscus.services.cancellation import AheadOutcome, settle_issued_ahead
from fiscus.services.catalog import refuse_archived
from fiscus.services.common import get_scoped, jsonable
from fiscus.services.mrr_history import refresh_customers
from fiscus.services.usage_overlap import refuse_metric_billed_twice
from fiscus.services.usage_prices import usage_price_ids
from fiscus.services.usage_windows import record_changes

SUB_KEYS = (
    "id",
    "customer_id",
    "status",
    "currency",
    "interval",
    "interval_count",
    "start_at",
    "trial_end",
    "billing_anchor",
    "next_period_start",
    "current_period_start",
    "current_period_end",
    "cancel_at",
    "canceled_at",
    "ended_at",
)


@dataclass(frozen=True, slots=True)
class ItemSpec:
    price_id: int
    quantity: object = 1


def _validate_items(
    conn: Connection,
    org_id: int,
    customer: CustomerContext,
    items: Sequence[ItemSpec],
    kept: Sequence[int] = (),
) -> tuple[list[tuple[int, Decimal]], Interval, str]:
    if not items:
        raise InvalidFieldError("items", "a subscription needs at least one item")
    prices = load_prices(conn, org_id, [i.price_id for i in items])
    refuse_archived(conn, org_id, [i.price_id for i in items], allowed=kept)
    out: list[tuple[int, Decimal]] = []
    intervals = set()
    for n, item in enumerate(items):
        price = prices.get(item.price_id)
        if price is None:
            raise NotFoundError("price", item.price_id, field=f"items.{n}.price_id")
        if price.interval is None:
            raise FieldConflictError(f"items.{n}.price_id", "a one-off price belongs on an order")
        if price.currency != customer.row["currency"]:
            raise FieldConflictError(
                f"items.{n}.price_id",
                f"price currency {price.currency} differs from the customer's {customer.row['currency']}",
            )
        intervals.add((price.interval, price.interval_count))
        quantity = v.positive_quantity(f"items.{n}.quantity", item.quantity)
        check_line_size(f"items.{n}.quantity", quantity, price.unit_amount, currency(price.currency))
        out.append((price.id, quantity))
    if len(intervals) > 1:
        raise FieldConflictError("items", "all items of a subscription must share one billing interval")
    unit, count = intervals.pop()
    return out, Interval.parse(unit, count), customer.row["currency"]


def create_subscription(
    db: Database,
    clock: Clock,
    org_id: int,
    customer_id: int,
    items: Sequence[ItemSpec],
    *,
    start_at: datetime | None = None,
    trial_days: int = 0,
    trial_end: datetime | None = None,
    billing_anchor: datetime | None = None,
    bill_now: bool = False,
    actor: str = "cli",
) -> int:
    """A subscription billed in advance from its start, or from the end of its trial. With `bill_now`,
    what is due at once (the first period, unless it is in a trial or starts later) is billed in the same
    transaction by the billing run's code, instead of by the next run."""
    now = clock.now()
    start = ensure_aware_utc(start_at, "start_at") if start_at else now
    if trial_days < 0 or trial_days > 730:
        raise InvalidFieldError("trial_days", "must be between 0 and 730")
    if trial_end is None and trial_days:
        trial_end = start + timedelta(days=trial_days)
    if trial_end is not None:
        trial_end = ensure_aware_utc(trial_end, "trial_end")
        if trial_end <= start:
            raise InvalidFieldError("trial_end", "must be after start_at")
    first_billed = trial_end or start
    anchor = ensure_aware_utc(billing_anchor, "billing_anchor") if billing_anchor else first_billed
    with db.write() as conn:
        customers = load_customers(conn, org_id, [customer_id])
        if customer_id not in customers:
            raise NotFoundError("customer", customer_id, field="customer_id")
        checked, interval, code = _validate_items(conn, org_id, customers[customer_id], items)
        refuse_metric_billed_twice(conn, org_id, customer_id, [p for p, _q in checked], start=start)
        status = SubscriptionStatus.TRIALING if trial_end else SubscriptionStatus.ACTIVE
        row = {
            "organization_id": org_id,
            "customer_id": customer_id,
            "status": status.value,
            "currency": code,
            "interval": interval.unit.value,
            "interval_count": interval.count,
            "billing_anchor": anchor,
            "start_at": start,
            "trial_end": trial_end,
            "next_period_start": first_billed,
            "created_at": now,
            "updated_at": now,
        }
        sid = conn.execute(insert(t.subscriptions).values(**row).returning(t.subscriptions.c.id)).scalar_one()
        conn.execute(
            insert(t.subscription_items),
            [
                {"organization_id": org_id, "subscription_id": sid, "price_id": p, "quantity": q}
                for p, q in checked
            ],
        )
        payload = jsonable({"id": sid, **row}, SUB_KEYS)
        append_audit(conn, [audit_row(org_id, "subscription", sid, "created", actor, now, None, payload)])
        refresh_customers(conn, org_id, [customer_id])
        append_outbox(conn, [outbox_row(org_id, "subscription.created", "subscription", sid, now, payload)])
        if bill_now:
            bill_subscription_within(conn, clock, org_id, int(sid), now, actor)
    return int(sid)


def cancel_subscription(
    db: Database,
    clock: Clock,
    org_id: int,
    subscription_id: int,
    *,
    at_period_end: bool,
    actor: str = "cli",
    reason: str | None = None,
) -> list[AheadOutcome]:
    """Cancel now (no further documents) or at the end of the current period (that period stays billed).
    A `reason` (the customer's, from the portal) is kept in the audit row and the event.

    A document already issued for a period after the end is voided or credited in the same transaction
    (`services/cancellation.py` states the rule); what was done to each is returned and audited."""
    now = clock.now()
    with db.write() as conn:
        sub = get_scoped(conn, t.subscriptions, org_id, subscription_id, lock=True)
        if SubscriptionStatus(sub["status"]) not in BILLABLE_STATUSES:
            raise InvalidStateError(f"subscription {subscription_id} is already {sub['status']}")
        before = jsonable(sub, SUB_KEYS)
        if at_period_end:
            values: dict[str, Any] = {"cancel_at": _current_period_end(conn, sub, now), "canceled_at": now}
            event = "subscription.cancel_scheduled"
        else:
            values = {"status": SubscriptionStatus.CANCELED.value, "canceled_at": now, "ended_at": now}
            event = "subscription.canceled"
        values["updated_at"] = now
        conn.execute(update(t.subscriptions).where(t.subscriptions.c.id == subscription_id).values(**values))
        ahead = settle_issued_ahead(conn, clock, sub, values.get("cancel_at") or now, actor, now)
        after = jsonable({**sub, **values}, SUB_KEYS)
        if ahead:
            after["issued_ahead"] = [a.as_json() for a in ahead]
        if reason:
            after["cancellation_reason"] = reason
        append_audit(
            conn, [audit_row(org_id, "subscription", subscription_id, "canceled", actor, now, before, after)]
        )
        refresh_customers(conn, org_id, [sub["customer_id"]])
        append_outbox(conn, [outbox_row(org_id, event, "subscription", subscription_id, now, after)])
    return ahead


def _current_period_end(conn: Connection, sub: dict[str, Any], now: datetime) -> datetime:
    """The end of the period the customer is in now. A period that has started but that no billing
    run has reached yet is still the current one: it will be billed, and the subscription ends after it."""
    if sub["next_period_start"] > now:
        return sub["next_period_start"]  # type: ignore[no-any-return]
    org = load_org(conn, sub["organization_id"])
    schedule = Schedule(sub["billing_anchor"], Interval.parse(sub["interval"], sub["interval_count"]), org.tz)
    period = schedule.period_from(sub["next_period_start"])
    while period.end <= now:
        period = schedule.period_from(period.end)
    return period.end


@dataclass(frozen=True, slots=True)
class ProrationPreview:
    period: Period | None
    computed: ComputedDocument | None
    pending: list[dict[str, Any]]


def _proration(
    conn: Connection,
    org: OrgContext,
    customer: CustomerContext,
    sub: dict[str, Any],
    new_items: list[tuple[int, Decimal]],
    at: datetime,
) -> ProrationPreview:
    """Credit the unused time of the current items, charge the new ones for the same time."""
    if sub["current_period_start"] is None or not (
        sub["current_period_start"] <= at < sub["current_period_end"]
    ):
        return ProrationPreview(None, None, [])
    period = Period(sub["current_period_start"], sub["current_period_end"])
    schedule = Schedule(sub["billing_anchor"], Interval.parse(sub["interval"], sub["interval_count"]), org.tz)
    ratio = schedule.unused_ratio(period, at)
    old_items = [
        (r.price_id, r.quantity)
        for r in conn.execute(
            select(t.subscription_items.c.price_id, t.subscription_items.c.quantity)
            .where(t.subscription_items.c.subscription_id == sub["id"])
            .order_by(t.subscription_items.c.id)
        )
    ]
    prices = load_prices(conn, org.id, [p for p, _ in old_items + new_items])
    pending: list[dict[str, Any]] = []
    lines: list[LineInput] = []
    for sign, group, label in ((-1, old_items, "Unused time on"), (1, new_items, "Remaining time on")):
        for price_id, qty in group:
            price = prices[price_id]
            description = f"{label} {price.description}"
            pending.append(
                {
                    "organization_id": org.id,
                    "subscription_id": sub["id"],
                    "kind": LineKind.PRORATION.value,
                    "description": description,
                    "price_id": price_id,
                    "quantity": qty,
                    "ratio": str(ratio),
                    "sign": sign,
                    "period_start": at,
                    "period_end": period.end,
                }
            )
            lines.append(
                LineInput(
                    description=description,
                    quantity=prorated_quantity(qty, ratio, credit=sign < 0),
                    unit_price=price.unit_amount,
                    tax=line_tax(price.tax_category, org.tax_party, customer.tax_party, org.rates),
                    tax_inclusive=price.tax_inclusive,
                    ratio=ratio,
                    kind=LineKind.PRORATION,
                    product_id=price.product_id,
                    variant_id=price.variant_id,
                    price_id=price_id,
                    period_start=at,
                    period_end=period.end,
                )
            )
    if ratio == Fraction(0) or not lines:
        return ProrationPreview(period, None, [])
    computed = compute_document(currency(sub["currency"]), lines, org.rounding)
    return ProrationPreview(period, computed, pending)


def change_subscription(
    db: Database,
    clock: Clock,
    org_id: int,
    subscription_id: int,
    items: Sequence[ItemSpec],
    *,
    preview: bool = False,
    actor: str = "cli",
) -> ProrationPreview:
    """Replace the items; with `preview`, compute the proration and write nothing."""
    now = clock.now()
    with db.write() as conn:
        sub = get_scoped(conn, t.subscriptions, org_id, subscription_id, lock=True)
        if SubscriptionStatus(sub["status"]) not in BILLABLE_STATUSES:
            raise InvalidStateError(f"subscription {subscription_id} is {sub['status']} and cannot change")
        org = load_org(conn, org_id)
        customer = load_customers(conn, org_id, [sub["customer_id"]])[sub["customer_id"]]
        current = list(
            conn.execute(
                select(t.subscription_items.c.price_id).where(
                    t.subscription_items.c.subscription_id == subscription_id
                )
            ).scalars()
        )
        checked, interval, _code = _validate_items(conn, org_id, customer, items, kept=current)
        refuse_metric_billed_twice(
            conn,
            org_id,
            sub["customer_id"],
            [p for p, _q in checked],
            start=now,
            subscription_id=subscription_id,
        )
        if (interval.unit.value, interval.count) != (sub["interval"], sub["interval_count"]):
            raise FieldConflictError("items", "a change must keep the subscription's billing interval")
        result = _proration(conn, org, customer, sub, checked, now)
        if preview:
            return result
        before = [
            {"price_id": r.price_id, "quantity": str(r.quantity)}
            for r in conn.execute(
                select(t.subscription_items).where(t.subscription_items.c.subscription_id == subscription_id)
            )
        ]
        conn.execute(
            delete(t.subscription_items).where(t.subscription_items.c.subscription_id == subscription_id)
        )
        conn.execute(
            insert(t.subscription_items),
            [
                {"organization_id": org_id, "subscription_id": subscription_id, "price_id": p, "quantity": q}
                for p, q in checked
            ],
        )
        if result.pending:
            conn.execute(insert(t.pending_items), [{**p, "created_at": now} for p in result.pending])
        new_ids = [p for p, _q in checked]  # usage billed in arrears is split at this instant
        usage_ids = usage_price_ids(conn, {*current, *new_ids})
        record_changes(conn, org_id, subscription_id, current, new_ids, usage_ids, now)
        conn.execute(
            update(t.subscriptions).where(t.subscriptions.c.id == subscription_id).values(updated_at=now)
        )
        after = [{"price_id": p, "quantity": str(q)} for p, q in checked]
        append_audit(
            conn,
            [
                audit_row(
                    org_id,
                    "subscription",
                    subscription_id,
                    "changed",
                    actor,
                    now,
                    {"items": before},
                    {"items": after},
                )
            ],
        )
        refresh_customers(conn, org_id, [sub["customer_id"]])
        append_outbox(
            conn,
            [
                outbox_row(
                    org_id,
                    "subscription.updated",
                    "subscription",
                    subscription_id,
                    now,
                    {"id": subscription_id, "items": after},
                )
            ],
        )
    return result


def resume_subscription(
    db: Database, clock: Clock, org_id: int, subscription_id: int, *, actor: str = "cli"
) -> None:
    """Withdraw a cancellation scheduled for the period end, before it takes effect."""
    now = clock.now()
    with db.write() as conn:
        sub = get_scoped(conn, t.subscriptions, org_id, subscription_id, lock=True)
        if SubscriptionStatus(sub["status"]) not in BILLABLE_STATUSES or sub["cancel_at"] is None:
            raise InvalidStateError(
                f"subscription {subscription_id} has no scheduled cancellation to withdraw"
            )
        prices = select(t.subscription_items.c.price_id).where(
            t.subscription_items.c.subscription_id == subscription_id
        )
        refuse_metric_billed_twice(  # another subscription may bill its metrics after the cancellation
            conn,
            org_id,
            sub["customer_id"],
            list(conn.execute(prices).scalars()),
            start=sub["cancel_at"],
            subscription_id=subscription_id,
            field="cancel_at_period_end",
        )
        values = {"cancel_at": None, "canceled_at": None, "updated_at": now}
        conn.execute(update(t.subscriptions).where(t.subscriptions.c.id == subscription_id).values(**values))
        after = jsonable({**sub, **values}, SUB_KEYS)
        append_audit(
            conn,
            [
                audit_row(
                    org_id,
                    "subscription",
                    subscription_id,
                    "resumed",
                    actor,
                    now,
                    jsonable(sub, SUB_KEYS),
                    after,
                )
            ],
        )
        refresh_customers(conn, org_id, [sub["customer_id"]])
        append_outbox(
            conn, [outbox_row(org_id, "subscription.updated", "subscription", subscription_id, now, after)]
        )
