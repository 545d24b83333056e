"""Billable metrics: which events count, what is measured, and how a period's aggregate is computed.

Pure. An event is `(transaction_id, timestamp, properties)`; a metric keeps the events that match its
property filters, splits them by an optional group-by property, and reduces them with one aggregation.

Aggregates are built from *partials*: a partial is the mergeable summary of any set of events (the
storage keeps one per hour bucket, see ADR 0008), and `merge` is associative and commutative, so a
period is the merge of its buckets whatever the order events arrived in. Every aggregation merges
exactly, including the three that are not plain sums:

* unique count keeps the set of distinct values (stored per bucket as rows, never as a counter);
* latest keeps the greatest (timestamp, transaction id) and its value (ties broken by transaction id,
  so resends and reordering cannot change the answer);
* weighted sum keeps Σδ and Σδ·(end − t) in seconds, which shifts exactly to any later end; the
  period's value is the time-weighted mean level ∫L(t)dt / (P1 − P0), where events are increments and
  the level carries over from earlier periods (Lago's semantics: "GB held during the month").

Stated rounding: a weighted sum is the one division; it is rounded to `WEIGHTED_PLACES` decimal places
half-up (`money.ROUNDING`). Every aggregate is then rounded by the metric's own rule (`rounding`,
`precision`: none, round half-up, ceil or floor to that many places) before any charge applies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from enum import StrEnum
from typing import Final

from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.money import ROUNDING

WEIGHTED_PLACES: Final = 10
"""Decimal places of a weighted sum (the one aggregate that divides), rounded half-up."""
HOUR: Final = timedelta(hours=1)
_PRECISION: Final = 60
"""Significant digits of the exact arithmetic here (the default 28 could round a large Σδ·seconds)."""


class Aggregation(StrEnum):
    COUNT = "count"
    SUM = "sum"
    MAX = "max"
    MIN = "min"
    UNIQUE_COUNT = "unique_count"
    LATEST = "latest"
    WEIGHTED_SUM = "weighted_sum"


NUMERIC: Final = frozenset(
    {Aggregation.SUM, Aggregation.MAX, Aggregation.MIN, Aggregation.LATEST, Aggregation.WEIGHTED_SUM}
)
"""Aggregations whose field must hold a decimal number."""


class MetricRounding(StrEnum):
    NONE = "none"
    ROUND = "round"
    CEIL = "ceil"
    FLOOR = "floor"


_MODES: Final = {
    MetricRounding.ROUND: ROUNDING,
    MetricRounding.CEIL: ROUND_CEILING,
    MetricRounding.FLOOR: ROUND_FLOOR,
}


@dataclass(frozen=True, slots=True)
class Metric:
    """A billable metric's definition. Immutable once events were counted against it."""

    code: str
    aggregation: Aggregation
    field: str | None = None
    filters: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    group_by: str | None = None
    rounding: MetricRounding = MetricRounding.NONE
    precision: int = 0

    def __post_init__(self) -> None:
        if self.aggregation is not Aggregation.COUNT and not self.field:
            raise InvalidFieldError(
                "field", f"a {self.aggregation.value} metric needs a property to aggregate"
            )
        if self.aggregation is Aggregation.COUNT and self.field:
            raise InvalidFieldError("field", "a count metric counts events and takes no field")
        if not 0 <= self.precision <= 12:
            raise InvalidFieldError("precision", "must be between 0 and 12")


@dataclass(frozen=True, slots=True)
class Event:
    transaction_id: str
    timestamp: datetime
    properties: Mapping[str, object]


def _text(value: object) -> str | None:
    """A property as the text filters and groups compare: strings, ints and booleans only."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    return None


def matches(metric: Metric, properties: Mapping[str, object]) -> bool:
    """Whether an event passes every filter (`region = eu`, or one of several values)."""
    return all(_text(properties.get(prop)) in allowed for prop, allowed in metric.filters.items())


def group_of(metric: Metric, properties: Mapping[str, object]) -> str:
    """The group-by value ('' without a group-by, or when the event lacks the property)."""
    if metric.group_by is None:
        return ""
    return _text(properties.get(metric.group_by)) or ""


def number_of(metric: Metric, properties: Mapping[str, object], where: str = "properties") -> Decimal:
    """The decimal value of the metric's field; a float, a missing or a non-number value is refused,
    so an accepted event is always counted (never accepted and silently ignored)."""
    assert metric.field is not None
    raw = properties.get(metric.field)
    if isinstance(raw, bool) or raw is None or isinstance(raw, float):
        raise InvalidFieldError(
            f"{where}.{metric.field}", f"metric '{metric.code}' needs a decimal string or integer here"
        )
    try:
        value = Decimal(raw) if isinstance(raw, (int, Decimal)) else Decimal(str(raw).strip())
    except InvalidOperation:
        raise InvalidFieldError(f"{where}.{metric.field}", f"'{raw}' is not a decimal number") from None
    if not value.is_finite():
        raise InvalidFieldError(f"{where}.{metric.field}", "must be a finite number")
    return value


def unique_of(metric: Metric, properties: Mapping[str, object], where: str = "properties") -> str:
    assert metric.field is not None
    value = _text(properties.get(metric.field))
    if value is None:
        raise InvalidFieldError(
            f"{where}.{metric.field}", f"metric '{metric.code}' needs a string or integer here"
        )
    return value


def hour_of(ts: datetime) -> datetime:
    """The UTC hour bucket an instant falls in."""
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _seconds(delta: timedelta) -> Decimal:
    """Exact seconds of a timedelta (microsecond resolution)."""
    return Decimal(delta.days * 86_400 + delta.seconds) + Decimal(delta.microseconds).scaleb(-6)


@dataclass(frozen=True, slots=True)
class Partial:
    """The mergeable summary of a set of events of one metric and group, up to the instant `end`."""

    end: datetime
    count: int = 0
    total: Decimal = Decimal(0)
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    latest_at: datetime | None = None
    latest_id: str = ""
    latest_value: Decimal | None = None
    weighted: Decimal = Decimal(0)
    """Σ δ·(end − t) in seconds (weighted sum only)."""
    uniques: frozenset[str] = frozenset()


def partial_of(metric: Metric, event: Event, end: datetime) -> Partial:
    """One event's partial, measured against `end` (its bucket's end)."""
    if metric.aggregation is Aggregation.COUNT:
        return Partial(end, count=1)
    if metric.aggregation is Aggregation.UNIQUE_COUNT:
        return Partial(end, count=1, uniques=frozenset({unique_of(metric, event.properties)}))
    value = number_of(metric, event.properties)
    weighted = Decimal(0)
    if metric.aggregation is Aggregation.WEIGHTED_SUM:
        with localcontext() as ctx:
            ctx.prec = _PRECISION
            weighted = value * _seconds(end - event.timestamp)
    return Partial(
        end,
        count=1,
        total=value,
        minimum=value,
        maximum=value,
        latest_at=event.timestamp,
        latest_id=event.transaction_id,
        latest_value=value,
        weighted=weighted,
    )


def _least(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return b if a is None else a if b is None else min(a, b)


def _greatest(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return b if a is None else a if b is None else max(a, b)


def merge(a: Partial, b: Partial) -> Partial:
    """The partial of the union of two disjoint event sets (associative, commutative)."""
    end = max(a.end, b.end)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        weighted = a.weighted + a.total * _seconds(end - a.end) + b.weighted + b.total * _seconds(end - b.end)
        total = a.total + b.total
    later = a
    if b.latest_at is not None and (
        a.latest_at is None or (b.latest_at, b.latest_id) > (a.latest_at, a.latest_id)
    ):
        later = b
    return Partial(
        end,
        count=a.count + b.count,
        total=total,
        minimum=_least(a.minimum, b.minimum),
        maximum=_greatest(a.maximum, b.maximum),
        latest_at=later.latest_at,
        latest_id=later.latest_id,
        latest_value=later.latest_value,
        weighted=weighted,
        uniques=a.uniques | b.uniques,
    )


def value_of(metric: Metric, properties: Mapping[str, object]) -> Decimal | str | None:
    """What one event contributes: nothing for a count, the value for a unique count, else its number
    (refused as `partial_of` refuses it)."""
    if metric.aggregation is Aggregation.COUNT:
        return None
    if metric.aggregation is Aggregation.UNIQUE_COUNT:
        return unique_of(metric, properties)
    return number_of(metric, properties)


Item = tuple[datetime, str, Decimal | str | None]
"""One event as a bucket needs it: (timestamp, transaction id, `value_of`)."""


def fold(metric: Metric, items: Sequence[Item], end: datetime) -> Partial:
    """The partial of several events measured against one `end`, in one pass: equal to merging their
    `partial_of`s in order (the stored hour bucket is exactly this, whatever the batches were)."""
    n = len(items)
    if not n:
        return Partial(end)
    agg = metric.aggregation
    if agg is Aggregation.COUNT:
        return Partial(end, count=n)
    if agg is Aggregation.UNIQUE_COUNT:
        return Partial(end, count=n, uniques=frozenset(str(v) for _at, _tx, v in items))
    numbers = [v for _at, _tx, v in items]
    if not all(type(v) is Decimal for v in numbers):
        raise ValueError("a numeric metric's values are decimals")
    decimals: list[Decimal] = numbers  # type: ignore[assignment]  # checked just above
    last = max(range(n), key=lambda k: (items[k][0], items[k][1]))
    weighted = Decimal(0)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        total = sum(decimals, Decimal(0))
        if agg is Aggregation.WEIGHTED_SUM:
            for v, (at, _tx, _v) in zip(decimals, items, strict=True):
                weighted += v * _seconds(end - at)
    return Partial(
        end,
        count=n,
        total=total,
        minimum=min(decimals),
        maximum=max(decimals),
        latest_at=items[last][0],
        latest_id=items[last][1],
        latest_value=decimals[last],
        weighted=weighted,
    )


def partial_of_values(
    metric: Metric, events: Sequence[Event], values: Sequence[Decimal | str | None], end: datetime
) -> Partial:
    """`fold` of events with their `value_of`s."""
    return fold(
        metric, [(e.timestamp, e.transaction_id, v) for e, v in zip(events, values, strict=True)], end
    )


BucketKey = tuple[int, int, str, datetime]
"""(customer id, metric id, group value, UTC hour)."""


def bucket_partials(
    metrics: Mapping[int, Metric], rows: Iterable[tuple[BucketKey, datetime, str, Decimal | str | None]]
) -> dict[BucketKey, Partial]:
    """A batch's events totalled per hour bucket: one `fold` per bucket (each ending at its hour's end),
    ready to be added to the stored buckets in one statement. `rows` are (bucket, timestamp,
    transaction id, value), each event once (a batch's duplicates and resends are left out before)."""
    by_key: dict[BucketKey, list[Item]] = {}
    for key, at, tx, value in rows:
        items = by_key.get(key)
        if items is None:
            by_key[key] = [(at, tx, value)]
        else:
            items.append((at, tx, value))
    return {key: fold(metrics[key[1]], items, key[3] + HOUR) for key, items in by_key.items()}


def merge_all(parts: Iterable[Partial], end: datetime) -> Partial:
    result = Partial(end)
    for p in parts:
        result = merge(result, p)
    return result


def round_aggregate(metric: Metric, value: Decimal) -> Decimal:
    """The metric's stated rounding of its aggregate."""
    if metric.rounding is MetricRounding.NONE:
        return value
    return value.quantize(Decimal(1).scaleb(-metric.precision), rounding=_MODES[metric.rounding])


def aggregate(
    metric: Metric, period: Partial, start: datetime, end: datetime, level_before: Decimal = Decimal(0)
) -> Decimal:
    """The period [start, end)'s aggregate from the merge of its events' partials.

    `level_before` is the sum of every increment before `start` (weighted sum only).
    """
    agg = metric.aggregation
    if agg is Aggregation.COUNT:
        value = Decimal(period.count)
    elif agg is Aggregation.SUM:
        value = period.total
    elif agg is Aggregation.MAX:
        value = period.maximum if period.maximum is not None else Decimal(0)
    elif agg is Aggregation.MIN:
        value = period.minimum if period.minimum is not None else Decimal(0)
    elif agg is Aggregation.UNIQUE_COUNT:
        value = Decimal(len(period.uniques))
    elif agg is Aggregation.LATEST:
        value = period.latest_value if period.latest_value is not None else Decimal(0)
    else:
        length = _seconds(end - start)
        if period.end > end:
            raise ValueError("a partial past the period's end")
        with localcontext() as ctx:
            ctx.prec = _PRECISION
            integral = level_before * length + period.weighted + period.total * _seconds(end - period.end)
            mean = integral / length
        value = mean.quantize(Decimal(1).scaleb(-WEIGHTED_PLACES), rounding=ROUNDING)
    return round_aggregate(metric, value)
