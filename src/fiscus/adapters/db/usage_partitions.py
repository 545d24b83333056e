"""Monthly partitions of `usage_events` on PostgreSQL, made ahead of the events that will need them.

A month without its partition still stores its events, in the default partition (never an error at
ingest); the worker keeps `AHEAD_MONTHS` of partitions ready so the default stays empty. A month whose
rows already sit in the default partition is left there (creating its partition would fail) and logged.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Final

from sqlalchemy import Connection, text

from fiscus.adapters.db.tables_usage import PARTITION_SCHEMA

log = logging.getLogger(__name__)

AHEAD_MONTHS: Final = 3


def _month(d: date, add: int) -> date:
    index = d.year * 12 + d.month - 1 + add
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"usage_events_{month.year:04d}{month.month:02d}"


def existing_partitions(conn: Connection) -> set[str]:
    rows = conn.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = :schema"), {"schema": PARTITION_SCHEMA}
    )
    return {r[0] for r in rows}


def ensure_partitions(conn: Connection, first: date, last: date) -> list[str]:
    """Create the monthly partitions from `first`'s month through `last`'s (PostgreSQL only), and the
    default partition; returns the names created."""
    if conn.dialect.name != "postgresql":
        return []
    conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {PARTITION_SCHEMA}"))
    have = existing_partitions(conn)
    made: list[str] = []
    if "usage_events_default" not in have:
        conn.execute(
            text(f"CREATE TABLE {PARTITION_SCHEMA}.usage_events_default PARTITION OF usage_events DEFAULT")
        )
        made.append("usage_events_default")
    month = date(first.year, first.month, 1)
    while month <= last:
        name = partition_name(month)
        if name not in have:
            low, high = month.isoformat(), _month(month, 1).isoformat()
            taken = conn.execute(
                text(
                    f"SELECT 1 FROM {PARTITION_SCHEMA}.usage_events_default"
                    " WHERE occurred_at >= :low AND occurred_at < :high LIMIT 1"
                ),
                {"low": f"{low} 00:00:00+00", "high": f"{high} 00:00:00+00"},
            ).first()
            if taken:
                log.warning("usage events of %s stay in the default partition (rows already there)", low[:7])
            else:
                conn.execute(
                    text(
                        f"CREATE TABLE {PARTITION_SCHEMA}.{name} PARTITION OF usage_events"
                        f" FOR VALUES FROM ('{low} 00:00:00+00') TO ('{high} 00:00:00+00')"
                    )
                )
                made.append(name)
        month = _month(month, 1)
    return made


def ensure_ahead(conn: Connection, today: date) -> list[str]:
    """The worker's step: partitions for this month and the next `AHEAD_MONTHS`."""
    return ensure_partitions(conn, today, _month(today, AHEAD_MONTHS))
