"""Events for customers that do not exist yet (ADR 0008): when the organisation allows it
(`accept_unknown_customers`), an event naming an `external_customer_id` no customer has is kept here,
its transaction id claimed like any event's (a resend stays a no-op). Creating the customer with that
external id moves the kept events into `usage_events` and the hour buckets in the same transaction
(`usage_ingest.release_pending`), so they are counted from then on, never twice and never lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_usage_features as tp


def resolve(conn: Connection, org_id: int, external_ids: Iterable[str | None]) -> dict[str, int]:
    """The organisation's customers by external id, of those asked."""
    wanted = sorted({e for e in external_ids if e})
    if not wanted:
        return {}
    c = t.customers.c
    query = select(c.external_id, c.id).where(c.organization_id == org_id, c.external_id.in_(wanted))
    return {str(ext): int(cid) for ext, cid in conn.execute(query)}


def held_row(org_id: int, metric_id: int, e: Any, external_id: str, now: datetime) -> dict[str, Any]:
    """The kept row of an event (`usage_ingest.EventIn`) naming an external id no customer has."""
    return {
        "organization_id": org_id,
        "transaction_id": e.transaction_id,
        "external_customer_id": external_id,
        "metric_id": metric_id,
        "occurred_at": e.timestamp,
        "properties": dict(e.properties),
        "received_at": now,
    }


def keep(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Keep events whose transaction ids the ingesting batch has just claimed (sorted, as the keys)."""
    if rows:
        conn.execute(tp.usage_pending_events.insert(), sorted(rows, key=lambda r: r["transaction_id"]))


def take(conn: Connection, org_id: int, external_id: str) -> list[dict[str, Any]]:
    """The kept events of an external id, removed (the caller stores them in the same transaction)."""
    p = tp.usage_pending_events.c
    where = (p.organization_id == org_id, p.external_customer_id == external_id)
    rows = [
        dict(r)
        for r in conn.execute(
            select(tp.usage_pending_events).where(*where).order_by(p.occurred_at, p.transaction_id)
        ).mappings()
    ]
    if rows:
        conn.execute(delete(tp.usage_pending_events).where(*where))
    return rows
