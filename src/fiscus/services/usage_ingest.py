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
from datetime import datetime, timedelta
from typing import Any, Final

import msgspec
from sqlalchemy import Connection, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.errors import FieldConflictsError, FieldProblem, InvalidFieldError, ValidationError
from fiscus.domain.usage import (
    Aggregation,
    BucketKey,
    Metric,
    Partial,
    bucket_partials,
    group_of,
    hour_of,
    matches,
    value_of,
)
from fiscus.services import usage_pending as pending
from fiscus.services import usage_store as store
from fiscus.services.usage_adjustments import mark_late
from fiscus.services.usage_metrics import metric_of, metrics_by_code
from fiscus.services.usage_settings import load_usage_settings

MAX_BATCH: Final = 1000
IMPORT_BATCH: Final = 10_000
"""A bulk import's largest transaction: the set-based writes cost per statement, not per row."""
AHEAD: Final = timedelta(minutes=5)
MAX_PROPERTIES: Final = 32
MAX_PROPERTIES_BYTES: Final = 4096
MAX_TEXT: Final = 200
_ZERO: Final = timedelta(0)
EXTERNAL_ID: Final = re.compile(r"[!-~]{1,128}")
"""A customer's external id: 1 to 128 printable ASCII characters, no spaces."""


class EventIn(msgspec.Struct, frozen=True, gc=False):
    """One event as a caller sends it (a struct: built per event by the API's decoder, cheaply)."""

    transaction_id: str
    code: str
    timestamp: datetime
    properties: Mapping[str, object]
    customer_id: int | None = None
    external_customer_id: str | None = None


def _shape(i: int, e: EventIn) -> tuple[list[FieldProblem], bytes]:
    """What the event alone gets wrong (422; the API document states each), and, when nothing, its
    properties as JSON (their size is one of the rules; the same bytes are stored)."""
    at = f"events.{i}"
    out: list[FieldProblem] = []
    tid = e.transaction_id
    if not tid or len(tid) > 128:
        out.append(FieldProblem(f"{at}.transaction_id", "1 to 128 characters"))
    if (e.customer_id is None) == (e.external_customer_id is None):
        out.append(FieldProblem(f"{at}.customer_id", "exactly one of customer_id and external_customer_id"))
    elif e.external_customer_id is not None and not EXTERNAL_ID.fullmatch(e.external_customer_id):
        out.append(FieldProblem(f"{at}.external_customer_id", "1 to 128 printable characters, no spaces"))
    if e.timestamp.tzinfo is None:
        out.append(FieldProblem(f"{at}.timestamp", "needs a UTC offset"))
    props = e.properties
    if len(props) > MAX_PROPERTIES:
        out.append(FieldProblem(f"{at}.properties", f"at most {MAX_PROPERTIES} properties"))
    for key, value in props.items():
        if len(key) > 64:
            out.append(FieldProblem(f"{at}.properties", f"property name '{key[:20]}…' over 64 characters"))
        kind = type(value)
        if kind is int or kind is bool or value is None or (kind is str and len(str(value)) <= MAX_TEXT):
            continue  # the usual case, decided without isinstance
        if isinstance(value, float) or not isinstance(value, (str, int, bool)):
            out.append(
                FieldProblem(
                    f"{at}.properties.{key}", "a string, integer, boolean or null (decimals as strings)"
                )
            )
        elif isinstance(value, str) and len(value) > MAX_TEXT:
            out.append(FieldProblem(f"{at}.properties.{key}", f"at most {MAX_TEXT} characters"))
    if out:
        return out, b""
    encoded = msgspec.json.encode(props if type(props) is dict else dict(props))
    if len(encoded) > MAX_PROPERTIES_BYTES:
        out.append(FieldProblem(f"{at}.properties", f"at most {MAX_PROPERTIES_BYTES} bytes as JSON"))
    return out, encoded


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
    db: Database,
    clock: Clock,
    org_id: int,
    events: Sequence[EventIn],
    *,
    late_days: int | None = None,
    limit: int = MAX_BATCH,
) -> int:
    """Store a batch exactly once; answers how many events the batch held (a resend answers the same).

    `late_days` overrides the organisation's late window and `limit` the batch size (a backfill by
    `fiscus events import`, up to `IMPORT_BATCH`).

    The batch's first occurrence of each transaction id is claimed before it is validated (one
    statement; a refused batch rolls its claims back): an id stored before is skipped unchecked, as a
    resend must be, and only the events this transaction claimed are checked, stored and counted."""
    if not events:
        raise InvalidFieldError("events", "at least one event")
    if len(events) > min(limit, IMPORT_BATCH):
        raise InvalidFieldError("events", f"at most {min(limit, IMPORT_BATCH)} events per batch")
    now = clock.now()
    first: dict[str, int] = {}  # a transaction id repeated inside the batch counts once, as first sent
    for i, e in enumerate(events):
        if e.transaction_id not in first:
            first[e.transaction_id] = i
    shapes = {i: _shape(i, events[i]) for i in first.values()}
    with db.write() as conn:
        settings = load_usage_settings(conn, org_id)
        bad = [tid for tid, i in first.items() if shapes[i][0]]
        stored = store.known(conn, org_id, bad) if bad else set()  # a bad event sent before stays a no-op
        claimed = store.claim(
            conn, org_id, [(tid, events[i].timestamp) for tid, i in first.items() if not shapes[i][0]]
        )
        fresh = [i for tid, i in first.items() if tid in claimed or (shapes[i][0] and tid not in stored)]
        if not fresh:
            return len(events)
        window = timedelta(days=settings.late_days if late_days is None else late_days)
        accept = settings.accept_unknown_customers
        rows, held, metrics = _check(conn, org_id, events, fresh, shapes, now, window, accept)
        if rows:
            store.insert_events(conn, org_id, rows, now)
            _count(conn, org_id, rows, metrics, now)
        pending.keep(conn, held)
    return len(events)


def _check(
    conn: Connection,
    org_id: int,
    events: Sequence[EventIn],
    fresh: list[int],
    shapes: Mapping[int, tuple[list[FieldProblem], bytes]],
    now: datetime,
    window: timedelta,
    accept_unknown: bool,
) -> tuple[list[store.Row], list[dict[str, Any]], dict[int, Metric]]:
    """The fresh events as rows to store and as kept rows (customers that do not exist yet), with their
    metrics by id; or the batch refused: 422 with every problem when one event alone is wrong, else 409
    with every conflict."""
    problems: list[FieldProblem] = []  # the request alone: 422
    conflicts: list[FieldProblem] = []  # the current data (metrics, customers, the clock): 409
    latest, earliest = now + AHEAD, now - window
    for i in fresh:
        problems.extend(shapes[i][0])
        ts = events[i].timestamp
        if ts.tzinfo is None:
            continue
        if ts > latest:
            conflicts.append(FieldProblem(f"events.{i}.timestamp", "more than 5 minutes in the future"))
        elif ts < earliest:
            msg = f"older than the late window of {window.days} days"
            conflicts.append(FieldProblem(f"events.{i}.timestamp", msg))
    metrics = metrics_by_code(conn, org_id, {events[i].code for i in fresh})
    customers = _customers(conn, org_id, {events[i].customer_id for i in fresh})
    externals = pending.resolve(conn, org_id, {events[i].external_customer_id for i in fresh})
    customers |= set(externals.values())
    held: list[dict[str, Any]] = []
    rows: list[store.Row] = []
    defined: dict[str, Metric] = {}
    by_id: dict[int, Metric] = {}
    for i in fresh:
        e = events[i]
        row = metrics.get(e.code)
        if row is None:
            conflicts.append(FieldProblem(f"events.{i}.code", f"no billable metric with code '{e.code}'"))
            continue
        metric = defined.get(e.code)
        if metric is None:
            metric = defined[e.code] = by_id[row["id"]] = metric_of(row)
        cid = e.customer_id
        ext = e.external_customer_id
        if ext is not None and cid is None:
            if ext in externals:
                cid = externals[ext]
            elif accept_unknown:  # kept until that customer exists
                try:
                    _value(metric, e.properties)
                except InvalidFieldError as exc:
                    conflicts.append(FieldProblem(f"events.{i}.{exc.field}", exc.problems[0].message))
                    continue
                held.append(pending.held_row(org_id, row["id"], e, ext, now))
                continue
            else:
                where = f"events.{i}.external_customer_id"
                conflicts.append(FieldProblem(where, f"no customer with external id '{ext}'"))
                continue
        if cid is None:
            continue  # reported by _shape
        if cid not in customers:
            conflicts.append(FieldProblem(f"events.{i}.customer_id", f"no customer {cid}"))
            continue
        try:
            counted, value = _value(metric, e.properties)
        except InvalidFieldError as exc:  # the metric's field missing or not a number: its definition
            conflicts.append(FieldProblem(f"events.{i}.{exc.field}", exc.problems[0].message))
            continue
        if problems or conflicts:
            continue
        props = shapes[i][1].decode()
        group = group_of(metric, e.properties)
        rows.append(store.Row(e.timestamp, e.transaction_id, cid, row["id"], group, props, counted, value))
    if problems:
        raise ValidationError(problems + conflicts)
    if conflicts:
        raise FieldConflictsError(conflicts)
    return rows, held, by_id


def _value(metric: Metric, properties: Mapping[str, object]) -> tuple[bool, Any]:
    """Whether the metric counts the event (its filters) and what it contributes (refused as
    `partial_of` refuses it)."""
    if not matches(metric, properties):
        return False, None
    return True, value_of(metric, properties)


def _count(
    conn: Connection, org_id: int, rows: list[store.Row], metrics: Mapping[int, Metric], now: datetime
) -> None:
    """Count stored events: the batch's total per hour bucket (`bucket_partials`: one pass) added to the
    stored buckets in one upsert, the unique values, and the billed periods they fall in marked late."""
    partials = bucket_partials(
        metrics,
        (
            (
                (r.customer_id, r.metric_id, r.group_value, hour_of(r.occurred_at)),
                r.occurred_at,
                r.transaction_id,
                r.value,
            )
            for r in rows
            if r.counted
        ),
    )
    store.add_uniques(conn, org_id, _uniques(metrics, partials))
    store.add_to_buckets(conn, org_id, partials)
    mark_late(conn, org_id, [(r.customer_id, r.occurred_at) for r in rows], now)


def _uniques(
    metrics: Mapping[int, Metric], partials: Mapping[BucketKey, Partial]
) -> set[tuple[BucketKey, str]]:
    return {
        (key, u)
        for key, p in partials.items()
        if metrics[key[1]].aggregation is Aggregation.UNIQUE_COUNT
        for u in p.uniques
    }


def release_pending(conn: Connection, org_id: int, customer_id: int, external_id: str, now: datetime) -> int:
    """Count the kept events of a customer just created with `external_id` (its transaction): how many."""
    held = pending.take(conn, org_id, external_id)
    if not held:
        return 0
    m = tu.billable_metrics.c
    ids = sorted({r["metric_id"] for r in held})
    by_id = {
        r["id"]: metric_of(dict(r))
        for r in conn.execute(select(tu.billable_metrics).where(m.id.in_(ids))).mappings()
    }
    by_received: dict[datetime, list[store.Row]] = {}
    for r in held:
        metric = by_id[r["metric_id"]]
        counted, value = _value(metric, r["properties"])
        by_received.setdefault(r["received_at"], []).append(
            store.Row(
                r["occurred_at"],
                r["transaction_id"],
                customer_id,
                r["metric_id"],
                group_of(metric, r["properties"]),
                msgspec.json.encode(r["properties"]).decode(),
                counted,
                value,
            )
        )
    for received_at, rows in by_received.items():  # each kept event keeps when it was received
        store.insert_events(conn, org_id, rows, received_at)
    rows = [r for group in by_received.values() for r in group]
    _count(conn, org_id, rows, by_id, now)
    return len(rows)


def _customers(conn: Connection, org_id: int, ids: set[int | None]) -> set[int]:
    c = t.customers.c
    wanted = sorted(i for i in ids if i is not None)
    if not wanted:
        return set()
    return set(conn.execute(select(c.id).where(c.organization_id == org_id, c.id.in_(wanted))).scalars())
