"""Reconstructing each subscription's MRR over time from what the database keeps (four statements,
whatever the number of subscriptions).

What is kept, and so what can be reconstructed:
- `subscriptions`: when it started (`start_at`), when its trial ended (`trial_end`), when it ended
  (`ended_at`: cancelled now, cancelled by the dunning policy, or a scheduled cancellation reached by
  the billing run) or will end (`cancel_at`, scheduled and not yet reached).
- `subscription_items`: the CURRENT items only. Earlier items are in the audit trail: every plan or
  quantity change writes an `audit_events` row (`subscription`, `changed`) with the items before and
  after, at the instant of the change; prices are immutable, so a price id fixes its amount forever.

Limits (stated in docs/dashboard.md): a subscription's items before its first audited change are the
"before" of that change, so history is exact only as far as the audit trail is complete (rows deleted
by hand or changed outside the services are invisible); a scheduled cancellation that was later
withdrawn leaves no trace and correctly never counted; a pause of collection does not stop MRR; usage
charges and discounts are not part of MRR here; tax-inclusive prices count at their gross amount.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, func, select, type_coerce

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.types import UtcDateTime
from fiscus.domain.money import Currency
from fiscus.domain.mrr import Segment, monthly_minor

Items = tuple[tuple[int, Decimal], ...]
"""A subscription's items at some time: (price id, quantity), as stored."""


@dataclass(frozen=True, slots=True)
class SubscriptionSpan:
    """When a subscription counts as active (paying): from the end of its trial (or its start) until
    it ended or is scheduled to end. `end <= start` (cancelled in its trial) means never."""

    subscription_id: int
    customer_id: int
    start: datetime
    end: datetime | None

    @property
    def ever_active(self) -> bool:
        return self.end is None or self.end > self.start


def load_segments(
    conn: Connection, org_id: int, cur: Currency, customer_ids: Sequence[int] | None = None
) -> tuple[list[SubscriptionSpan], list[Segment]]:
    """Every subscription of the organisation in `cur` (of `customer_ids` only, when given) as its
    active span and its MRR segments."""
    s, si, p, a = t.subscriptions.c, t.subscription_items.c, t.prices.c, t.audit_events.c
    scope = [s.organization_id == org_id, s.currency == cur.code]
    if customer_ids is not None:
        scope.append(s.customer_id.in_(list(customer_ids)))
    # Two instants per subscription, not four: parsing instants is most of this read's cost.
    paying_from = type_coerce(func.coalesce(s.trial_end, s.start_at), UtcDateTime)
    paying_until = type_coerce(func.coalesce(s.ended_at, s.cancel_at), UtcDateTime)
    subs = conn.execute(
        select(s.id, s.customer_id, paying_from, paying_until, s.interval, s.interval_count).where(*scope)
    ).all()
    prices = {
        r.id: r.unit_amount
        for r in conn.execute(
            select(p.id, p.unit_amount).where(
                p.organization_id == org_id, p.currency == cur.code, p.interval.is_not(None)
            )
        )
    }
    current: dict[int, list[tuple[int, Decimal]]] = defaultdict(list)
    for sid, price_id, quantity in conn.execute(
        select(si.subscription_id, si.price_id, si.quantity)
        .join(t.subscriptions, s.id == si.subscription_id)
        .where(si.organization_id == org_id, *scope)
    ):
        current[sid].append((price_id, quantity))
    changes: dict[int, list[tuple[datetime, Items]]] = defaultdict(list)
    for sid, at, before in conn.execute(
        select(a.entity_id, a.at, a.before)
        .join(t.subscriptions, and_(s.id == a.entity_id, s.organization_id == a.organization_id))
        .where(
            a.organization_id == org_id,
            a.entity_type == "subscription",
            a.action == "changed",
            *scope,
        )
        .order_by(a.entity_id, a.at, a.id)
    ):
        changes[sid].append((at, _items_of(before)))
    memo: dict[tuple[str, int, Items], int] = {}

    def worth(interval: str, count: int, items: Items) -> int:
        """A plan's MRR, computed once per distinct (interval, items): most subscriptions share one."""
        key = (interval, count, items)
        found = memo.get(key)
        if found is None:
            priced = tuple((qty, prices[pid]) for pid, qty in items if pid in prices)
            found = memo[key] = monthly_minor(priced, interval, count, cur)
        return found

    spans: list[SubscriptionSpan] = []
    segments: list[Segment] = []
    for sid, customer_id, start, end, interval, count in subs:
        spans.append(SubscriptionSpan(sid, customer_id, start, end))
        if end is not None and end <= start:
            continue  # cancelled inside its trial: never paying
        for at, before in changes.get(sid, ()):
            if at > start and (end is None or at < end):  # a change inside the paying span cuts it
                segments.append(Segment(customer_id, sid, start, at, worth(interval, count, before)))
                start = at
        segments.append(
            Segment(customer_id, sid, start, end, worth(interval, count, tuple(current.get(sid, ()))))
        )
    return spans, segments


def _items_of(before: Any) -> Items:
    items = before.get("items", []) if isinstance(before, dict) else []
    return tuple((int(i["price_id"]), Decimal(str(i["quantity"]))) for i in items)
