"""Billing period grid: wall-clock boundaries, month-end clamping, DST gaps and folds, exact proration."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiscus.domain import periods
from fiscus.domain.periods import (
    Interval,
    IntervalUnit,
    Period,
    boundary,
    ensure_aware_utc,
    index_of,
    local_date,
    period_at_index,
    period_containing,
    proration_ratio,
    start_of_local_day,
)
from tests.examples import examples

US = timedelta(microseconds=1)
ZONES = [
    "UTC",
    "Asia/Almaty",
    "Europe/Sofia",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "Asia/Kathmandu",
    "America/Sao_Paulo",
    "Europe/London",
]
SOFIA = ZoneInfo("Europe/Sofia")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
ALMATY = ZoneInfo("Asia/Almaty")
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
KIRITIMATI = ZoneInfo("Pacific/Kiritimati")

DAY = Interval(IntervalUnit.DAY)
WEEK = Interval(IntervalUnit.WEEK)
MONTH = Interval(IntervalUnit.MONTH)
QUARTER = Interval(IntervalUnit.QUARTER)
YEAR = Interval(IntervalUnit.YEAR)
MONTH_UNITS = {IntervalUnit.MONTH: 1, IntervalUnit.QUARTER: 3, IntervalUnit.YEAR: 12}
DAY_UNITS = {IntervalUnit.DAY: 1, IntervalUnit.WEEK: 7}


def at_local(
    tz: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=tz, fold=fold)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def wall(at: datetime, tz: ZoneInfo) -> datetime:
    return at.astimezone(tz).replace(tzinfo=None, fold=0)


def occurrences(local: datetime, tz: ZoneInfo) -> list[datetime]:
    """Every UTC instant whose wall clock in `tz` reads `local` (none in a gap, two in a fold)."""
    candidates = {local.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1)}
    return sorted(c for c in candidates if wall(c, tz) == local)


def expected_wall(anchor_wall: datetime, interval: Interval, n: int) -> datetime:
    """The n-th boundary's local wall time, computed independently of the module under test."""
    steps = n * interval.count
    if interval.unit in DAY_UNITS:
        return anchor_wall + timedelta(days=steps * DAY_UNITS[interval.unit])
    months = anchor_wall.year * 12 + anchor_wall.month - 1 + steps * MONTH_UNITS[interval.unit]
    year, month = months // 12, months % 12 + 1
    day = min(anchor_wall.day, calendar.monthrange(year, month)[1])
    return anchor_wall.replace(year=year, month=month, day=day)


# --- concrete cases -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("anchor", "interval", "tz", "expected"),
    [
        pytest.param(
            at_local(SOFIA, 2024, 1, 31),
            MONTH,
            SOFIA,
            [
                (2024, 1, 31),
                (2024, 2, 29),
                (2024, 3, 31),
                (2024, 4, 30),
                (2024, 5, 31),
                (2024, 6, 30),
                (2024, 7, 31),
                (2024, 8, 31),
                (2024, 9, 30),
                (2024, 10, 31),
                (2024, 11, 30),
                (2024, 12, 31),
                (2025, 1, 31),
                (2025, 2, 28),
            ],
            id="monthly-jan31-leap-sofia",
        ),
        pytest.param(
            at_local(SOFIA, 2023, 1, 31),
            MONTH,
            SOFIA,
            [(2023, 1, 31), (2023, 2, 28), (2023, 3, 31), (2023, 4, 30)],
            id="monthly-jan31-non-leap-sofia",
        ),
        pytest.param(
            at_local(SOFIA, 2024, 2, 29),
            YEAR,
            SOFIA,
            [(2024, 2, 29), (2025, 2, 28), (2026, 2, 28), (2027, 2, 28), (2028, 2, 29)],
            id="yearly-leap-day",
        ),
        pytest.param(
            at_local(SOFIA, 2023, 11, 30),
            QUARTER,
            SOFIA,
            [(2023, 11, 30), (2024, 2, 29), (2024, 5, 30), (2024, 8, 30), (2024, 11, 30)],
            id="quarterly-nov30",
        ),
        pytest.param(
            at_local(SOFIA, 2024, 8, 31),
            QUARTER,
            SOFIA,
            [(2024, 8, 31), (2024, 11, 30), (2025, 2, 28), (2025, 5, 31), (2025, 8, 31)],
            id="quarterly-aug31",
        ),
        pytest.param(
            at_local(ALMATY, 2024, 1, 31),
            MONTH,
            ALMATY,
            [(2024, 1, 31), (2024, 2, 29), (2024, 3, 31), (2024, 4, 30)],
            id="monthly-almaty-across-offset-change",
        ),
        pytest.param(
            at_local(SOFIA, 2024, 1, 31),
            Interval(IntervalUnit.MONTH, 2),
            SOFIA,
            [(2024, 1, 31), (2024, 3, 31), (2024, 5, 31), (2024, 7, 31)],
            id="bimonthly-clamp-never-accumulates",
        ),
    ],
)
def test_month_based_boundaries_fall_on_clamped_local_midnight(
    anchor: datetime, interval: Interval, tz: ZoneInfo, expected: list[tuple[int, int, int]]
) -> None:
    for n, ymd in enumerate(expected):
        got = boundary(anchor, interval, n, tz)
        assert got.tzinfo is UTC
        assert wall(got, tz) == datetime(*ymd), n


def test_yearly_leap_day_backwards() -> None:
    anchor = at_local(SOFIA, 2024, 2, 29)
    assert wall(boundary(anchor, YEAR, -1, SOFIA), SOFIA) == datetime(2023, 2, 28)
    assert wall(boundary(anchor, YEAR, -4, SOFIA), SOFIA) == datetime(2020, 2, 29)


@pytest.mark.parametrize(
    ("anchor", "interval", "tz", "n", "expected_utc"),
    [
        pytest.param(
            at_local(SOFIA, 2024, 1, 31), MONTH, SOFIA, 2, utc(2024, 3, 30, 22), id="sofia-mar31-eet"
        ),
        pytest.param(
            at_local(SOFIA, 2024, 1, 31), MONTH, SOFIA, 3, utc(2024, 4, 29, 21), id="sofia-apr30-eest"
        ),
        pytest.param(at_local(ALMATY, 2024, 1, 31), MONTH, ALMATY, 1, utc(2024, 2, 28, 18), id="almaty-+06"),
        pytest.param(at_local(ALMATY, 2024, 1, 31), MONTH, ALMATY, 2, utc(2024, 3, 30, 19), id="almaty-+05"),
        pytest.param(at_local(NEW_YORK, 2024, 3, 9, 9), DAY, NEW_YORK, 0, utc(2024, 3, 9, 14), id="ny-est"),
        pytest.param(at_local(NEW_YORK, 2024, 3, 9, 9), DAY, NEW_YORK, 1, utc(2024, 3, 10, 13), id="ny-edt"),
        pytest.param(at_local(NEW_YORK, 2024, 11, 1, 9), WEEK, NEW_YORK, 1, utc(2024, 11, 8, 14), id="ny-wk"),
        pytest.param(
            at_local(SOFIA, 2024, 10, 26, 12), DAY, SOFIA, 1, utc(2024, 10, 27, 10), id="sofia-fall"
        ),
        pytest.param(
            at_local(SOFIA, 2024, 3, 24, 12), WEEK, SOFIA, 1, utc(2024, 3, 31, 9), id="sofia-spring"
        ),
        pytest.param(
            at_local(NEW_YORK, 2024, 3, 3, 2, 30), WEEK, NEW_YORK, 1, utc(2024, 3, 10, 7), id="ny-gap-to-3am"
        ),
        pytest.param(
            at_local(LORD_HOWE, 2024, 10, 5, 2, 15), DAY, LORD_HOWE, 1, utc(2024, 10, 5, 15, 30), id="lhi-gap"
        ),
        pytest.param(
            at_local(LORD_HOWE, 2024, 10, 5, 2, 15),
            DAY,
            LORD_HOWE,
            2,
            utc(2024, 10, 6, 15, 15),
            id="lhi-after",
        ),
        pytest.param(
            at_local(NEW_YORK, 2024, 11, 2, 1, 30),
            DAY,
            NEW_YORK,
            1,
            utc(2024, 11, 3, 5, 30),
            id="ny-fold-first",
        ),
        pytest.param(
            at_local(ALMATY, 2024, 2, 27, 23, 30), DAY, ALMATY, 2, utc(2024, 2, 29, 17, 30), id="almaty-fold"
        ),
        pytest.param(
            at_local(ALMATY, 2024, 2, 27, 23, 30), DAY, ALMATY, 3, utc(2024, 3, 1, 18, 30), id="almaty-after"
        ),
        pytest.param(
            at_local(SAO_PAULO, 2018, 10, 4),
            MONTH,
            SAO_PAULO,
            1,
            utc(2018, 11, 4, 3),
            id="sao-paulo-no-midnight",
        ),
    ],
)
def test_boundary_instants(
    anchor: datetime, interval: Interval, tz: ZoneInfo, n: int, expected_utc: datetime
) -> None:
    assert boundary(anchor, interval, n, tz) == expected_utc


@pytest.mark.parametrize(
    ("anchor", "interval", "tz", "n", "hours"),
    [
        pytest.param(at_local(NEW_YORK, 2024, 3, 9, 9), DAY, NEW_YORK, 0, 23, id="ny-spring-23h"),
        pytest.param(at_local(NEW_YORK, 2024, 11, 2, 9), DAY, NEW_YORK, 0, 25, id="ny-fall-25h"),
        pytest.param(at_local(SOFIA, 2024, 3, 24, 12), WEEK, SOFIA, 0, 7 * 24 - 1, id="sofia-week-167h"),
        pytest.param(at_local(SOFIA, 2024, 10, 26, 12), DAY, SOFIA, 0, 25, id="sofia-fall-25h"),
        pytest.param(at_local(ALMATY, 2024, 2, 27, 23, 30), DAY, ALMATY, 2, 25, id="almaty-25h"),
    ],
)
def test_period_lengths_follow_the_wall_clock(
    anchor: datetime, interval: Interval, tz: ZoneInfo, n: int, hours: int
) -> None:
    period = period_at_index(anchor, interval, n, tz)
    assert period.seconds == hours * 3600
    assert wall(period.start, tz).time() == wall(period.end, tz).time()
    assert period.start.astimezone(tz).utcoffset() != period.end.astimezone(tz).utcoffset()


def test_lord_howe_gap_keeps_the_local_time_on_other_days() -> None:
    anchor = at_local(LORD_HOWE, 2024, 10, 5, 2, 15)
    assert [wall(boundary(anchor, DAY, n, LORD_HOWE), LORD_HOWE).time() for n in range(4)] == [
        time(2, 15),
        time(2, 30),
        time(2, 15),
        time(2, 15),
    ]


def test_anchor_on_second_occurrence_of_an_ambiguous_time_is_boundary_zero() -> None:
    anchor = at_local(NEW_YORK, 2024, 11, 3, 1, 30, fold=1)
    assert anchor.astimezone(UTC) == utc(2024, 11, 3, 6, 30)
    assert boundary(anchor, DAY, 0, NEW_YORK) == utc(2024, 11, 3, 6, 30)
    assert boundary(anchor, DAY, -1, NEW_YORK) == utc(2024, 11, 2, 5, 30)
    assert boundary(anchor, DAY, 1, NEW_YORK) == utc(2024, 11, 4, 6, 30)
    assert index_of(anchor, DAY, NEW_YORK, utc(2024, 11, 3, 6)) == -1


def test_skipped_calendar_day_has_no_period() -> None:
    anchor = at_local(KIRITIMATI, 1994, 12, 25)
    skipped = 6
    assert boundary(anchor, DAY, skipped, KIRITIMATI) == utc(1994, 12, 31, 10)
    assert boundary(anchor, DAY, skipped + 1, KIRITIMATI) == utc(1994, 12, 31, 10)
    with pytest.raises(ValueError, match="end must be after start"):
        period_at_index(anchor, DAY, skipped, KIRITIMATI)
    assert index_of(anchor, DAY, KIRITIMATI, utc(1994, 12, 31, 10)) == skipped + 1
    assert index_of(anchor, DAY, KIRITIMATI, utc(1994, 12, 31, 10) - US) == skipped - 1
    before = period_containing(anchor, DAY, KIRITIMATI, utc(1994, 12, 31, 9))
    after = period_containing(anchor, DAY, KIRITIMATI, before.end)
    assert before.seconds == after.seconds == 86_400
    assert wall(after.start, KIRITIMATI) == datetime(1995, 1, 1)


@pytest.mark.parametrize(
    ("day", "tz", "expected"),
    [
        pytest.param(date(2024, 3, 31), SOFIA, utc(2024, 3, 30, 22), id="sofia"),
        pytest.param(date(2018, 11, 4), SAO_PAULO, utc(2018, 11, 4, 3), id="sao-paulo-gap-at-midnight"),
        pytest.param(date(1994, 12, 31), KIRITIMATI, utc(1994, 12, 31, 10), id="kiritimati-skipped-day"),
        pytest.param(date(1995, 1, 1), KIRITIMATI, utc(1994, 12, 31, 10), id="kiritimati-next-day"),
        pytest.param(date(2024, 3, 1), ALMATY, utc(2024, 2, 29, 19), id="almaty"),
    ],
)
def test_start_of_local_day(day: date, tz: ZoneInfo, expected: datetime) -> None:
    assert start_of_local_day(day, tz) == expected


def test_local_date() -> None:
    assert local_date(utc(2024, 2, 29, 22, 30), SOFIA) == date(2024, 3, 1)
    assert local_date(utc(2024, 3, 1, 3), NEW_YORK) == date(2024, 2, 29)
    assert local_date(at_local(SOFIA, 2024, 3, 1), NEW_YORK) == date(2024, 2, 29)


def test_index_of_is_cheap_and_exact_far_from_the_anchor(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real: Callable[[datetime, Interval, int, ZoneInfo], datetime] = periods.boundary

    def counting(anchor: datetime, interval: Interval, n: int, tz: ZoneInfo) -> datetime:
        nonlocal calls
        calls += 1
        return real(anchor, interval, n, tz)

    monkeypatch.setattr(periods, "boundary", counting)
    anchor = at_local(SOFIA, 2024, 1, 31)
    for interval, at in [
        (DAY, utc(2500, 6, 1)),
        (DAY, utc(1700, 6, 1)),
        (MONTH, utc(9000, 1, 1)),
        (Interval(IntervalUnit.WEEK, 3), utc(1800, 12, 31, 23, 59)),
        (Interval(IntervalUnit.YEAR, 5), utc(3000, 2, 28, 22)),
    ]:
        calls = 0
        n = index_of(anchor, interval, SOFIA, at)
        assert calls <= 6
        assert real(anchor, interval, n, SOFIA) <= at < real(anchor, interval, n + 1, SOFIA)


def test_index_of_before_the_anchor_is_negative() -> None:
    anchor = at_local(SOFIA, 2024, 1, 31)
    assert index_of(anchor, MONTH, SOFIA, at_local(SOFIA, 2024, 1, 30, 23, 59)) == -1
    assert index_of(anchor, MONTH, SOFIA, at_local(SOFIA, 2023, 12, 31)) == -1
    assert index_of(anchor, MONTH, SOFIA, at_local(SOFIA, 2023, 12, 30, 23)) == -2
    assert period_containing(anchor, MONTH, SOFIA, at_local(SOFIA, 2023, 2, 28, 12)) == Period(
        at_local(SOFIA, 2023, 2, 28), at_local(SOFIA, 2023, 3, 31)
    )


def test_proration_ratio_is_exact() -> None:
    period = Period(utc(2024, 4, 1), utc(2024, 5, 1))
    assert proration_ratio(period, utc(2024, 4, 11)) == Fraction(2, 3)
    assert proration_ratio(period, utc(2024, 3, 1)) == 1
    assert proration_ratio(period, utc(2024, 6, 1)) == 0
    assert proration_ratio(period, utc(2024, 5, 1) - US) == Fraction(1, 30 * 86_400_000_000)


def test_period_value_object() -> None:
    period = Period(at_local(SOFIA, 2024, 1, 1), at_local(SOFIA, 2024, 1, 2))
    assert period.start.tzinfo is UTC
    assert period.end.tzinfo is UTC
    assert period.seconds == 86_400
    assert period.contains(period.start)
    assert not period.contains(period.end)
    assert period.contains(period.end - US)
    assert Period(utc(2024, 1, 1), utc(2024, 1, 1, 0, 0, 1) + 999_999 * US).seconds == 1
    with pytest.raises(ValueError, match="end must be after start"):
        Period(utc(2024, 1, 1), utc(2024, 1, 1))
    with pytest.raises(ValueError, match="end must be after start"):
        Period(utc(2024, 1, 2), utc(2024, 1, 1))
    with pytest.raises(ValueError, match=r"^start must be timezone-aware"):
        Period(datetime(2024, 1, 1), utc(2024, 1, 2))
    with pytest.raises(ValueError, match=r"^at must be timezone-aware"):
        period.contains(datetime(2024, 1, 1))


def test_interval_validation() -> None:
    assert Interval.parse("quarter", 2) == Interval(IntervalUnit.QUARTER, 2)
    assert Interval.parse("month", 1).unit is IntervalUnit.MONTH
    assert Interval(IntervalUnit.YEAR).count == 1
    with pytest.raises(ValueError, match=r"unknown interval unit 'fortnight'.*day, week, month"):
        Interval.parse("fortnight", 1)
    with pytest.raises(ValueError, match="count must be an integer >= 1"):
        Interval.parse("day", 0)
    with pytest.raises(ValueError, match="count must be an integer >= 1"):
        Interval(IntervalUnit.WEEK, -3)


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2024, 1, 1)
    with pytest.raises(ValueError, match=r"^billed_at must be timezone-aware"):
        ensure_aware_utc(naive, "billed_at")
    with pytest.raises(ValueError, match=r"^anchor must be timezone-aware"):
        boundary(naive, MONTH, 1, SOFIA)
    with pytest.raises(ValueError, match=r"^at must be timezone-aware"):
        index_of(utc(2024, 1, 1), MONTH, SOFIA, naive)
    with pytest.raises(ValueError, match=r"^at must be timezone-aware"):
        proration_ratio(Period(utc(2024, 1, 1), utc(2024, 2, 1)), naive)
    with pytest.raises(ValueError, match=r"^at must be timezone-aware"):
        local_date(naive, SOFIA)
    assert ensure_aware_utc(at_local(SOFIA, 2024, 7, 1)) == utc(2024, 6, 30, 21)
    assert ensure_aware_utc(at_local(SOFIA, 2024, 7, 1)).tzinfo is UTC


def test_out_of_range_boundary_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="out of range"):
        boundary(utc(2024, 1, 1), YEAR, 8000, SOFIA)
    with pytest.raises(ValueError, match="out of range"):
        boundary(utc(2024, 1, 1), DAY, -800_000, SOFIA)


# --- properties -----------------------------------------------------------------------------------

NICE_TIMES = [
    time(0),
    time(0, 30),
    time(1),
    time(1, 30),
    time(2),
    time(2, 15),
    time(2, 30),
    time(3),
    time(23, 30),
]


@st.composite
def anchors(draw: st.DrawFn) -> tuple[datetime, ZoneInfo]:
    """A local anchor 1990–2060, biased to month ends, leap days and times near DST switches."""
    tz = ZoneInfo(draw(st.sampled_from(ZONES)))
    year = draw(st.integers(1990, 2060))
    kind = draw(st.sampled_from(["leap", "month-end", "any"]))
    if kind == "leap":
        day = date(year - year % 4, 2, 29)
    else:
        month = draw(st.integers(1, 12))
        wanted = draw(st.integers(28, 31) if kind == "month-end" else st.integers(1, 31))
        day = date(year, month, min(wanted, calendar.monthrange(year, month)[1]))
    clock = draw(st.one_of(st.sampled_from(NICE_TIMES), st.times()))
    fold = draw(st.integers(0, 1))
    return datetime.combine(day, clock).replace(tzinfo=tz, fold=fold).astimezone(UTC), tz


intervals = st.builds(Interval, st.sampled_from(list(IntervalUnit)), st.integers(1, 12))
N_RANGE = range(-30, 61)


@settings(max_examples=examples(300, 100), deadline=None)
@given(anchor_tz=anchors(), interval=intervals)
def test_grid_tiles_and_keeps_the_anchor_wall_clock(
    anchor_tz: tuple[datetime, ZoneInfo], interval: Interval
) -> None:
    anchor, tz = anchor_tz
    anchor_wall = wall(anchor, tz)
    bounds = {n: boundary(anchor, interval, n, tz) for n in range(N_RANGE.start, N_RANGE.stop + 1)}
    assert bounds[0] == anchor

    for n, instant in bounds.items():
        assert instant.tzinfo is UTC
        if n == 0:
            continue
        target = expected_wall(anchor_wall, interval, n)
        existing = occurrences(target, tz)
        if existing:
            assert instant == existing[0]
            assert wall(instant, tz) == target
            if interval.unit in MONTH_UNITS:
                got = wall(instant, tz)
                assert got.day == min(anchor_wall.day, calendar.monthrange(got.year, got.month)[1])
        else:
            assert wall(instant - US, tz) < target < wall(instant, tz)

    for n in N_RANGE:
        if bounds[n] == bounds[n + 1]:
            assert interval == DAY
            assert not occurrences(expected_wall(anchor_wall, interval, n), tz)
            with pytest.raises(ValueError, match="end must be after start"):
                period_at_index(anchor, interval, n, tz)
            continue
        assert bounds[n] < bounds[n + 1]
        period = period_at_index(anchor, interval, n, tz)
        assert (period.start, period.end) == (bounds[n], bounds[n + 1])


@settings(max_examples=examples(300, 100), deadline=None)
@given(
    anchor_tz=anchors(),
    interval=intervals,
    n=st.integers(N_RANGE.start, N_RANGE.stop),
    position=st.fractions(0, 1).filter(lambda f: f < 1),
)
def test_index_round_trips_for_every_instant_of_a_period(
    anchor_tz: tuple[datetime, ZoneInfo], interval: Interval, n: int, position: Fraction
) -> None:
    anchor, tz = anchor_tz
    start, end = boundary(anchor, interval, n, tz), boundary(anchor, interval, n + 1, tz)
    if start == end:
        assert index_of(anchor, interval, tz, start) > n
        return
    period = period_at_index(anchor, interval, n, tz)
    inside = start + ((end - start) // US * position.numerator // position.denominator) * US
    for at in (start, inside, end - US):
        assert index_of(anchor, interval, tz, at) == n
        assert period_containing(anchor, interval, tz, at) == period
        assert period.contains(at)
    assert index_of(anchor, interval, tz, start - US) < n
    assert index_of(anchor, interval, tz, end) > n


@settings(max_examples=examples(300, 100), deadline=None)
@given(
    anchor_tz=anchors(),
    interval=intervals,
    at=st.datetimes(datetime(1800, 1, 1), datetime(2300, 1, 1), timezones=st.just(UTC)),
)
def test_index_of_brackets_any_instant(
    anchor_tz: tuple[datetime, ZoneInfo], interval: Interval, at: datetime
) -> None:
    anchor, tz = anchor_tz
    n = index_of(anchor, interval, tz, at)
    assert boundary(anchor, interval, n, tz) <= at < boundary(anchor, interval, n + 1, tz)
    assert period_containing(anchor, interval, tz, at).contains(at)


@settings(max_examples=examples(300, 100), deadline=None)
@given(
    anchor_tz=anchors(),
    interval=intervals,
    n=st.integers(N_RANGE.start, N_RANGE.stop),
    position=st.fractions(-1, 2),
)
def test_proration_ratio_is_exact_and_clamped(
    anchor_tz: tuple[datetime, ZoneInfo], interval: Interval, n: int, position: Fraction
) -> None:
    anchor, tz = anchor_tz
    start, end = boundary(anchor, interval, n, tz), boundary(anchor, interval, n + 1, tz)
    if start == end:
        return
    period = Period(start, end)
    at = start + ((end - start) // US * position.numerator // position.denominator) * US
    ratio = proration_ratio(period, at)
    assert 0 <= ratio <= 1
    assert proration_ratio(period, start) == 1
    assert proration_ratio(period, end) == 0
    if period.contains(at):
        elapsed = Fraction((at - start) // US, (end - start) // US)
        assert ratio + elapsed == 1
    else:
        assert ratio == (1 if at < start else 0)
