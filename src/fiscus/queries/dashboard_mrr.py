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

from sqlalchemy import Connection, and_, select

from fiscus.adapters.db import tables as t
from fiscus.domain.money import Currency
from fiscus.domain.mrr import Segment, monthly_minor


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
    conn: Connection, org_id: int, cur: Currency
) -> tuple[list[SubscriptionSpan], list[Segment]]:
    """Every subscription of the organisation in `cur` as its active span and its MRR segments."""
    s, si, p, a = t.subscriptions.c, t.subscription_items.c, t.prices.c, t.audit_events.c
    subs = conn.execute(
        select(
            s.id,
            s.customer_id,
            s.start_at,
            s.trial_end,
            s.ended_at,
            s.cancel_at,
            s.interval,
            s.interval_count,
        ).where(s.organization_id == org_id, s.currency == cur.code)
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
    for r in conn.execute(
        select(si.subscription_id, si.price_id, si.quantity)
        .join(t.subscriptions, s.id == si.subscription_id)
        .where(si.organization_id == org_id, s.currency == cur.code)
    ):
        current[r.subscription_id].append((r.price_id, r.quantity))
    changes: dict[int, list[tuple[datetime, list[tuple[int, Decimal]]]]] = defaultdict(list)
    for r in conn.execute(
        select(a.entity_id, a.at, a.before)
        .join(t.subscriptions, and_(s.id == a.entity_id, s.organization_id == a.organization_id))
        .where(
            a.organization_id == org_id,
            a.entity_type == "subscription",
            a.action == "changed",
            s.currency == cur.code,
        )
        .order_by(a.entity_id, a.at, a.id)
    ):
        changes[r.entity_id].append((r.at, _items_of(r.before)))
    spans: list[SubscriptionSpan] = []
    segments: list[Segment] = []
    for sub in subs:
        span = SubscriptionSpan(
            sub.id, sub.customer_id, sub.trial_end or sub.start_at, sub.ended_at or sub.cancel_at
        )
        spans.append(span)
        if not span.ever_active:
            continue
        segments.extend(_segments(sub, span, changes.get(sub.id, []), current.get(sub.id, []), prices, cur))
    return spans, segments


def _items_of(before: Any) -> list[tuple[int, Decimal]]:
    items = before.get("items", []) if isinstance(before, dict) else []
    return [(int(i["price_id"]), Decimal(str(i["quantity"]))) for i in items]


def _segments(
    sub: Any,
    span: SubscriptionSpan,
    changes: Sequence[tuple[datetime, list[tuple[int, Decimal]]]],
    current: list[tuple[int, Decimal]],
    prices: dict[int, Decimal],
    cur: Currency,
) -> list[Segment]:
    """Cut the active span at every change inside it; each piece is worth its items at the time."""

    def worth(items: list[tuple[int, Decimal]]) -> int:
        priced = tuple((qty, prices[pid]) for pid, qty in items if pid in prices)
        return monthly_minor(priced, sub.interval, sub.interval_count, cur)

    inside = [
        (at, before) for at, before in changes if at > span.start and (span.end is None or at < span.end)
    ]
    out: list[Segment] = []
    start = span.start
    for at, before in inside:
        out.append(Segment(span.customer_id, span.subscription_id, start, at, worth(before)))
        start = at
    out.append(Segment(span.customer_id, span.subscription_id, start, span.end, worth(current)))
    return out
