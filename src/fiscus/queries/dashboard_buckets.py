"""Calendar buckets of the dashboard in the organisation's time zone, and the SQL that puts a row into
one (one helper per dialect: PostgreSQL converts with `AT TIME ZONE`; SQLite, which has no time-zone
database, adds the zone's UTC offset, which is exact because the offsets in force over the range are
computed here from `zoneinfo` and written into the statement as a CASE over the transition instants).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, DateTime, case, cast, func, literal
from sqlalchemy.sql.elements import ColumnElement

from fiscus.adapters.db.types import UtcDateTime
from fiscus.domain.errors import InvalidFieldError

MAX_BUCKETS = 1_000
"""More points than any chart can show; a day grain over ~2.7 years. Refused beyond, with a clear error."""


class Grain(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Bucket:
    """One point of every series: the calendar dates `start`..`end` (both included) in the
    organisation's time zone. Weeks run Monday to Sunday (ISO), months from the 1st; the first and last
    bucket are cut to the range."""

    start: date
    end: date


def parse_grain(grain: str) -> Grain:
    try:
        return Grain(grain)
    except ValueError:
        raise InvalidFieldError("grain", "must be one of day, week, month") from None


def bucket_key(day: date, grain: Grain) -> date:
    """The first day of the calendar bucket holding `day` (what the SQL helpers group by)."""
    if grain is Grain.WEEK:
        return day - timedelta(days=day.weekday())
    if grain is Grain.MONTH:
        return day.replace(day=1)
    return day


def make_buckets(start: date, end: date, grain: Grain) -> list[tuple[date, Bucket]]:
    """(key, bucket) for every bucket of the range, in order."""
    if end < start:
        raise InvalidFieldError("end", "must not be before start")
    out: list[tuple[date, Bucket]] = []
    day = start
    while day <= end:
        key = bucket_key(day, grain)
        if grain is Grain.DAY:
            nxt = day + timedelta(days=1)
        elif grain is Grain.WEEK:
            nxt = key + timedelta(days=7)
        else:
            nxt = (key.replace(day=28) + timedelta(days=4)).replace(day=1)
        out.append((key, Bucket(day, min(nxt - timedelta(days=1), end))))
        day = nxt
        if len(out) > MAX_BUCKETS:
            raise InvalidFieldError("end", f"the range has more than {MAX_BUCKETS} {grain.value}s")
    return out


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which `day` begins in `tz`."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def as_date(value: Any) -> date:
    """A bucket key as the driver returns it (a date on PostgreSQL, ISO text on SQLite)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def offsets(lo: datetime, hi: datetime, tz: ZoneInfo) -> list[tuple[datetime | None, int]]:
    """The zone's UTC offsets (minutes) over [lo, hi): [(from_instant, minutes)], the first from None.
    Transitions are found day by day and then to the minute by bisection."""

    def minutes(at: datetime) -> int:
        off = at.astimezone(tz).utcoffset()
        return int(off.total_seconds() // 60) if off is not None else 0

    out: list[tuple[datetime | None, int]] = [(None, minutes(lo))]
    at = lo
    while at < hi:
        nxt = min(at + timedelta(days=1), hi)
        if minutes(nxt) != minutes(at):
            a, b = at, nxt
            while b - a > timedelta(minutes=1):
                mid = a + (b - a) / 2
                if minutes(mid) == minutes(a):
                    a = mid
                else:
                    b = mid
            b = b.replace(second=0, microsecond=0)
            if minutes(b) == minutes(at):
                b += timedelta(minutes=1)
            out.append((b, minutes(b)))
        at = nxt
    return out


def local_day(dialect: str, col: Any, tz: ZoneInfo, lo: datetime, hi: datetime) -> ColumnElement[Any]:
    """The calendar date, in `tz`, of an instant column (rows in [lo, hi) only)."""
    if dialect == "postgresql":
        return cast(func.timezone(tz.key, col), Date)
    segments = offsets(lo, hi, tz)
    if len(segments) == 1:
        return func.date(col, f"{segments[0][1]:+d} minutes")
    whens = [(col < literal(at, UtcDateTime), f"{prev:+d} minutes") for (at, _), (_, prev) in zip(
        segments[1:], segments[:-1], strict=True
    ) if at is not None]
    return func.date(col, case(*whens, else_=f"{segments[-1][1]:+d} minutes"))


def truncate(dialect: str, day: ColumnElement[Any] | Any, grain: Grain) -> ColumnElement[Any]:
    """The bucket key (first day of the week or month) of a calendar-date expression."""
    if grain is Grain.DAY:
        return day if dialect == "postgresql" else func.date(day)  # type: ignore[no-any-return]
    if dialect == "postgresql":
        return cast(func.date_trunc(grain.value, cast(day, DateTime())), Date)
    if grain is Grain.WEEK:
        return func.date(day, "-6 days", "weekday 1")
    return func.date(day, "start of month")
