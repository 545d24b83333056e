"""The console's other lists (customers, subscriptions, payment attempts, audit events): filters and a
search, newest first with a keyset cursor on the id (never OFFSET), one indexed query per page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, Table, func, or_, select

from fiscus.adapters.db import tables as t


@dataclass(frozen=True, slots=True)
class IdPage:
    rows: list[dict[str, Any]]
    next_after: int | None


def _page(conn: Connection, query: Select[Any], table: Table, limit: int, after: int | None) -> IdPage:
    if after is not None:
        query = query.where(table.c.id < after)
    rows = [dict(r) for r in conn.execute(query.order_by(table.c.id.desc()).limit(limit + 1)).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    return IdPage(rows, rows[-1]["id"] if more and rows else None)


def _like(text: str) -> str:
    return f"%{text.strip().lower()[:100]}%"


def customers(
    conn: Connection, org_id: int, *, search: str | None, currency: str | None, limit: int, after: int | None
) -> IdPage:
    c = t.customers.c
    query = select(c.id, c.name, c.email, c.country, c.vat_id, c.currency, c.created_at).where(
        c.organization_id == org_id
    )
    if search:
        like = _like(search)
        query = query.where(
            or_(
                func.lower(c.name).like(like), func.lower(c.email).like(like), func.lower(c.vat_id).like(like)
            )
        )
    if currency:
        query = query.where(c.currency == currency)
    return _page(conn, query, t.customers, limit, after)


def subscriptions(
    conn: Connection,
    org_id: int,
    *,
    status: str | None,
    customer_id: int | None,
    search: str | None,
    limit: int,
    after: int | None,
) -> IdPage:
    s, c = t.subscriptions.c, t.customers.c
    query = (
        select(
            s.id,
            s.status,
            s.currency,
            s.interval,
            s.interval_count,
            s.current_period_end,
            s.cancel_at,
            s.customer_id,
            c.name.label("customer_name"),
        )
        .join(t.customers, c.id == s.customer_id)
        .where(s.organization_id == org_id)
    )
    where: list[ColumnElement[bool]] = []
    if status:
        where.append(s.status == status)
    if customer_id is not None:
        where.append(s.customer_id == customer_id)
    if search:
        like = _like(search)
        where.append(or_(func.lower(c.name).like(like), func.lower(c.email).like(like)))
    return _page(conn, query.where(*where), t.subscriptions, limit, after)


def payments(
    conn: Connection,
    org_id: int,
    *,
    status: str | None,
    document_id: int | None,
    limit: int,
    after: int | None,
) -> IdPage:
    a = t.payment_attempts.c
    query = select(t.payment_attempts).where(a.organization_id == org_id)
    if status:
        query = query.where(a.status == status)
    if document_id is not None:
        query = query.where(a.document_id == document_id)
    return _page(conn, query, t.payment_attempts, limit, after)


def audit(
    conn: Connection,
    org_id: int,
    *,
    entity_type: str | None,
    actor: str | None,
    limit: int,
    after: int | None,
) -> IdPage:
    e = t.audit_events.c
    query = select(e.id, e.entity_type, e.entity_id, e.action, e.actor, e.at).where(
        e.organization_id == org_id
    )
    if entity_type:
        query = query.where(e.entity_type == entity_type)
    if actor:
        query = query.where(e.actor == actor)
    return _page(conn, query, t.audit_events, limit, after)
