"""events.py at scale: grow one organisation's usage to N events by set-based SQL (not through HTTP),
and CPU seconds of the server and of PostgreSQL (the robust figure on a loaded machine).

The bulk events are `bandwidth` events of one customer, `gb` an integer (n mod 97), region by n mod 3,
timestamps strictly increasing from the hour the subscription started up to two hours before now (so
they never share an hour bucket with the events the HTTP and import phases sent). Their hour buckets
are written by one `INSERT … SELECT … GROUP BY` from the stored events: count, sum, min, max and the
latest (the greatest transaction id, zero-padded, is the latest timestamp), weighted 0 as ingest keeps
it for a sum metric. Keys go to `usage_event_keys` as ingest would. One transaction per table.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from fiscus.adapters.db.engine import Database

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (its own, not its children's)."""
    fields = _stat(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / _TICKS


def postgres_cpu(db: Database) -> float:
    """CPU seconds of a PostgreSQL cluster on this machine: the postmaster, its live children and the
    children it reaped (0 when the server is not local)."""
    if db.engine.dialect.name != "postgresql":
        return 0.0
    with db.read() as conn:
        data_dir = conn.exec_driver_sql("SHOW data_directory").scalar_one()
    try:
        postmaster = int((Path(data_dir) / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return 0.0
    total = 0.0
    fields = _stat(postmaster)
    if fields is not None:
        total += sum(int(v) for v in fields[11:15]) / _TICKS
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            child = _stat(int(entry.name))
            if child is not None and int(child[1]) == postmaster:
                total += (int(child[11]) + int(child[12])) / _TICKS
    return total


def bulk_load(
    db: Database, org: int, customer: int, metric: int, start: datetime, end: datetime, n: int
) -> float:
    """Store `n` events in [start, end) with their keys and hour buckets; returns seconds taken."""
    started = time.perf_counter()
    step_us = max(1, int((end - start) / timedelta(microseconds=1)) // n)
    params = {"org": org, "cust": customer, "metric": metric, "n": n, "step": step_us}
    with db.write() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                text(
                    "INSERT INTO usage_events (organization_id, occurred_at, transaction_id, customer_id,"
                    " metric_id, group_value, properties, received_at)"
                    " SELECT :org, :t0 + (i::bigint * :step) * interval '1 microsecond',"
                    " 'bulk-' || lpad(i::text, 10, '0'), :cust, :metric,"
                    " (ARRAY['eu','us','asia'])[i % 3 + 1],"
                    " jsonb_build_object('gb', (i % 97)::text,"
                    " 'region', (ARRAY['eu','us','asia'])[i % 3 + 1]),"
                    " now() FROM generate_series(0, :n - 1) AS i"
                ),
                {**params, "t0": start},
            )
        else:
            conn.execute(
                text(
                    "INSERT INTO usage_events (organization_id, occurred_at, transaction_id, customer_id,"
                    " metric_id, group_value, properties, received_at)"
                    " WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < :n - 1)"
                    " SELECT :org, strftime('%Y-%m-%d %H:%M:%S', :t0 + (i * :step) / 1000000, 'unixepoch')"
                    " || '.' || printf('%06d', (i * :step) % 1000000), 'bulk-' || printf('%010d', i),"
                    " :cust, :metric, CASE i % 3 WHEN 0 THEN 'eu' WHEN 1 THEN 'us' ELSE 'asia' END,"
                    " json_object('gb', CAST(i % 97 AS TEXT),"
                    " 'region', CASE i % 3 WHEN 0 THEN 'eu' WHEN 1 THEN 'us' ELSE 'asia' END),"
                    " strftime('%Y-%m-%d %H:%M:%S', 'now') || '.000000' FROM s"
                ),
                {**params, "t0": int(start.timestamp())},
            )
    with db.write() as conn:
        conn.execute(
            text(
                "INSERT INTO usage_event_keys (organization_id, transaction_id, occurred_at)"
                " SELECT organization_id, transaction_id, occurred_at FROM usage_events"
                " WHERE organization_id = :org AND customer_id = :cust AND transaction_id LIKE 'bulk-%'"
            ),
            params,
        )
    with db.write() as conn:
        if conn.dialect.name == "postgresql":
            hour = "date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
            gb = "(properties ->> 'gb')::numeric"
            latest_id = 'max(transaction_id COLLATE "C")'
            latest_value = f"(substr({latest_id}, 6)::bigint % 97)::numeric"
            zero = "0"
        else:
            hour = "substr(occurred_at, 1, 13) || ':00:00.000000'"
            gb = "CAST(json_extract(properties, '$.gb') AS INTEGER)"
            latest_id = "max(transaction_id)"
            latest_value = f"CAST(CAST(substr({latest_id}, 6) AS INTEGER) % 97 AS TEXT)"
            zero = "'0'"
        as_decimal = "{}" if conn.dialect.name == "postgresql" else "CAST({} AS TEXT)"
        conn.execute(
            text(
                "INSERT INTO usage_buckets (organization_id, customer_id, metric_id, group_value, hour,"
                " count, total, minimum, maximum, latest_at, latest_id, latest_value, weighted)"
                f" SELECT organization_id, customer_id, metric_id, group_value, {hour}, count(*),"
                f" {as_decimal.format(f'sum({gb})')}, {as_decimal.format(f'min({gb})')},"
                f" {as_decimal.format(f'max({gb})')}, max(occurred_at), {latest_id}, {latest_value}, {zero}"
                " FROM usage_events WHERE organization_id = :org AND customer_id = :cust"
                " AND transaction_id LIKE 'bulk-%'"
                f" GROUP BY organization_id, customer_id, metric_id, group_value, {hour}"
            ),
            params,
        )
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE usage_events")
            conn.exec_driver_sql("ANALYZE usage_buckets")
            conn.exec_driver_sql("ANALYZE usage_event_keys")
        else:
            conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started
