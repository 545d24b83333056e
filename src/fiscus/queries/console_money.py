"""The console's money pages beyond documents: one payment attempt with its captures and refunds, the
refunds list (with the totals of the filtered set per currency) and the webhook deliveries list (with
the totals of the filtered set per status). Lists sort on any column with a keyset cursor on (value,
id) (`console_sort`), one indexed query per page, and stream in batches for the CSV exports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from sqlalchemy import Connection, Select, func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.errors import NotFoundError
from fiscus.queries.console_lists import NEWEST
from fiscus.queries.console_sort import KeyPage, Sort, SortColumn, keyset_page

BATCH = 500
_r, _w = t.payment_refunds.c, t.webhook_deliveries.c
REFUND_SORTS: Final = {
    "id": SortColumn(_r.id, "int"),
    "payment": SortColumn(_r.attempt_id, "int"),
    "document": SortColumn(_r.document_id, "int"),
    "amount": SortColumn(_r.amount_minor, "int"),
    "status": SortColumn(_r.status, "str"),
    "gateway": SortColumn(_r.provider_refund_id, "str", nullable=True),
    "credit_note": SortColumn(_r.credit_note_id, "int", nullable=True),
    "reason": SortColumn(_r.reason, "str"),
    "at": SortColumn(_r.created_at, "datetime"),
}
DELIVERY_SORTS: Final = {
    "id": SortColumn(_w.id, "int"),
    "endpoint": SortColumn(_w.endpoint_id, "int"),
    "event_type": SortColumn(_w.event_type, "str"),
    "status": SortColumn(_w.status, "str"),
    "attempts": SortColumn(_w.attempts, "int"),
    "last_attempt": SortColumn(_w.last_attempt_at, "datetime", nullable=True),
    "next_attempt": SortColumn(_w.next_attempt_at, "datetime", nullable=True),
}


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
    after: str | None,
    sort: Sort = NEWEST,
) -> KeyPage:
    query = _refunds_query(org_id, status, document_id)
    return keyset_page(conn, query, _r.id, REFUND_SORTS, sort, limit=limit, after=after)


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
    db: Database, org_id: int, *, status: str | None, document_id: int | None, sort: Sort = NEWEST
) -> Iterator[dict[str, Any]]:
    """Every refund of the filtered set in the list's order, one short read per batch."""
    after: str | None = None
    while True:
        with db.read() as conn:
            batch = refunds(
                conn, org_id, status=status, document_id=document_id, limit=BATCH, after=after, sort=sort
            )
        yield from batch.rows
        if batch.next_cursor is None:
            return
        after = batch.next_cursor


def _deliveries_query(
    org_id: int, status: str | None, event_type: str | None, endpoint_id: int | None
) -> Select[Any]:
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
    return query.where(*_delivery_filters(status, event_type, endpoint_id))


def _delivery_filters(status: str | None, event_type: str | None, endpoint_id: int | None) -> list[Any]:
    where: list[Any] = []
    if status:
        where.append(_w.status == status)
    if event_type:
        where.append(_w.event_type == event_type)
    if endpoint_id is not None:
        where.append(_w.endpoint_id == endpoint_id)
    return where


def deliveries(
    conn: Connection,
    org_id: int,
    *,
    status: str | None,
    event_type: str | None,
    endpoint_id: int | None,
    limit: int,
    after: str | None,
    sort: Sort = NEWEST,
) -> KeyPage:
    query = _deliveries_query(org_id, status, event_type, endpoint_id)
    return keyset_page(conn, query, _w.id, DELIVERY_SORTS, sort, limit=limit, after=after)


def delivery_totals(
    conn: Connection, org_id: int, *, status: str | None, event_type: str | None, endpoint_id: int | None
) -> list[dict[str, Any]]:
    """Count and attempts of the whole filtered set per status (one grouped read of the index)."""
    query = (
        select(_w.status, func.count(), func.sum(_w.attempts))
        .where(_w.organization_id == org_id, *_delivery_filters(status, event_type, endpoint_id))
        .group_by(_w.status)
        .order_by(_w.status)
    )
    return [{"status": x[0], "count": int(x[1]), "attempts": int(x[2] or 0)} for x in conn.execute(query)]


def stream_deliveries(
    db: Database,
    org_id: int,
    *,
    status: str | None,
    event_type: str | None,
    endpoint_id: int | None,
    sort: Sort = NEWEST,
) -> Iterator[dict[str, Any]]:
    """Every delivery of the filtered set in the list's order, one short read per batch."""
    after: str | None = None
    while True:
        with db.read() as conn:
            batch = deliveries(
                conn, org_id, status=status, event_type=event_type, endpoint_id=endpoint_id,
                limit=BATCH, after=after, sort=sort,
            )  # fmt: skip
        yield from batch.rows
        if batch.next_cursor is None:
            return
        after = batch.next_cursor
