"""Bulk set-up for load tests and benchmarks: thousands of customers and subscriptions in a few
statements, with exactly the column values the services write (a service call per row would make the
set-up, not the code under test, dominate the run)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.services.mrr_history import refresh_customers

CHUNK = 5_000


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), CHUNK):
        yield rows[i : i + CHUNK]


def _insert_returning_ids(db: Database, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    ids: list[int] = []
    with db.write() as conn:
        for chunk in _chunks(rows):
            result = conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), chunk)
            ids.extend(int(r[0]) for r in result)
    return ids


def bulk_customers(
    db: Database, org_id: int, n: int, *, now: datetime, eu_business_every: int = 0
) -> list[int]:
    """`n` customers of the organisation, in its country and currency; every `eu_business_every`-th
    one a German business with a valid VAT ID (reverse charge), when that is set."""
    with db.read() as conn:
        org = conn.execute(select(t.organizations).where(t.organizations.c.id == org_id)).mappings().one()
    rows = []
    for i in range(n):
        business = eu_business_every and i % eu_business_every == 0
        rows.append(
            {
                "organization_id": org_id,
                "name": f"Customer {i}",
                "email": f"customer{i}@example.com",
                "country": "DE" if business else org["country"],
                "vat_id": "DE136695976" if business else None,
                "locale": org["locale"],
                "timezone": org["timezone"],
                "currency": org["default_currency"],
                "created_at": now,
                "updated_at": now,
            }
        )
    return _insert_returning_ids(db, t.customers, rows)


def bulk_subscriptions(
    db: Database,
    org_id: int,
    customer_ids: list[int],
    price_ids: list[int],
    *,
    start: datetime,
    now: datetime,
    interval: str = "month",
    currency: str = "EUR",
) -> list[int]:
    """One active subscription per customer, all anchored at `start` (so all due together); the
    i-th gets the first 1 + i % len(price_ids) prices with quantity 1 + i % 3."""
    rows = [
        {
            "organization_id": org_id,
            "customer_id": c,
            "status": "active",
            "currency": currency,
            "interval": interval,
            "interval_count": 1,
            "billing_anchor": start,
            "start_at": start,
            "trial_end": None,
            "next_period_start": start,
            "created_at": now,
            "updated_at": now,
        }
        for c in customer_ids
    ]
    sub_ids = _insert_returning_ids(db, t.subscriptions, rows)
    items = [
        {"organization_id": org_id, "subscription_id": s, "price_id": p, "quantity": Decimal(1 + i % 3)}
        for i, s in enumerate(sub_ids)
        for p in price_ids[: 1 + i % len(price_ids)]
    ]
    with db.write() as conn:
        for chunk in _chunks(items):
            conn.execute(insert(t.subscription_items), chunk)
        refresh_customers(conn, org_id, customer_ids)  # what create_subscription keeps, in bulk
    return sub_ids


def bulk_orders(
    db: Database, org_id: int, customer_ids: list[int], price_id: int, *, now: datetime, currency: str
) -> list[int]:
    """One pending one-off order per customer id given (ids may repeat)."""
    rows = [
        {
            "organization_id": org_id,
            "customer_id": c,
            "status": "pending",
            "currency": currency,
            "created_at": now,
        }
        for c in customer_ids
    ]
    order_ids = _insert_returning_ids(db, t.orders, rows)
    items = [
        {"organization_id": org_id, "order_id": o, "price_id": price_id, "quantity": Decimal(1 + i % 4)}
        for i, o in enumerate(order_ids)
    ]
    with db.write() as conn:
        for chunk in _chunks(items):
            conn.execute(insert(t.order_items), chunk)
    return order_ids
