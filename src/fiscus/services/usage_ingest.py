"""Usage events in: a batch is accepted whole or refused whole (each bad event named by its index),
each transaction id counts once per organisation forever, and the hour buckets billing reads are
brought up to date in the same transaction as the raw events.

Exactly once, race-free on both databases: the batch's new transaction ids are claimed with
`INSERT … ON CONFLICT DO NOTHING RETURNING` on `usage_event_keys` (PostgreSQL makes a concurrent
insert of the same key wait for the first transaction and then skip it; SQLite serialises writers),
and only the claimed events are stored and added to the buckets. A resend is therefore a no-op that
answers as the first send did. Keys and bucket rows are touched in sorted order, so two overlapping
batches cannot deadlock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import msgspec
from sqlalchemy import Connection, bindparam, select, tuple_, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.upsert import insert_for
from fiscus.domain.clock import Clock
from fiscus.domain.errors import FieldConflictsError, FieldProblem, InvalidFieldError, ValidationError
from fiscus.domain.usage import (
    HOUR,
    Aggregation,
    Event,
    Metric,
    Partial,
    group_of,
    hour_of,
    matches,
    merge,
    partial_of,
)
from fiscus.queries.usage import bucket_partial
from fiscus.services import usage_pending as pending
from fiscus.services.usage_adjustments import mark_late
from fiscus.services.usage_metrics import metric_of, metrics_by_code
from fiscus.services.usage_settings import load_usage_settings

MAX_BATCH: Final = 1000
AHEAD: Final = timedelta(minutes=5)
MAX_PROPERTIES: Final = 32
MAX_PROPERTIES_BYTES: Final = 4096
MAX_TEXT: Final = 200
EXTERNAL_ID: Final = re.compile(r"[!-~]{1,128}")
"""A customer's external id: 1 to 128 printable ASCII characters, no spaces."""

BucketKey = tuple[int, int, str, datetime]
"""(customer_id, metric_id, group_value, hour)."""


@dataclass(frozen=True, slots=True)
class EventIn:
    transaction_id: str
    code: str
    timestamp: datetime
    properties: Mapping[str, object]
    customer_id: int | None = None
    external_customer_id: str | None = None


def _shape(i: int, e: EventIn) -> list[FieldProblem]:
    """What the event alone gets wrong (422; the API document states each)."""
    at = f"events.{i}"
    out: list[FieldProblem] = []
    if not e.transaction_id or len(e.transaction_id) > 128:
        out.append(FieldProblem(f"{at}.transaction_id", "1 to 128 characters"))
    if (e.customer_id is None) == (e.external_customer_id is None):
        out.append(FieldProblem(f"{at}.customer_id", "exactly one of customer_id and external_customer_id"))
    elif e.external_customer_id is not None and not EXTERNAL_ID.fullmatch(e.external_customer_id):
        out.append(FieldProblem(f"{at}.external_customer_id", "1 to 128 printable characters, no spaces"))
    if e.timestamp.tzinfo is None:
        out.append(FieldProblem(f"{at}.timestamp", "needs a UTC offset"))
    if len(e.properties) > MAX_PROPERTIES:
        out.append(FieldProblem(f"{at}.properties", f"at most {MAX_PROPERTIES} properties"))
    for key, value in e.properties.items():
        if len(key) > 64:
            out.append(FieldProblem(f"{at}.properties", f"property name '{key[:20]}…' over 64 characters"))
        if isinstance(value, float) or (not isinstance(value, (str, int, bool)) and value is not None):
            out.append(
                FieldProblem(
                    f"{at}.properties.{key}", "a string, integer, boolean or null (decimals as strings)"
                )
            )
        elif isinstance(value, str) and len(value) > MAX_TEXT:
            out.append(FieldProblem(f"{at}.properties.{key}", f"at most {MAX_TEXT} characters"))
    if not out and len(msgspec.json.encode(dict(e.properties))) > MAX_PROPERTIES_BYTES:
        out.append(FieldProblem(f"{at}.properties", f"at most {MAX_PROPERTIES_BYTES} bytes as JSON"))
    return out


def _window(i: int, e: EventIn, now: datetime, late: timedelta) -> list[FieldProblem]:
    """When the event may arrive: a conflict with the clock and the late window setting (409)."""
    if e.timestamp.tzinfo is None:
        return []
    if e.timestamp > now + AHEAD:
        return [FieldProblem(f"events.{i}.timestamp", "more than 5 minutes in the future")]
    if e.timestamp < now - late:
        return [FieldProblem(f"events.{i}.timestamp", f"older than the late window of {late.days} days")]
    return []


def ingest_events(
    db: Database, clock: Clock, org_id: int, events: Sequence[EventIn], *, late_days: int | None = None
) -> int:
    """Store a batch exactly once; answers how many events the batch held (a resend answers the same).

    `late_days` overrides the organisation's late window (a backfill by `fiscus events import`)."""
    if not events:
        raise InvalidFieldError("events", "at least one event")
    if len(events) > MAX_BATCH:
        raise InvalidFieldError("events", f"at most {MAX_BATCH} events per batch")
    now = clock.now()
    with db.write() as conn:
        settings = load_usage_settings(conn, org_id)
        seen = _known(conn, org_id, {e.transaction_id for e in events})
        fresh: dict[str, tuple[int, EventIn]] = {}
        for i, e in enumerate(events):
            if e.transaction_id not in seen and e.transaction_id not in fresh:
                fresh[e.transaction_id] = (i, e)
        if not fresh:
            return len(events)
        problems: list[FieldProblem] = []  # the request alone: 422
        conflicts: list[FieldProblem] = []  # the current data (metrics, customers, the clock): 409
        window = timedelta(days=settings.late_days if late_days is None else late_days)
        for i, e in fresh.values():
            problems.extend(_shape(i, e))
            conflicts.extend(_window(i, e, now, window))
        metrics = metrics_by_code(conn, org_id, {e.code for _i, e in fresh.values()})
        customers = _customers(conn, org_id, {e.customer_id for _i, e in fresh.values() if e.customer_id})
        externals = pending.resolve(conn, org_id, {e.external_customer_id for _i, e in fresh.values()})
        customers |= set(externals.values())
        held: list[dict[str, Any]] = []  # events for customers that do not exist yet (if allowed)
        rows: list[dict[str, Any]] = []
        partials: dict[BucketKey, Partial] = {}
        uniques: set[tuple[BucketKey, str]] = set()
        defined: dict[str, Metric] = {}
        for i, e in fresh.values():
            row = metrics.get(e.code)
            if row is None:
                conflicts.append(FieldProblem(f"events.{i}.code", f"no billable metric with code '{e.code}'"))
                continue
            ext = e.external_customer_id
            if ext is not None and e.customer_id is None:
                if ext in externals:
                    e = replace(e, customer_id=externals[ext])
                elif settings.accept_unknown_customers:  # kept until that customer exists
                    try:
                        _measure(metrics_of(defined, e.code, row), row["id"], replace(e, customer_id=0))
                    except InvalidFieldError as exc:
                        conflicts.append(FieldProblem(f"events.{i}.{exc.field}", exc.problems[0].message))
                        continue
                    held.append(pending.held_row(org_id, row["id"], e, ext, now))
                    continue
                else:
                    where = f"events.{i}.external_customer_id"
                    conflicts.append(FieldProblem(where, f"no customer with external id '{ext}'"))
                    continue
            if e.customer_id is None:
                continue  # reported by _shape
            if e.customer_id not in customers:
                conflicts.append(FieldProblem(f"events.{i}.customer_id", f"no customer {e.customer_id}"))
                continue
            metric = defined.get(e.code) or defined.setdefault(e.code, metric_of(row))
            try:
                key, partial = _measure(metric, row["id"], e)
            except InvalidFieldError as exc:  # the metric's field missing or not a number: its definition
                conflicts.append(FieldProblem(f"events.{i}.{exc.field}", exc.problems[0].message))
                continue
            if problems or conflicts:
                continue
            group = key[2] if key else group_of(metric, e.properties)
            rows.append(
                {
                    "organization_id": org_id,
                    "occurred_at": e.timestamp,
                    "transaction_id": e.transaction_id,
                    "customer_id": e.customer_id,
                    "metric_id": row["id"],
                    "group_value": group,
                    "properties": dict(e.properties),
                    "received_at": now,
                }
            )
            if key is not None and partial is not None:
                if metric.aggregation is Aggregation.UNIQUE_COUNT:
                    uniques |= {(key, u) for u in partial.uniques}
                partials[key] = merge(partials[key], partial) if key in partials else partial
        if problems:
            raise ValidationError(problems + conflicts)
        if conflicts:
            raise FieldConflictsError(conflicts)
        claimed = _claim(conn, org_id, rows)
        if len(claimed) < len(rows):  # a concurrent batch stored some of them first: count only ours
            rows = [r for r in rows if r["transaction_id"] in claimed]
            partials, uniques = _recount(rows, metrics)
        if rows:
            conn.execute(tu.usage_events.insert(), rows)
            _add_to_buckets(conn, org_id, partials, uniques)
            mark_late(conn, org_id, rows, now)  # billed periods these fall in are adjusted, never changed
        pending.hold(conn, org_id, held)
    return len(events)


def metrics_of(defined: dict[str, Metric], code: str, row: Mapping[str, Any]) -> Metric:
    """The domain metric of a metric row, made once per batch."""
    return defined.get(code) or defined.setdefault(code, metric_of(dict(row)))


def store_claimed(
    conn: Connection,
    org_id: int,
    rows: list[dict[str, Any]],
    metrics: Mapping[str, dict[str, Any]],
    now: datetime,
) -> None:
    """Store events whose transaction ids are already claimed (a kept event whose customer now exists):
    the raw rows, their hour buckets and the late marks, as a batch's own events are stored."""
    if not rows:
        return
    partials, uniques = _recount(rows, metrics)
    conn.execute(tu.usage_events.insert(), rows)
    _add_to_buckets(conn, org_id, partials, uniques)
    mark_late(conn, org_id, rows, now)


def release_pending(conn: Connection, org_id: int, customer_id: int, external_id: str, now: datetime) -> int:
    """Count the kept events of a customer just created with `external_id` (its transaction): how many."""
    held = pending.take(conn, org_id, external_id)
    if not held:
        return 0
    ids = {r["metric_id"] for r in held}
    m = tu.billable_metrics.c
    metrics = {
        r["code"]: dict(r)
        for r in conn.execute(select(tu.billable_metrics).where(m.id.in_(sorted(ids)))).mappings()
    }
    by_id = {row["id"]: metric_of(row) for row in metrics.values()}
    rows = [
        {
            "organization_id": org_id,
            "occurred_at": r["occurred_at"],
            "transaction_id": r["transaction_id"],
            "customer_id": customer_id,
            "metric_id": r["metric_id"],
            "group_value": group_of(by_id[r["metric_id"]], r["properties"]),
            "properties": r["properties"],
            "received_at": r["received_at"],
        }
        for r in held
    ]
    store_claimed(conn, org_id, rows, metrics, now)
    return len(rows)


def _measure(metric: Metric, metric_id: int, e: EventIn) -> tuple[BucketKey | None, Partial | None]:
    """The event's bucket and partial; (None, None) when the metric's filters leave it out."""
    if not matches(metric, e.properties):
        return None, None
    assert e.customer_id is not None
    hour = hour_of(e.timestamp)
    partial = partial_of(metric, Event(e.transaction_id, e.timestamp, e.properties), hour + HOUR)
    return (e.customer_id, metric_id, group_of(metric, e.properties), hour), partial


def _recount(
    rows: list[dict[str, Any]], metrics: Mapping[str, dict[str, Any]]
) -> tuple[dict[BucketKey, Partial], set[tuple[BucketKey, str]]]:
    by_id = {m["id"]: metric_of(m) for m in metrics.values()}
    partials: dict[BucketKey, Partial] = {}
    uniques: set[tuple[BucketKey, str]] = set()
    for r in rows:
        metric = by_id[r["metric_id"]]
        e = EventIn(r["transaction_id"], metric.code, r["occurred_at"], r["properties"], r["customer_id"])
        key, partial = _measure(metric, r["metric_id"], e)
        if key is None or partial is None:
            continue
        if metric.aggregation is Aggregation.UNIQUE_COUNT:
            uniques |= {(key, u) for u in partial.uniques}
        partials[key] = merge(partials[key], partial) if key in partials else partial
    return partials, uniques


def _known(conn: Connection, org_id: int, ids: set[str]) -> set[str]:
    k = tu.usage_event_keys.c
    return set(
        conn.execute(
            select(k.transaction_id).where(k.organization_id == org_id, k.transaction_id.in_(sorted(ids)))
        ).scalars()
    )


def _customers(conn: Connection, org_id: int, ids: set[int | None]) -> set[int]:
    c = t.customers.c
    wanted = sorted(i for i in ids if i is not None)
    if not wanted:
        return set()
    return set(conn.execute(select(c.id).where(c.organization_id == org_id, c.id.in_(wanted))).scalars())


def _claim(conn: Connection, org_id: int, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the batch's keys; the ids this transaction inserted (not a concurrent one)."""
    if not rows:
        return set()
    keys = sorted(
        (
            {
                "organization_id": org_id,
                "transaction_id": r["transaction_id"],
                "occurred_at": r["occurred_at"],
            }
            for r in rows
        ),
        key=lambda r: r["transaction_id"],
    )
    k = tu.usage_event_keys.c
    # executemany: SQLAlchemy sends multi-row INSERTs from one cached statement (insertmanyvalues)
    stmt = insert_for(conn, tu.usage_event_keys).on_conflict_do_nothing().returning(k.transaction_id)
    return set(conn.execute(stmt, keys).scalars())


def _add_to_buckets(
    conn: Connection, org_id: int, partials: dict[BucketKey, Partial], uniques: set[tuple[BucketKey, str]]
) -> None:
    """Merge the batch's partials into the stored hour buckets, under row locks (sorted: no deadlock)."""
    if uniques:
        values = [
            {
                "organization_id": org_id,
                "customer_id": c,
                "metric_id": m,
                "group_value": g,
                "hour": h,
                "value": u,
            }
            for (c, m, g, h), u in sorted(uniques)
        ]
        conn.execute(insert_for(conn, tu.usage_unique_values).on_conflict_do_nothing(), values)
    if not partials:
        return
    keys = sorted(partials)
    empty = [
        {
            "organization_id": org_id,
            "customer_id": c,
            "metric_id": m,
            "group_value": g,
            "hour": h,
            "count": 0,
            "total": Decimal(0),
            "weighted": Decimal(0),
        }
        for c, m, g, h in keys
    ]
    conn.execute(insert_for(conn, tu.usage_buckets).on_conflict_do_nothing(), empty)
    b = tu.usage_buckets.c
    stored = conn.execute(
        select(tu.usage_buckets)
        .where(
            b.organization_id == org_id, tuple_(b.customer_id, b.metric_id, b.group_value, b.hour).in_(keys)
        )
        .order_by(b.customer_id, b.metric_id, b.group_value, b.hour)
        .with_for_update()
    ).mappings()
    changes = []
    for row in stored:
        key = (row["customer_id"], row["metric_id"], row["group_value"], row["hour"])
        merged = merge(bucket_partial(dict(row)), partials[key])
        changes.append(
            {
                "k_customer": key[0],
                "k_metric": key[1],
                "k_group": key[2],
                "k_hour": key[3],
                "v_count": merged.count,
                "v_total": merged.total,
                "v_minimum": merged.minimum,
                "v_maximum": merged.maximum,
                "v_latest_at": merged.latest_at,
                "v_latest_id": merged.latest_id,
                "v_latest_value": merged.latest_value,
                "v_weighted": merged.weighted,
            }
        )
    conn.execute(
        update(tu.usage_buckets)
        .where(
            b.organization_id == org_id,
            b.customer_id == bindparam("k_customer"),
            b.metric_id == bindparam("k_metric"),
            b.group_value == bindparam("k_group"),
            b.hour == bindparam("k_hour"),
        )
        .values(
            {
                name: bindparam(f"v_{name}")
                for name in (
                    "count",
                    "total",
                    "minimum",
                    "maximum",
                    "latest_at",
                    "latest_id",
                    "latest_value",
                    "weighted",
                )
            }
        ),
        changes,
    )
