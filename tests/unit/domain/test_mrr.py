"""MRR: normalisation to a month with one rounding, and movements that always add up, checked against
a brute-force evaluation of every customer's MRR at every instant."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from fiscus.domain.money import currency
from fiscus.domain.mrr import Movement, Segment, classify, monthly_minor, mrr_series
from tests.examples import examples

EUR, JPY, KWD = currency("EUR"), currency("JPY"), currency("KWD")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_monthly_normalisation_rounds_once_half_up() -> None:
    assert monthly_minor(((Decimal(1), Decimal("150")),), "year", 1, EUR) == 1250
    assert monthly_minor(((Decimal(1), Decimal("100")),), "year", 1, EUR) == 833  # 8.3333…
    assert monthly_minor(((Decimal(1), Decimal("0.06")),), "year", 1, EUR) == 1  # 0.005 → 0.01
    assert monthly_minor(((Decimal(3), Decimal("10")),), "quarter", 1, JPY) == 10
    assert monthly_minor(((Decimal(1), Decimal("12")),), "month", 2, EUR) == 600
    assert monthly_minor(((Decimal(1), Decimal("7")),), "week", 1, EUR) == 3033  # 7 × 52 / 12 = 30.333…
    assert monthly_minor(((Decimal(1), Decimal("1")),), "day", 1, KWD) == 30417  # 365 / 12 = 30.41666…
    # rounded once per subscription: two items of 0.004 a month are 0.01 together, not 0.00 + 0.00
    assert monthly_minor(((Decimal(1), Decimal("0.048")),) * 2, "year", 1, EUR) == 1


def test_classification() -> None:
    assert classify(0, 5, False) is Movement.NEW
    assert classify(0, 5, True) is Movement.REACTIVATION
    assert classify(5, 0, True) is Movement.CHURN
    assert classify(5, 7, True) is Movement.EXPANSION
    assert classify(7, 5, True) is Movement.CONTRACTION
    assert classify(5, 5, True) is None


segments = st.lists(
    st.builds(
        lambda c, s, start, length, amount: Segment(
            c,
            s,
            T0 + timedelta(hours=start),
            None if length is None else T0 + timedelta(hours=start + length),
            amount,
        ),
        st.integers(1, 4),
        st.integers(1, 6),
        st.integers(-200, 800),
        st.none() | st.integers(0, 400),
        st.integers(0, 5000),
    ),
    max_size=25,
)


def _level(segs: list[Segment], customer: int, at: datetime) -> int:
    """A customer's MRR just before `at`."""
    return sum(
        s.monthly_minor
        for s in segs
        if s.customer_id == customer
        and s.start < at
        and (s.end is None or s.end >= at)
        and (s.end is None or s.end > s.start)
    )


@settings(max_examples=examples(300, 100), deadline=None)
@given(segments, st.lists(st.integers(0, 600), min_size=1, max_size=8, unique=True))
def test_series_matches_brute_force(segs: list[Segment], cuts: list[int]) -> None:
    boundaries = [T0 + timedelta(hours=h) for h in sorted([*cuts, 700])]
    opening, series = mrr_series(segs, boundaries)
    customers = {s.customer_id for s in segs}
    assert opening == sum(_level(segs, c, boundaries[0]) for c in customers)
    previous = opening
    instants = sorted({s.start for s in segs} | {s.end for s in segs if s.end is not None})
    for i, point in enumerate(series):
        lo, hi = boundaries[i], boundaries[i + 1]
        assert point.mrr_minor == sum(_level(segs, c, hi) for c in customers)
        moved = point.new_minor + point.expansion_minor + point.reactivation_minor
        assert point.mrr_minor == previous + moved - point.contraction_minor - point.churn_minor
        previous = point.mrr_minor
        # every movement re-derived: the level just after each instant vs just before, in this bucket
        expected: dict[Movement, int] = defaultdict(int)
        for c in customers:
            for at in instants:
                if not lo <= at < hi:
                    continue
                before, after = _level(segs, c, at), _level(segs, c, at + timedelta(microseconds=1))
                had = any(_level(segs, c, x + timedelta(microseconds=1)) > 0 for x in instants if x < at)
                kind = classify(before, after, had)
                if kind is not None:
                    expected[kind] += abs(after - before)
        got = {
            Movement.NEW: point.new_minor,
            Movement.EXPANSION: point.expansion_minor,
            Movement.CONTRACTION: point.contraction_minor,
            Movement.CHURN: point.churn_minor,
            Movement.REACTIVATION: point.reactivation_minor,
        }
        assert {k: v for k, v in got.items() if v} == {k: v for k, v in expected.items() if v}
