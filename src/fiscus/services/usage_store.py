"""The set-based writes of event ingestion (ADR 0008): a batch costs a handful of statements whatever
its size, because per-row statements and SQLAlchemy's per-parameter processing were most of the
ingest time (CPU µs per event measured in `bench/events.py`).

PostgreSQL: every statement takes whole columns as arrays (`unnest`), so a batch of 1,000 events is
one `INSERT … ON CONFLICT DO NOTHING RETURNING` for its keys, one insert of its events and one
`INSERT … ON CONFLICT DO UPDATE` that folds the batch's partials into the stored hour buckets in SQL
(NUMERIC arithmetic is exact; `latest` compares (timestamp, transaction id) with the C collation, the
order Python uses). Rows are fed in key order, so two overlapping batches lock in the same order.

SQLite serialises writers (`BEGIN IMMEDIATE`), so the same statements run through the driver's
`executemany`, instants as SQLAlchemy stores a `UtcDateTime` there (`sqlite_time`, the text every reader
expects); buckets are merged in Python (decimals are text there).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import Connection, select, tuple_

from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.upsert import insert_for
from fiscus.domain.usage import BucketKey, Partial, merge
from fiscus.queries.usage import bucket_partial

BUCKET_COLUMNS = (
    "count",
    "total",
    "minimum",
    "maximum",
    "latest_at",
    "latest_id",
    "latest_value",
    "weighted",
)


class Row(msgspec.Struct, frozen=True, gc=False):
    """An accepted event as it is stored: `properties` as JSON text, `value` its `value_of` (None for a
    count, or when the metric's filters leave it out: `counted` is then False, stored but not bucketed).
    A struct, not a dict: built once per event on the ingest path."""

    occurred_at: datetime
    transaction_id: str
    customer_id: int
    metric_id: int
    group_value: str
    properties: str
    counted: bool
    value: Decimal | str | None


def sqlite_time(at: datetime) -> str:
    """An aware instant as SQLite stores a `UtcDateTime` (SQLAlchemy's text form of naive UTC)."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _cursor(conn: Connection) -> Any:
    """The driver's cursor inside the connection's current transaction .

    On PostgreSQL arrays go in binary (`%b`): psycopg's text format escapes every element with a
    regular expression, most of the client's time."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    return dbapi.cursor()


def known(conn: Connection, org_id: int, ids: Iterable[str]) -> set[str]:
    """The transaction ids of the batch already stored (a resend)."""
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    cur = _cursor(conn)
    if _pg(conn):
        # a join of the batch's ids to the primary key: one index probe per id whatever the statistics
        # say (`= ANY(…)` let the planner filter every stored key of the organisation instead)
        cur.execute(
            "SELECT k.transaction_id FROM unnest(%b::varchar[]) AS u(t)"
            " JOIN usage_event_keys AS k ON k.organization_id = %s::bigint AND k.transaction_id = u.t",
            (wanted, org_id),
        )
    else:
        cur.execute(
            "SELECT transaction_id FROM usage_event_keys"
            " WHERE organization_id = ? AND transaction_id IN (SELECT value FROM json_each(?))",
            (org_id, msgspec.json.encode(wanted).decode()),
        )
    return {r[0] for r in cur.fetchall()}


def claim(conn: Connection, org_id: int, keys: list[tuple[str, datetime]]) -> set[str]:
    """Insert the batch's (transaction id, timestamp) keys in id order; the ids this transaction
    inserted. An id already stored is skipped; one a concurrent batch holds makes PostgreSQL wait for
    that transaction, then skip it if it committed. Run before the batch is validated: a refused batch
    rolls its claims back with everything else."""
    if not keys:
        return set()
    cur = _cursor(conn)
    if _pg(conn):
        cur.execute(
            "INSERT INTO usage_event_keys (organization_id, transaction_id, occurred_at)"
            " SELECT %s::bigint, u.t, u.o FROM unnest(%b::text[], %b::timestamptz[]) AS u(t, o)"
            " ORDER BY u.t ON CONFLICT DO NOTHING RETURNING transaction_id",
            (org_id, [k[0] for k in keys], [k[1] for k in keys]),
        )
        return {r[0] for r in cur.fetchall()}
    pairs = sorted((t, sqlite_time(at)) for t, at in keys)
    cur.execute(
        "INSERT INTO usage_event_keys (organization_id, transaction_id, occurred_at)"
        " SELECT ?, value ->> 0, value ->> 1 FROM json_each(?) WHERE true"
        " ON CONFLICT DO NOTHING RETURNING transaction_id",
        (org_id, msgspec.json.encode(pairs).decode()),
    )
    return {r[0] for r in cur.fetchall()}


def insert_events(conn: Connection, org_id: int, rows: list[Row], received_at: datetime) -> None:
    """Append the claimed events (one statement on PostgreSQL, one `executemany` on SQLite)."""
    if not rows:
        return
    cur = _cursor(conn)
    if _pg(conn):
        cur.execute(
            "INSERT INTO usage_events (organization_id, occurred_at, transaction_id, customer_id,"
            " metric_id, group_value, properties, received_at)"
            " SELECT %s::bigint, u.o, u.t, u.c, u.m, u.g, u.p::jsonb, %s"
            " FROM unnest(%b::timestamptz[], %b::text[], %b::bigint[], %b::bigint[], %b::text[], %b::text[])"
            " AS u(o, t, c, m, g, p)",
            (
                org_id,
                received_at,
                [r.occurred_at for r in rows],
                [r.transaction_id for r in rows],
                [r.customer_id for r in rows],
                [r.metric_id for r in rows],
                [r.group_value for r in rows],
                [r.properties for r in rows],
            ),
        )
        return
    received = sqlite_time(received_at)
    cur.executemany(
        "INSERT INTO usage_events (organization_id, occurred_at, transaction_id, customer_id, metric_id,"
        " group_value, properties, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                org_id,
                sqlite_time(r.occurred_at),
                r.transaction_id,
                r.customer_id,
                r.metric_id,
                r.group_value,
                r.properties,
                received,
            )
            for r in rows
        ],
    )


def add_uniques(conn: Connection, org_id: int, uniques: set[tuple[BucketKey, str]]) -> None:
    """The distinct values of unique-count metrics per hour (a value already there is kept)."""
    if not uniques:
        return
    ordered = sorted(uniques)
    if _pg(conn):
        _cursor(conn).execute(
            "INSERT INTO usage_unique_values"
            " (organization_id, customer_id, metric_id, group_value, hour, value)"
            " SELECT %s::bigint, u.c, u.m, u.g, u.h, u.v"
            " FROM unnest(%b::bigint[], %b::bigint[], %b::text[], %b::timestamptz[], %b::text[])"
            " AS u(c, m, g, h, v) ORDER BY 2, 3, 4, 5, 6 ON CONFLICT DO NOTHING",
            (
                org_id,
                [k[0] for k, _ in ordered],
                [k[1] for k, _ in ordered],
                [k[2] for k, _ in ordered],
                [k[3] for k, _ in ordered],
                [v for _, v in ordered],
            ),
        )
        return
    values = [
        {"organization_id": org_id, "customer_id": c, "metric_id": m, "group_value": g, "hour": h, "value": u}
        for (c, m, g, h), u in ordered
    ]
    conn.execute(insert_for(conn, tu.usage_unique_values).on_conflict_do_nothing(), values)


_PG_FOLD = """
INSERT INTO usage_buckets AS b (organization_id, customer_id, metric_id, group_value, hour,
    count, total, minimum, maximum, latest_at, latest_id, latest_value, weighted)
SELECT %s::bigint, u.c, u.m, u.g, u.h, u.n, u.total, u.lo, u.hi, u.lat, u.lid, u.lval, u.w
FROM unnest(%b::bigint[], %b::bigint[], %b::text[], %b::timestamptz[], %b::bigint[], %b::numeric[],
    %b::numeric[], %b::numeric[], %b::timestamptz[], %b::text[], %b::numeric[], %b::numeric[])
    AS u(c, m, g, h, n, total, lo, hi, lat, lid, lval, w)
ORDER BY 2, 3, 4, 5
ON CONFLICT (organization_id, customer_id, metric_id, group_value, hour) DO UPDATE SET
    count = b.count + EXCLUDED.count,
    total = b.total + EXCLUDED.total,
    minimum = LEAST(b.minimum, EXCLUDED.minimum),
    maximum = GREATEST(b.maximum, EXCLUDED.maximum),
    latest_at = CASE WHEN {later} THEN EXCLUDED.latest_at ELSE b.latest_at END,
    latest_id = CASE WHEN {later} THEN EXCLUDED.latest_id ELSE b.latest_id END,
    latest_value = CASE WHEN {later} THEN EXCLUDED.latest_value ELSE b.latest_value END,
    weighted = b.weighted + EXCLUDED.weighted
""".format(
    # domain.usage.merge: the greater (timestamp, transaction id) wins; ids compare by code point
    later="(EXCLUDED.latest_at IS NOT NULL AND (b.latest_at IS NULL"
    ' OR (EXCLUDED.latest_at, EXCLUDED.latest_id COLLATE "C") > (b.latest_at, b.latest_id COLLATE "C")))'
)


def add_to_buckets(conn: Connection, org_id: int, partials: Mapping[BucketKey, Partial]) -> None:
    """Merge the batch's partials (one per bucket, each ending at its hour's end) into the stored
    buckets. Buckets of one hour share their end, so the merge is sums, least, greatest and the later
    `latest`: on PostgreSQL one upsert doing that arithmetic; on SQLite read, merge, write."""
    if not partials:
        return
    keys = sorted(partials)
    if _pg(conn):
        ps = [partials[k] for k in keys]
        _cursor(conn).execute(
            _PG_FOLD,
            (
                org_id,
                [k[0] for k in keys],
                [k[1] for k in keys],
                [k[2] for k in keys],
                [k[3] for k in keys],
                [p.count for p in ps],
                [p.total for p in ps],
                [p.minimum for p in ps],
                [p.maximum for p in ps],
                [p.latest_at for p in ps],
                [p.latest_id for p in ps],
                [p.latest_value for p in ps],
                [p.weighted for p in ps],
            ),
        )
        return
    b = tu.usage_buckets.c
    merged = dict(partials)
    stored = conn.execute(
        select(tu.usage_buckets).where(
            b.organization_id == org_id, tuple_(b.customer_id, b.metric_id, b.group_value, b.hour).in_(keys)
        )
    ).mappings()
    for row in stored:
        key = (row["customer_id"], row["metric_id"], row["group_value"], row["hour"])
        merged[key] = merge(bucket_partial(dict(row)), partials[key])
    values = []
    for c, m, g, h in keys:
        p = merged[(c, m, g, h)]
        values.append(
            {
                "organization_id": org_id,
                "customer_id": c,
                "metric_id": m,
                "group_value": g,
                "hour": h,
                **{name: getattr(p, name) for name in BUCKET_COLUMNS},
            }
        )
    stmt = insert_for(conn, tu.usage_buckets)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["organization_id", "customer_id", "metric_id", "group_value", "hour"],
            set_={name: stmt.excluded[name] for name in BUCKET_COLUMNS},
        ),
        values,
    )
