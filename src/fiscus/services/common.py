"""Small helpers every use case shares: scoped lookups and the audit/outbox rows of a change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, select

from fiscus.domain.errors import NotFoundError

ENTITY_NAMES = {
    "customers": "customer",
    "products": "product",
    "variants": "variant",
    "prices": "price",
    "subscriptions": "subscription",
    "orders": "order",
    "documents": "document",
    "api_keys": "api_key",
    "customer_tokens": "customer_token",
    "webhook_endpoints": "webhook_endpoint",
    "webhook_deliveries": "webhook_delivery",
    "billing_runs": "billing_run",
}


def get_scoped(
    conn: Connection, table: Table, org_id: int, ident: int, *, field: str | None = None, lock: bool = False
) -> dict[str, Any]:
    """A row of `table` that belongs to `org_id`; another tenant's id is indistinguishable from a
    missing one (NotFoundError), which is what keeps ids from leaking across organisations."""
    query = select(table).where(table.c.id == ident, table.c.organization_id == org_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).mappings().one_or_none()
    if row is None:
        raise NotFoundError(ENTITY_NAMES.get(table.name, table.name), ident, field=field)
    return dict(row)


def jsonable(row: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """A JSON-safe projection of a row for audit before/after images and event payloads."""
    out: dict[str, Any] = {}
    for k in keys:
        v = row.get(k)
        out[k] = v if v is None or isinstance(v, bool | int | str | list | dict) else str(v)
    return out
