"""Ingestion folds a bucket's events in one pass (`partial_of_values`); it must equal merging each
event's `partial_of` in order, the definition billing and the exactness test rely on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from fiscus.domain.usage import (
    Aggregation,
    Event,
    Metric,
    Partial,
    merge,
    partial_of,
    partial_of_values,
    value_of,
)

HOUR_START = datetime(2026, 3, 29, 0, tzinfo=UTC)
NUMBERS = st.sampled_from(["1", "1.50", "1.5", "-2", "0", "0.000001", "123456789012345678.123456789012", "7"])


@st.composite
def events(draw: st.DrawFn) -> list[Event]:
    n = draw(st.integers(1, 8))
    seconds = draw(st.lists(st.integers(0, 3599), min_size=n, max_size=n))
    return [
        Event(f"t{draw(st.integers(0, 50))}-{i}", HOUR_START + timedelta(seconds=s), {"v": draw(NUMBERS)})
        for i, s in enumerate(seconds)
    ]


@settings(max_examples=60, deadline=None)
@given(evs=events(), aggregation=st.sampled_from(list(Aggregation)))
def test_one_pass_equals_merging_each_event(evs: list[Event], aggregation: Aggregation) -> None:
    metric = Metric("m", aggregation, None if aggregation is Aggregation.COUNT else "v")
    end = HOUR_START + timedelta(hours=1)
    merged = Partial(end)
    for e in evs:
        merged = merge(merged, partial_of(metric, e, end))
    folded = partial_of_values(metric, evs, [value_of(metric, e.properties) for e in evs], end)
    assert folded == merged
    assert str(folded.minimum) == str(merged.minimum)  # the same representative of equal values
    if aggregation is not Aggregation.WEIGHTED_SUM:
        assert folded.weighted == Decimal(0)
