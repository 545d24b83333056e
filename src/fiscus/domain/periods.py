"""Subscription billing periods, cut on the customer's local wall clock.

A plan that renews "on the 31st at 00:00 in Europe/Sofia" must renew at local midnight whatever the
UTC offset is that day, so boundaries are computed on the anchor's local date and time of day in the
billing time zone and only then converted to UTC; fixed-second arithmetic would drift by an hour at
every DST switch. For month-based units the anchor's day of month is clamped to the target month's
length, always from the anchor itself, so Jan 31 gives Feb 28/29, then Mar 31 again (the clamp never
accumulates).

Local times that do not map to exactly one instant are resolved deterministically:

* a local time inside a gap (spring forward, or a skipped day) resolves to the first instant after the
  gap, i.e. the transition instant itself: 02:30 in a 02:00→03:00 gap becomes 03:00 local, and 02:15 on
  Lord Howe's 02:00→02:30 day becomes 02:30 local;
* an ambiguous local time (fall back) resolves to its first occurrence (``fold=0``);
* boundary 0 is always the anchor instant itself, even when the anchor is the second occurrence of an
  ambiguous local time.

Where a zone skipped a whole calendar day (Pacific/Kiritimati 1994-12-31, Pacific/Apia 2011-12-30), a
daily schedule anchored exactly at local midnight gets two equal consecutive boundaries on that day: that
index has no period (``period_at_index`` raises ``ValueError``) and ``index_of`` never returns it, so
walking periods via ``period_containing(previous.end)`` skips it.

Everything here is pure (no clock reads, no I/O) so billing runs are reproducible; every datetime in and
out is timezone-aware, and every datetime returned is in UTC.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from fractions import Fraction
from zoneinfo import ZoneInfo

_MICROSECOND = timedelta(microseconds=1)
_DAY_US = 86_400_000_000
_MEAN_MONTH_US = 2_629_746_000_000


class IntervalUnit(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


_DAYS_PER_UNIT: dict[IntervalUnit, int] = {IntervalUnit.DAY: 1, IntervalUnit.WEEK: 7}
_MONTHS_PER_UNIT: dict[IntervalUnit, int] = {
    IntervalUnit.MONTH: 1,
    IntervalUnit.QUARTER: 3,
    IntervalUnit.YEAR: 12,
}


def _parse_unit(unit: str) -> IntervalUnit:
    try:
        return IntervalUnit(unit)
    except ValueError:
        expected = ", ".join(u.value for u in IntervalUnit)
        raise ValueError(f"unknown interval unit {unit!r}; expected one of: {expected}") from None


@dataclass(frozen=True, slots=True)
class Interval:
    """A billing cadence: each period spans ``count`` consecutive ``unit``s."""

    unit: IntervalUnit
    count: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "unit", _parse_unit(self.unit))
        if isinstance(self.count, bool) or self.count < 1:
            raise ValueError(f"interval count must be an integer >= 1, got {self.count!r}")

    @classmethod
    def parse(cls, unit: str, count: int) -> Interval:
        """Build an interval from stored or user-supplied values, rejecting unknown units early."""
        return cls(_parse_unit(unit), count)


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open span [start, end) of UTC time, so adjacent periods share a boundary without overlap."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start = ensure_aware_utc(self.start, "start")
        end = ensure_aware_utc(self.end, "end")
        if end <= start:
            raise ValueError("end must be after start")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    def contains(self, at: datetime) -> bool:
        """Whether `at` falls in this period; the end instant belongs to the next period."""
        at_utc = ensure_aware_utc(at, "at")
        return self.start <= at_utc < self.end

    @property
    def seconds(self) -> int:
        """Length in whole seconds (rounded down); use the datetimes for microsecond precision."""
        return (self.end - self.start) // timedelta(seconds=1)


def ensure_aware_utc(value: datetime, field: str = "datetime") -> datetime:
    """Reject naive datetimes, whose instant is unknowable, and normalise the rest to UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field} must be timezone-aware, got naive datetime {value.isoformat()}")
    return value.astimezone(UTC)


def _wall_clock(at: datetime, tz: ZoneInfo) -> datetime:
    return at.astimezone(tz).replace(tzinfo=None, fold=0)


def _resolve_wall(wall: datetime, tz: ZoneInfo) -> datetime:
    """Map a naive local time to one UTC instant: first occurrence if ambiguous, gap end if skipped."""
    wall = wall.replace(fold=0)
    first = wall.replace(tzinfo=tz).astimezone(UTC)
    if _wall_clock(first, tz) == wall:
        return first
    before = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if not before < first or _wall_clock(before, tz) > wall:
        before = first - timedelta(days=2)
    low, high = 0, (first - before) // _MICROSECOND
    while high - low > 1:
        middle = (low + high) // 2
        if _wall_clock(before + middle * _MICROSECOND, tz) > wall:
            high = middle
        else:
            low = middle
    return before + high * _MICROSECOND


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _add_months(day: date, months: int) -> date:
    year, month_index = divmod(day.year * 12 + day.month - 1 + months, 12)
    month = month_index + 1
    if not 1 <= year <= 9999:
        raise OverflowError("date value out of range")
    return date(year, month, min(day.day, _days_in_month(year, month)))


@functools.lru_cache(maxsize=8192)
def boundary(anchor: datetime, interval: Interval, n: int, tz: ZoneInfo) -> datetime:
    """The n-th boundary of the grid through `anchor` (n may be negative; boundary 0 is the anchor).

    Memoised (a pure function of hashable values): a billing run asks for the same few boundaries of a
    subscription several times (`index_of`, then `period_at_index`), seven calls per subscription."""
    anchor_utc = ensure_aware_utc(anchor, "anchor")
    if n == 0:
        return anchor_utc
    local = _wall_clock(anchor_utc, tz)
    steps = n * interval.count
    try:
        if interval.unit in _DAYS_PER_UNIT:
            day = local.date() + timedelta(days=steps * _DAYS_PER_UNIT[interval.unit])
        else:
            day = _add_months(local.date(), steps * _MONTHS_PER_UNIT[interval.unit])
        return _resolve_wall(datetime.combine(day, local.time()), tz)
    except OverflowError:
        raise ValueError(f"boundary {n} from anchor {anchor_utc.isoformat()} is out of range") from None


def period_at_index(anchor: datetime, interval: Interval, n: int, tz: ZoneInfo) -> Period:
    """Period n of the grid: [boundary n, boundary n + 1)."""
    return Period(boundary(anchor, interval, n, tz), boundary(anchor, interval, n + 1, tz))


def _mean_period_us(interval: Interval) -> int:
    if interval.unit in _DAYS_PER_UNIT:
        return _DAY_US * _DAYS_PER_UNIT[interval.unit] * interval.count
    return _MEAN_MONTH_US * _MONTHS_PER_UNIT[interval.unit] * interval.count


def index_of(anchor: datetime, interval: Interval, tz: ZoneInfo, at: datetime) -> int:
    """The n with boundary n <= at < boundary n + 1, found from an estimate so far dates stay cheap."""
    anchor_utc = ensure_aware_utc(anchor, "anchor")
    at_utc = ensure_aware_utc(at, "at")
    n = ((at_utc - anchor_utc) // _MICROSECOND) // _mean_period_us(interval)
    while boundary(anchor_utc, interval, n, tz) > at_utc:
        n -= 1
    while boundary(anchor_utc, interval, n + 1, tz) <= at_utc:
        n += 1
    return n


def period_containing(anchor: datetime, interval: Interval, tz: ZoneInfo, at: datetime) -> Period:
    """The grid period that `at` falls in."""
    return period_at_index(anchor, interval, index_of(anchor, interval, tz, at), tz)


def proration_ratio(period: Period, at: datetime) -> Fraction:
    """The exact share of `period` still ahead of `at`: 1 before it starts, 0 once it has ended."""
    at_utc = ensure_aware_utc(at, "at")
    if at_utc <= period.start:
        return Fraction(1)
    if at_utc >= period.end:
        return Fraction(0)
    return Fraction((period.end - at_utc) // _MICROSECOND, (period.end - period.start) // _MICROSECOND)


def local_date(at: datetime, tz: ZoneInfo) -> date:
    """The calendar date the customer sees at `at`, which decides invoice and due dates."""
    return ensure_aware_utc(at, "at").astimezone(tz).date()


def start_of_local_day(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant `day` begins in `tz` (the end of the gap when local midnight does not exist)."""
    return _resolve_wall(datetime.combine(day, time()), tz)
