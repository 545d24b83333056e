"""One subscription bills a customer's usage of a metric (ADR 0008).

Usage is bucketed by customer, not by subscription, and a subscription bills the customer's usage of the
metrics its usage prices name: two subscriptions of one customer pricing the same metric at the same
time would both bill every event. As Lago and Stripe do, the second is refused (409 `field_conflict`
naming the item's `price_id`) when it is created or changed onto that metric, instead of guessing which
one the usage belongs to. A subscription cancelled at its period end stops billing then: another may
take the metric from that instant on (and withdrawing that cancellation is then refused)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, or_, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_usage as tu
from fiscus.domain.errors import FieldConflictError
from fiscus.domain.subscriptions import BILLABLE_STATUSES


def refuse_metric_billed_twice(
    conn: Connection,
    org_id: int,
    customer_id: int,
    price_ids: Sequence[int],
    *,
    start: datetime,
    subscription_id: int | None = None,
    field: str | None = None,
) -> None:
    """Refuse items (`price_ids`, in request order) that price a metric twice, or a metric another of the
    customer's subscriptions (other than `subscription_id`) bills from `start` on; the problem names the
    item's `price_id`, or `field` when the request changed something else. The customer row is locked
    first, so two concurrent requests for one customer cannot both pass."""
    u = tu.usage_prices.c
    wanted = sorted(set(price_ids))
    rows = conn.execute(select(u.price_id, u.metric_id).where(u.price_id.in_(wanted)))
    metric_of = {int(r.price_id): int(r.metric_id) for r in rows}
    position: dict[int, int] = {}
    for n, price_id in enumerate(price_ids):
        metric = metric_of.get(price_id)
        if metric is None:
            continue
        if metric in position:
            raise FieldConflictError(
                f"items.{n}.price_id", f"items.{position[metric]} already bills metric {metric}"
            )
        position[metric] = n
    if not position:
        return
    cu = t.customers.c
    conn.execute(select(cu.id).where(cu.id == customer_id).with_for_update()).first()
    s, i = t.subscriptions.c, t.subscription_items.c
    query = (
        select(u.metric_id, s.id)
        .select_from(t.subscriptions)
        .join(t.subscription_items, i.subscription_id == s.id)
        .join(tu.usage_prices, u.price_id == i.price_id)
        .where(
            s.organization_id == org_id,
            s.customer_id == customer_id,
            s.status.in_([x.value for x in BILLABLE_STATUSES]),
            or_(s.cancel_at.is_(None), s.cancel_at > start),
            u.metric_id.in_(sorted(position)),
        )
        .order_by(s.id)
        .limit(1)
    )
    if subscription_id is not None:
        query = query.where(s.id != subscription_id)
    found = conn.execute(query).first()
    if found is not None:
        metric, other = found
        raise FieldConflictError(
            field or f"items.{position[metric]}.price_id",
            f"subscription {other} of this customer already bills metric {metric}: a customer's usage of "
            "a metric is billed by one subscription",
        )
