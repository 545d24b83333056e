"""A customer's usage of one metric over [start, end), per group value, from the hour buckets.

Whole UTC hours inside the period come from `usage_buckets` (and `usage_unique_values`); a period
edge that is not on the hour (an anchor at 10:37, a zone with a half-hour offset) is completed from
the raw events of that one partial hour, so at most two hours of raw events are read per period and
metric. A weighted sum also needs the level carried in from before the period: the sum of the
increments of every earlier bucket (ADR 0008 says how that grows and how to bound it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_usage as tu
from fiscus.domain.errors import NotFoundError
from fiscus.domain.usage import (
    HOUR,
    Aggregation,
    Event,
    Metric,
    Partial,
    aggregate,
    hour_of,
    matches,
    merge,
    partial_of,
)


@dataclass(frozen=True, slots=True)
class GroupUsage:
    group: str
    quantity: Decimal
    events: int


def bucket_partial(row: Mapping[str, Any]) -> Partial:
    """A stored hour bucket as the domain's partial (its end is the hour's end)."""
    return Partial(
        end=row["hour"] + HOUR,
        count=row["count"],
        total=row["total"],
        minimum=row["minimum"],
        maximum=row["maximum"],
        latest_at=row["latest_at"],
        latest_id=row["latest_id"],
        latest_value=row["latest_value"],
        weighted=row["weighted"],
    )


def measure(
    conn: Connection,
    org_id: int,
    customer_id: int,
    metric_id: int,
    metric: Metric,
    start: datetime,
    end: datetime,
) -> list[GroupUsage]:
    """Every group's aggregate for the period, sorted by group value (groups without events omitted,
    except a weighted sum's groups still holding a level)."""
    first_full = start if hour_of(start) == start else hour_of(start) + HOUR
    full_end = max(hour_of(end), first_full)
    parts: dict[str, Partial] = {}

    def add(group: str, p: Partial) -> None:
        parts[group] = merge(parts[group], p) if group in parts else p

    b, e = tu.usage_buckets.c, tu.usage_events.c
    scope = (b.organization_id == org_id, b.customer_id == customer_id, b.metric_id == metric_id)
    if first_full < full_end:
        for row in conn.execute(
            select(tu.usage_buckets).where(*scope, b.hour >= first_full, b.hour < full_end)
        ).mappings():
            add(row["group_value"], bucket_partial(dict(row)))
        if metric.aggregation is Aggregation.UNIQUE_COUNT:
            uv = tu.usage_unique_values.c
            values: dict[str, set[str]] = defaultdict(set)
            for g, value in conn.execute(
                select(uv.group_value, uv.value)
                .where(
                    uv.organization_id == org_id,
                    uv.customer_id == customer_id,
                    uv.metric_id == metric_id,
                    uv.hour >= first_full,
                    uv.hour < full_end,
                )
                .distinct()
            ):
                values[g].add(value)
            for g, vs in values.items():
                add(g, Partial(full_end, uniques=frozenset(vs)))
    edges = [(start, min(first_full, end))]
    if full_end < end and full_end >= first_full:
        edges.append((full_end, end))
    edges = [(lo, hi) for lo, hi in edges if lo < hi]
    if edges:
        raw = conn.execute(
            select(e.occurred_at, e.transaction_id, e.group_value, e.properties).where(
                e.organization_id == org_id,
                e.customer_id == customer_id,
                e.metric_id == metric_id,
                or_(*(and_(e.occurred_at >= lo, e.occurred_at < hi) for lo, hi in edges)),
            )
        )
        for at, tx, group, props in raw:
            if not matches(metric, props):
                continue
            edge_end = next(hi for lo, hi in edges if lo <= at < hi)
            add(group, partial_of(metric, Event(tx, at, props), edge_end))
    levels = (
        _levels(conn, org_id, customer_id, metric_id, metric, start)
        if metric.aggregation is Aggregation.WEIGHTED_SUM
        else {}
    )
    out = []
    for group in sorted(set(parts) | {g for g, level in levels.items() if level}):
        p = parts.get(group, Partial(start))
        quantity = aggregate(metric, merge(Partial(start), p), start, end, levels.get(group, Decimal(0)))
        out.append(GroupUsage(group, quantity, p.count))
    return out


def _levels(
    conn: Connection, org_id: int, customer_id: int, metric_id: int, metric: Metric, start: datetime
) -> dict[str, Decimal]:
    """Σ increments before `start` per group: whole hours from the buckets, the partial hour raw."""
    b, e = tu.usage_buckets.c, tu.usage_events.c
    levels: dict[str, Decimal] = defaultdict(Decimal)
    for group, total in conn.execute(
        select(b.group_value, b.total).where(
            b.organization_id == org_id,
            b.customer_id == customer_id,
            b.metric_id == metric_id,
            b.hour < hour_of(start),
        )
    ):
        levels[group] += total
    if hour_of(start) < start:
        for at, tx, group, props in conn.execute(
            select(e.occurred_at, e.transaction_id, e.group_value, e.properties).where(
                e.organization_id == org_id,
                e.customer_id == customer_id,
                e.metric_id == metric_id,
                e.occurred_at >= hour_of(start),
                e.occurred_at < start,
            )
        ):
            if matches(metric, props):
                levels[group] += partial_of(metric, Event(tx, at, props), start).total
    return dict(levels)


def document_usage(conn: Connection, org_id: int, document_id: int) -> list[dict[str, Any]]:
    """A document's usage lines (404 for another tenant's document, [] for a document without usage)."""
    d = t.documents.c
    cur = conn.execute(select(d.currency).where(d.id == document_id, d.organization_id == org_id)).scalar()
    if cur is None:
        raise NotFoundError("document", document_id)
    u, m = tu.usage_lines.c, tu.billable_metrics.c
    rows = conn.execute(
        select(tu.usage_lines, m.code.label("metric_code"))
        .join(tu.billable_metrics, m.id == u.metric_id)
        .where(u.organization_id == org_id, u.document_id == document_id)
        .order_by(u.id)
    ).mappings()
    return [{**r, "currency": cur} for r in rows]
