"""Keeping `mrr_events` (the dashboard's MRR history, `adapters/db/tables_mrr.py`) equal to what the
subscriptions and the audit trail say.

Every service that changes what a subscription is worth or when it pays (create, change, cancel now
or at period end, resume, the dunning policy's cancellation, the billing run reaching a scheduled end)
calls `refresh_customers` in its own transaction, after its writes and its audit row: the customer's
rows are recomputed by the same reconstruction the dashboard used to run per request
(`queries/dashboard_mrr.load_segments`, `domain/mrr.customer_changes`) and replaced. Movements are
classified against the customer's whole history, so the whole customer is recomputed, never patched.
`rebuild` does it for an organisation (the migration's backfill, bulk loaders); `differences` is the
reconcile check."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.tables_mrr import mrr_events
from fiscus.domain.money import currency
from fiscus.domain.mrr import customer_changes
from fiscus.queries.dashboard_mrr import load_segments

Row = tuple[int, str, int, int | None, datetime, str, int]
"""(organization, currency, customer, subscription or None, at, kind, amount) of one `mrr_events` row."""


def expected_rows(conn: Connection, org_id: int, customer_ids: Sequence[int] | None = None) -> list[Row]:
    """The rows the organisation (or these customers of it) should have, recomputed from the
    subscriptions, their items and the audit trail."""
    s = t.subscriptions.c
    query = select(s.currency).where(s.organization_id == org_id).distinct()
    if customer_ids is not None:
        query = query.where(s.customer_id.in_(list(customer_ids)))
    out: list[Row] = []
    for code in sorted(conn.execute(query).scalars()):
        spans, segments = load_segments(conn, org_id, currency(code), customer_ids)
        for span in spans:
            if not span.ever_active:
                continue  # cancelled inside its trial: never paying, never churned
            out.append((org_id, code, span.customer_id, span.subscription_id, span.start, "started", 1))
            if span.end is not None:
                out.append((org_id, code, span.customer_id, span.subscription_id, span.end, "ended", 1))
        for c in customer_changes(segments):
            out.append((org_id, code, c.customer_id, None, c.at, c.kind.value, c.amount_minor))
    return out


def _write(conn: Connection, rows: Iterable[Row]) -> None:
    values: list[dict[str, Any]] = [
        {
            "organization_id": org,
            "currency": code,
            "customer_id": customer,
            "subscription_id": sub,
            "at": at,
            "kind": kind,
            "amount_minor": amount,
        }
        for org, code, customer, sub, at, kind, amount in rows
    ]
    for i in range(0, len(values), 1000):
        conn.execute(insert(mrr_events), values[i : i + 1000])


def refresh_customers(conn: Connection, org_id: int, customer_ids: Iterable[int]) -> None:
    """Replace these customers' rows by their recomputation (inside the caller's transaction)."""
    ids = sorted(set(customer_ids))
    if not ids:
        return
    m = mrr_events.c
    conn.execute(delete(mrr_events).where(m.organization_id == org_id, m.customer_id.in_(ids)))
    _write(conn, expected_rows(conn, org_id, ids))


def rebuild(conn: Connection, org_id: int | None = None) -> None:
    """Recompute every row of one organisation (None: of all of them)."""
    orgs = (
        [org_id]
        if org_id is not None
        else list(conn.execute(select(t.organizations.c.id).order_by(t.organizations.c.id)).scalars())
    )
    for org in orgs:
        conn.execute(delete(mrr_events).where(mrr_events.c.organization_id == org))
        _write(conn, expected_rows(conn, org))


def differences(conn: Connection, *, limit: int = 20) -> list[dict[str, object]]:
    """Rows stored but not expected (`stored`) or expected but not stored (`missing`), all
    organisations: empty when every writer kept the history."""
    m = mrr_events.c
    out: list[dict[str, object]] = []
    orgs = conn.execute(select(t.organizations.c.id).order_by(t.organizations.c.id)).scalars()
    for org in orgs:
        stored = Counter(
            (r[0], r[1], r[2], r[3], r[4], r[5], int(r[6]))
            for r in conn.execute(
                select(
                    m.organization_id,
                    m.currency,
                    m.customer_id,
                    m.subscription_id,
                    m.at,
                    m.kind,
                    m.amount_minor,
                ).where(m.organization_id == org)
            )
        )
        expected = Counter(expected_rows(conn, org))
        for label, extra in (("stored", stored - expected), ("missing", expected - stored)):
            for row in extra:
                if len(out) >= limit:
                    return out
                out.append(
                    {
                        "problem": label,
                        "organization_id": row[0],
                        "customer_id": row[2],
                        "at": row[4],
                        "kind": row[5],
                        "amount_minor": row[6],
                    }
                )
    return out
