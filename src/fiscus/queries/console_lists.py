"""The console's other lists (customers, subscriptions, payment attempts, audit events): filters, a
search, and a sort on any column with a keyset cursor on (value, id) (`console_sort`), never OFFSET;
one indexed query per page. Each list's sortable columns are its `*_SORTS` table, keyed by the name the
URL carries (`?sort=name`, `?sort=-name` descending)."""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, Select, func, or_, select

from fiscus.adapters.db import tables as t
from fiscus.queries.console_sort import KeyPage, Sort, SortColumn, keyset_page

NEWEST: Final = Sort("id", descending=True)
_c, _s, _a, _e = t.customers.c, t.subscriptions.c, t.payment_attempts.c, t.audit_events.c

CUSTOMER_SORTS: Final = {
    "id": SortColumn(_c.id, "int"),
    "name": SortColumn(_c.name, "str"),
    "email": SortColumn(_c.email, "str"),
    "country": SortColumn(_c.country, "str"),
    "vat_id": SortColumn(_c.vat_id, "str", nullable=True),
    "currency": SortColumn(_c.currency, "str"),
    "created_at": SortColumn(_c.created_at, "datetime"),
}
SUBSCRIPTION_SORTS: Final = {
    "id": SortColumn(_s.id, "int"),
    "customer": SortColumn(_c.name, "str"),
    "status": SortColumn(_s.status, "str"),
    "currency": SortColumn(_s.currency, "str"),
    "period": SortColumn(_s.current_period_end, "datetime", nullable=True),
}
PAYMENT_SORTS: Final = {
    "id": SortColumn(_a.id, "int"),
    "document": SortColumn(_a.document_id, "int"),
    "status": SortColumn(_a.status, "str"),
    "amount": SortColumn(_a.amount_minor, "int"),
    "error": SortColumn(_a.error_code, "str", nullable=True),
    "gateway": SortColumn(_a.provider_charge_id, "str", nullable=True),
    "at": SortColumn(_a.created_at, "datetime"),
}
AUDIT_SORTS: Final = {
    "id": SortColumn(_e.id, "int"),
    "at": SortColumn(_e.at, "datetime"),
    "entity": SortColumn(_e.entity_type, "str"),
    "action": SortColumn(_e.action, "str"),
    "actor": SortColumn(_e.actor, "str"),
}


def _like(text: str) -> str:
    return f"%{text.strip().lower()[:100]}%"


def customers(
    conn: Connection,
    org_id: int,
    *,
    search: str | None,
    currency: str | None,
    limit: int,
    after: str | None,
    sort: Sort = NEWEST,
) -> KeyPage:
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
    return keyset_page(conn, query, c.id, CUSTOMER_SORTS, sort, limit=limit, after=after)


def subscriptions(
    conn: Connection,
    org_id: int,
    *,
    status: str | None,
    customer_id: int | None,
    search: str | None,
    limit: int,
    after: str | None,
    sort: Sort = NEWEST,
) -> KeyPage:
    s, c = t.subscriptions.c, t.customers.c
    query: Select[Any] = (
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
    return keyset_page(conn, query.where(*where), s.id, SUBSCRIPTION_SORTS, sort, limit=limit, after=after)


def payments(
    conn: Connection,
    org_id: int,
    *,
    status: str | None,
    document_id: int | None,
    limit: int,
    after: str | None,
    sort: Sort = NEWEST,
) -> KeyPage:
    a = t.payment_attempts.c
    query = select(t.payment_attempts).where(a.organization_id == org_id)
    if status:
        query = query.where(a.status == status)
    if document_id is not None:
        query = query.where(a.document_id == document_id)
    return keyset_page(conn, query, a.id, PAYMENT_SORTS, sort, limit=limit, after=after)


def audit(
    conn: Connection,
    org_id: int,
    *,
    entity_type: str | None,
    actor: str | None,
    limit: int,
    after: str | None,
    sort: Sort = NEWEST,
) -> KeyPage:
    e = t.audit_events.c
    query = select(e.id, e.entity_type, e.entity_id, e.action, e.actor, e.at).where(
        e.organization_id == org_id
    )
    if entity_type:
        query = query.where(e.entity_type == entity_type)
    if actor:
        query = query.where(e.actor == actor)
    return keyset_page(conn, query, e.id, AUDIT_SORTS, sort, limit=limit, after=after)
