"""Scoped reads of simple resources (customers, catalog, subscriptions, orders) for the API."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Table, select

from fiscus.adapters.db import tables as t
from fiscus.domain.errors import NotFoundError
from fiscus.queries.pagination import cursor_page
from fiscus.queries.scope import Scope


def get_row(conn: Connection, scope: Scope, table: Table, ident: int, entity: str) -> dict[str, Any]:
    query = scope.apply(select(table), table).where(table.c.id == ident)
    if scope.customer_id is not None and table is t.customers:
        query = query.where(table.c.id == scope.customer_id)
    row = conn.execute(query).mappings().one_or_none()
    if row is None:
        raise NotFoundError(entity, ident)
    return dict(row)


def page_rows(
    conn: Connection,
    scope: Scope,
    table: Table,
    *,
    limit: int,
    starting_after: int | None,
    ending_before: int | None,
    where: list[Any] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    query = scope.apply(select(table.c.id), table)
    for clause in where or []:
        query = query.where(clause)
    page = cursor_page(
        conn, query, table, limit=limit, starting_after=starting_after, ending_before=ending_before
    )
    if not page.ids:
        return [], page.has_more
    rows = {r["id"]: dict(r) for r in conn.execute(select(table).where(table.c.id.in_(page.ids))).mappings()}
    return [rows[i] for i in page.ids], page.has_more


def items_of(
    conn: Connection, table: Table, parent_column: str, parent_ids: list[int]
) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if not parent_ids:
        return out
    parent = table.c[parent_column]
    for r in conn.execute(
        select(parent, table.c.price_id, table.c.quantity).where(parent.in_(parent_ids)).order_by(table.c.id)
    ):
        out[r[0]].append({"price_id": r.price_id, "quantity": str(r.quantity)})
    return out


def documents_of_orders(conn: Connection, order_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    if not order_ids:
        return out
    d = t.document_orders.c
    for r in conn.execute(
        select(d.order_id, d.document_id).where(d.order_id.in_(order_ids)).order_by(d.document_id)
    ):
        out[r.order_id].append(r.document_id)
    return out
