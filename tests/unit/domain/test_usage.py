"""Metrics: hour partials merged in any order give what a brute-force pass over the events gives."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.usage import (
    HOUR,
    WEIGHTED_PLACES,
    Aggregation,
    Event,
    Metric,
    MetricRounding,
    Partial,
    aggregate,
    group_of,
    hour_of,
    matches,
    merge,
    merge_all,
    number_of,
    partial_of,
)

START = datetime(2026, 3, 28, 22, 17, tzinfo=UTC)  # across Europe's DST switch and a month end
END = START + timedelta(days=4, minutes=13)

events_st = st.lists(
    st.tuples(
        st.integers(0, int((END - START).total_seconds()) - 1),
        st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False, allow_infinity=False),
        st.sampled_from(["a", "b", "c"]),
    ),
    max_size=40,
)


def _events(raw: list[tuple[int, Decimal, str]]) -> list[Event]:
    return [
        Event(f"tx{i}", START + timedelta(seconds=s), {"v": str(v), "u": u})
        for i, (s, v, u) in enumerate(raw)
    ]


def brute(
    metric: Metric, events: list[Event], start: datetime, end: datetime, before: list[Event]
) -> Decimal:
    """The aggregate straight from its definition, without partials."""
    inside = [e for e in events if start <= e.timestamp < end]
    if metric.aggregation is Aggregation.COUNT:
        return Decimal(len(inside))
    if metric.aggregation is Aggregation.UNIQUE_COUNT:
        return Decimal(len({e.properties["u"] for e in inside}))
    values = [Decimal(str(e.properties["v"])) for e in inside]
    if metric.aggregation is Aggregation.SUM:
        return sum(values, Decimal(0))
    if metric.aggregation is Aggregation.MAX:
        return max(values, default=Decimal(0))
    if metric.aggregation is Aggregation.MIN:
        return min(values, default=Decimal(0))
    if metric.aggregation is Aggregation.LATEST:
        last = max(inside, key=lambda e: (e.timestamp, e.transaction_id), default=None)
        return Decimal(str(last.properties["v"])) if last else Decimal(0)
    level = sum((Decimal(str(e.properties["v"])) for e in before), Decimal(0))
    integral, cursor = Decimal(0), start
    for e in sorted(inside, key=lambda e: e.timestamp):
        integral += level * Decimal((e.timestamp - cursor).total_seconds()).quantize(Decimal("0.000001"))
        level += Decimal(str(e.properties["v"]))
        cursor = e.timestamp
    integral += level * Decimal((end - cursor).total_seconds()).quantize(Decimal("0.000001"))
    length = Decimal((end - start).total_seconds()).quantize(Decimal("0.000001"))
    return (integral / length).quantize(Decimal(1).scaleb(-WEIGHTED_PLACES))


def metric_of(agg: Aggregation) -> Metric:
    field = None if agg is Aggregation.COUNT else "u" if agg is Aggregation.UNIQUE_COUNT else "v"
    return Metric("m", agg, field)


@settings(max_examples=60, deadline=None)
@given(raw=events_st, agg=st.sampled_from(list(Aggregation)), seed=st.integers(0, 10**6))
def test_hour_partials_merged_in_any_order_match_brute_force(
    raw: list[tuple[int, Decimal, str]], agg: Aggregation, seed: int
) -> None:
    metric = metric_of(agg)
    events = _events(raw)
    # a period inside the window, cut at arbitrary instants (not hour-aligned)
    start, end = START + timedelta(hours=5, minutes=7), END - timedelta(hours=3, seconds=11)
    buckets: dict[datetime, list[Partial]] = defaultdict(list)
    for e in events:
        if start <= e.timestamp < end:
            bucket_end = min(hour_of(e.timestamp) + HOUR, end)
            buckets[bucket_end].append(partial_of(metric, e, bucket_end))
    parts = [merge_all(ps, k) for k, ps in buckets.items()]
    random.Random(seed).shuffle(parts)
    before = [e for e in events if e.timestamp < start]
    level = sum((Decimal(str(e.properties["v"])) for e in before), Decimal(0))
    got = aggregate(metric, merge_all(parts, start), start, end, level)
    assert got == brute(metric, events, start, end, before)


@given(raw=events_st)
def test_merge_is_commutative_and_associative(raw: list[tuple[int, Decimal, str]]) -> None:
    metric = metric_of(Aggregation.WEIGHTED_SUM)
    ps = [partial_of(metric, e, hour_of(e.timestamp) + HOUR) for e in _events(raw)[:3]]
    while len(ps) < 3:
        ps.append(Partial(END))
    a, b, c = ps
    assert merge(a, b) == merge(b, a)
    assert merge(merge(a, b), c) == merge(a, merge(b, c))


def test_filters_and_groups() -> None:
    metric = Metric("bw", Aggregation.SUM, "gb", filters={"region": ("eu", "us")}, group_by="plan")
    assert matches(metric, {"region": "eu", "gb": "1"})
    assert not matches(metric, {"region": "asia", "gb": "1"})
    assert not matches(metric, {"gb": "1"})
    assert group_of(metric, {"plan": "pro"}) == "pro"
    assert group_of(metric, {}) == ""
    assert group_of(Metric("c", Aggregation.COUNT), {"plan": "pro"}) == ""


@pytest.mark.parametrize("bad", [None, 1.5, True, "ten", "NaN"])
def test_a_number_field_refuses_what_it_cannot_count(bad: object) -> None:
    with pytest.raises(InvalidFieldError):
        number_of(Metric("bw", Aggregation.SUM, "gb"), {"gb": bad})


def test_metric_rounding_is_applied_to_the_aggregate() -> None:
    metric = Metric("gb", Aggregation.SUM, "v", rounding=MetricRounding.CEIL, precision=0)
    e = Event("t", START, {"v": "1.01"})
    p = partial_of(metric, e, hour_of(START) + HOUR)
    assert aggregate(metric, p, START, END) == Decimal(2)


def test_weighted_sum_is_the_mean_level_with_carry_over() -> None:
    """10 GB held all period plus 20 GB added at mid-period → 20 GB mean."""
    metric = Metric("storage", Aggregation.WEIGHTED_SUM, "v")
    start, end = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    mid = start + (end - start) / 2
    p = partial_of(metric, Event("t", mid, {"v": "20"}), hour_of(mid) + HOUR)
    assert aggregate(metric, merge_all([p], start), start, end, Decimal(10)) == Decimal(20)


def test_metric_definition_checks() -> None:
    with pytest.raises(InvalidFieldError):
        Metric("x", Aggregation.SUM)
    with pytest.raises(InvalidFieldError):
        Metric("x", Aggregation.COUNT, "v")
