"""Calendar buckets of the dashboard in the organisation's time zone, and the SQL that puts a row into
one. The buckets' bounds are computed here with `zoneinfo` (local midnights as UTC instants, DST
included), so the database only compares: one helper per dialect (`bucket_index`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, DateTime, bindparam, case, func, literal
from sqlalchemy.dialects.postgresql import ARRAY
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


def bucket_index(dialect: str, col: Any, bounds: Sequence[Any], of_dates: bool) -> ColumnElement[int]:
    """The 0-based index i of the bucket with bounds[i] <= col < bounds[i+1], for rows already limited
    to [bounds[0], bounds[-1]). `bounds` are UTC instants (local midnights) for an instant column, or
    calendar dates for a DATE column, so time zones and DST were settled in Python, exactly.

    PostgreSQL: `width_bucket(col, thresholds)`, a binary search over an array parameter. SQLite: the
    same binary search written as nested CASEs over the (text-ordered) bounds: about log2(buckets)
    string comparisons per row, no date parsing."""
    if dialect == "postgresql":
        kind = Date() if of_dates else DateTime(timezone=True)
        return func.width_bucket(col, bindparam("bounds", list(bounds), type_=ARRAY(kind))) - 1
    typed = Date() if of_dates else UtcDateTime()

    def search(lo: int, hi: int) -> ColumnElement[int]:
        if hi - lo <= 1:
            return literal(lo)
        mid = (lo + hi) // 2
        return case((col < literal(bounds[mid], typed), search(lo, mid)), else_=search(mid, hi))

    return search(0, len(bounds) - 1)
