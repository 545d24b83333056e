"""The console's money pages beyond documents: one payment attempt with its captures and refunds, the
refunds list (with the totals of the filtered set per currency) and the webhook deliveries list. Lists
are newest first with a keyset cursor on the id, one indexed query per page (as `console_lists`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.errors import NotFoundError
from fiscus.queries.console_lists import IdPage

BATCH = 500


def payment(conn: Connection, org_id: int, attempt_id: int) -> dict[str, Any]:
    """An attempt of the organisation with its captures and refunds (another's id: NotFoundError)."""
    a, c, r = t.payment_attempts.c, t.payment_captures.c, t.payment_refunds.c
    row = (
        conn.execute(select(t.payment_attempts).where(a.id == attempt_id, a.organization_id == org_id))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError("payment", attempt_id)
    captures = conn.execute(select(t.payment_captures).where(c.attempt_id == attempt_id).order_by(c.id))
    refunds = conn.execute(select(t.payment_refunds).where(r.attempt_id == attempt_id).order_by(r.id))
    return {
        "attempt": dict(row),
        "captures": [dict(x) for x in captures.mappings()],
        "refunds": [{**dict(x), "currency": row["currency"]} for x in refunds.mappings()],
    }


def _refunds_query(org_id: int, status: str | None, document_id: int | None) -> Any:
    r, a = t.payment_refunds.c, t.payment_attempts.c
    query = (
        select(
            r.id,
            r.attempt_id,
            r.document_id,
            r.amount_minor,
            r.status,
            r.provider_refund_id,
            r.credit_note_id,
            r.reason,
            r.error_message,
            r.created_at,
            r.settled_at,
            a.currency,
        )
        .join(t.payment_attempts, a.id == r.attempt_id)
        .where(r.organization_id == org_id)
    )
    if status:
        query = query.where(r.status == status)
    if document_id is not None:
        query = query.where(r.document_id == document_id)
    return query


def refunds(
    conn: Connection,
    org_id: int,
    *,
    status: str | None,
    document_id: int | None,
    limit: int,
    after: int | None,
) -> IdPage:
    r = t.payment_refunds.c
    query = _refunds_query(org_id, status, document_id)
    if after is not None:
        query = query.where(r.id < after)
    rows = [dict(x) for x in conn.execute(query.order_by(r.id.desc()).limit(limit + 1)).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    return IdPage(rows, rows[-1]["id"] if more and rows else None)


def refund_totals(
    conn: Connection, org_id: int, *, status: str | None, document_id: int | None
) -> list[dict[str, Any]]:
    """Count and amount of the whole filtered set per currency (never added across currencies)."""
    r, a = t.payment_refunds.c, t.payment_attempts.c
    query = (
        select(a.currency, func.count(), func.sum(r.amount_minor))
        .join(t.payment_attempts, a.id == r.attempt_id)
        .where(r.organization_id == org_id)
        .group_by(a.currency)
        .order_by(a.currency)
    )
    if status:
        query = query.where(r.status == status)
    if document_id is not None:
        query = query.where(r.document_id == document_id)
    return [
        {"currency": x[0], "count": int(x[1]), "amount_minor": int(x[2] or 0)} for x in conn.execute(query)
    ]


def stream_refunds(
    db: Database, org_id: int, *, status: str | None, document_id: int | None
) -> Iterator[dict[str, Any]]:
    """Every refund of the filtered set, newest first, one short read per batch."""
    after: int | None = None
    while True:
        with db.read() as conn:
            batch = refunds(conn, org_id, status=status, document_id=document_id, limit=BATCH, after=after)
        yield from batch.rows
        if batch.next_after is None:
            return
        after = batch.next_after


def deliveries(
    conn: Connection,
    org_id: int,
    *,
    status: str | None,
    event_type: str | None,
    endpoint_id: int | None,
    limit: int,
    after: int | None,
) -> IdPage:
    w, e = t.webhook_deliveries.c, t.webhook_endpoints.c
    query = (
        select(
            w.id,
            w.endpoint_id,
            w.event_id,
            w.event_type,
            w.status,
            w.attempts,
            w.next_attempt_at,
            w.last_attempt_at,
            w.created_at,
            e.url,
        )
        .join(t.webhook_endpoints, e.id == w.endpoint_id)
        .where(w.organization_id == org_id)
    )
    if status:
        query = query.where(w.status == status)
    if event_type:
        query = query.where(w.event_type == event_type)
    if endpoint_id is not None:
        query = query.where(w.endpoint_id == endpoint_id)
    if after is not None:
        query = query.where(w.id < after)
    rows = [dict(x) for x in conn.execute(query.order_by(w.id.desc()).limit(limit + 1)).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    return IdPage(rows, rows[-1]["id"] if more and rows else None)
