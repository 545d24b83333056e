"""Calendar buckets of the dashboard in the organisation's time zone, and the SQL that sums rows per
bucket. The buckets' bounds are computed here with `zoneinfo` (local midnights as UTC instants, DST
included), so the database only compares: one statement shape per dialect (`per_bucket`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, DateTime, String, and_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY

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


def per_bucket(
    conn: Connection, col: Any, bounds: Sequence[datetime], values: list[Any], where: list[Any], source: Any
) -> list[Any]:
    """(bucket index i, Σ value...) for the rows of `source` matching `where` whose instant `col`
    falls in [bounds[i], bounds[i+1]). The bounds are UTC instants (local midnights), so time zones
    and DST were settled in Python, exactly; the database only compares. One statement, per dialect:

    - PostgreSQL: `width_bucket(col, thresholds)` (a binary search over an array parameter) in a
      subquery, grouped on outside (hash aggregate).
    - SQLite: the bounds as one JSON array parameter (`json_each`, each bound paired with the next by
      `lead`), CROSS JOINed (SQLite then keeps that order) to the rows: for each bucket a range scan of
      the covering index, so the rows are read once, in index order, and never sorted. The statement
      has the same shape whatever the number of buckets (building one SELECT per bucket cost more in
      Python than the scans themselves).
    """
    if conn.dialect.name == "postgresql":
        thresholds = bindparam("bounds", list(bounds), type_=ARRAY(DateTime(timezone=True)))
        idx = (func.width_bucket(col, thresholds) - 1).label("k")
        inner = (
            select(idx, *(v.label(f"v{i}") for i, v in enumerate(values)))
            .select_from(source)
            .where(*where, col >= bounds[0], col < bounds[-1])
            .subquery()
        )
        return list(
            conn.execute(select(inner.c.k, *(func.sum(c) for c in list(inner.c)[1:])).group_by(inner.c.k))
        )
    stored = json.dumps([b.astimezone(UTC).strftime(SQLITE_INSTANT) for b in bounds])
    each = func.json_each(bindparam("bounds", stored, type_=String)).table_valued("key", "value")
    edges = select(
        each.c.key.label("k"),
        each.c.value.label("lo"),
        func.lead(each.c.value).over(order_by=each.c.key).label("hi"),
    ).subquery("edges")
    joined = edges.join(source, and_(col >= edges.c.lo, col < edges.c.hi), full=False)
    statement = (
        select(edges.c.k, *(func.sum(v) for v in values))
        .select_from(joined)
        .where(*where)
        .group_by(edges.c.k)
    )
    return list(conn.execute(statement))


SQLITE_INSTANT = "%Y-%m-%d %H:%M:%S.%f"
"""How an instant is stored on SQLite (SQLAlchemy's DATETIME text, naive UTC), so bounds compare as
the stored text does."""
