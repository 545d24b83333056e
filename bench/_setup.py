"""Data set-up for the benchmarks: a real organisation and catalog, then N customers with one due
monthly subscription each.

The organisation, product, variants, prices, the first customer and the first subscription go through
the services. The other N-1 customers and subscriptions are bulk-inserted with SQLAlchemy Core
(executemany, chunks of 5,000 rows) with the column values `create_customer` and
`create_subscription` write; `populate` checks that claim against the rows the services stored for
the first customer and subscription. Not written in bulk: the audit and outbox rows of those
creations (the billing run neither reads them nor is slowed by them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, insert, select, text

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.migrations import upgrade
from fiscus.domain.clock import FixedClock
from fiscus.domain.subscriptions import SubscriptionStatus
from fiscus.domain.tax import normalize_vat_id
from fiscus.services.catalog import ProductSpec, create_price, create_product, create_variant
from fiscus.services.customers import CustomerSpec, create_customer
from fiscus.services.mrr_history import rebuild
from fiscus.services.organizations import OrganizationSpec, create_organization, standard_rates
from fiscus.services.subscriptions import ItemSpec, create_subscription

TZ = ZoneInfo("Europe/Sofia")
ANCHOR = datetime(2026, 10, 1, tzinfo=TZ).astimezone(UTC)
"""Billing anchor, start and first period start of every subscription: 2026-10-01 00:00 in Sofia."""
AT = ANCHOR + timedelta(hours=1)
"""The run's instant: just after the anchor, so exactly one period per subscription is due."""
CREATED = ANCHOR - timedelta(days=7)
"""When the set-up "happens" (the services' clock)."""
CHUNK = 5_000
ORG_VAT_ID = "BG175074752"
DE_VAT_ID = "DE136695976"
PRICE_A = "15"
PRICE_B = "30.50"


@dataclass(frozen=True, slots=True)
class Catalog:
    org_id: int
    price_a: int
    price_b: int


@dataclass(frozen=True, slots=True)
class Expected:
    """What a correct run over the populated data produces (for cheap SQL checks afterwards)."""

    subscriptions: int
    lines: int
    reverse_charge_lines: int


def is_de(i: int) -> bool:
    """Every tenth customer is a German business with a valid VAT ID (reverse charge)."""
    return i % 10 == 0


def items_of(i: int, cat: Catalog) -> list[tuple[int, Decimal]]:
    """Half the subscriptions have two items with quantities; the others one item of A or B."""
    if i % 2 == 0:
        return [(cat.price_a, Decimal(1)), (cat.price_b, Decimal(3))]
    return [(cat.price_a if i % 4 == 1 else cat.price_b, Decimal(1))]


def expected_for(n: int) -> Expected:
    lines = sum(2 if i % 2 == 0 else 1 for i in range(n))
    reverse = sum((2 if i % 2 == 0 else 1) for i in range(n) if is_de(i))
    return Expected(subscriptions=n, lines=lines, reverse_charge_lines=reverse)


def create_database_schema(url: str) -> float:
    started = time.perf_counter()
    upgrade(url)
    return time.perf_counter() - started


def create_catalog(db: Database, clock: FixedClock) -> Catalog:
    org_id = create_organization(
        db,
        clock,
        OrganizationSpec(
            slug="bench",
            legal_name="Bench Software EOOD",
            country="BG",
            timezone="Europe/Sofia",
            default_currency="EUR",
            vat_id=ORG_VAT_ID,
            email="billing@bench.example",
            address_line1="1 Vitosha Blvd",
            city="Sofia",
            postal_code="1000",
            tax_rates=standard_rates("BG", Decimal("0.20")),
        ),
        actor="bench",
    )
    product = create_product(db, clock, org_id, ProductSpec(code="CLOUD", name="Cloud"), actor="bench")
    basic = create_variant(db, clock, org_id, product, code="basic", name="Basic", actor="bench")
    pro = create_variant(db, clock, org_id, product, code="pro", name="Pro", actor="bench")
    price_a = create_price(
        db, clock, org_id, basic, currency_code="EUR", unit_amount=PRICE_A, interval="month", actor="bench"
    )
    price_b = create_price(
        db, clock, org_id, pro, currency_code="EUR", unit_amount=PRICE_B, interval="month", actor="bench"
    )
    return Catalog(org_id, price_a, price_b)


def customer_spec(i: int) -> CustomerSpec:
    if is_de(i):
        return CustomerSpec(
            name=f"Kunde {i:06d} GmbH", email=f"c{i}@kunde.example", country="DE", vat_id=DE_VAT_ID
        )
    return CustomerSpec(name=f"Client {i:06d} OOD", email=f"c{i}@client.example", country="BG")


def customer_row(i: int, org_id: int, now: datetime) -> dict[str, Any]:
    """The row `create_customer` writes for `customer_spec(i)` (org defaults: EUR, en, Europe/Sofia)."""
    spec = customer_spec(i)
    return {
        "organization_id": org_id,
        "name": spec.name,
        "email": spec.email,
        "country": spec.country,
        "currency": "EUR",
        "vat_id": normalize_vat_id(spec.vat_id, spec.country) if spec.vat_id else None,
        "locale": "en",
        "timezone": "Europe/Sofia",
        "address_line1": "",
        "address_line2": "",
        "city": "",
        "postal_code": "",
        "created_at": now,
        "updated_at": now,
    }


def subscription_row(org_id: int, customer_id: int, now: datetime) -> dict[str, Any]:
    """The row `create_subscription(..., start_at=ANCHOR)` writes for a monthly EUR subscription."""
    return {
        "organization_id": org_id,
        "customer_id": customer_id,
        "status": SubscriptionStatus.ACTIVE.value,
        "currency": "EUR",
        "interval": "month",
        "interval_count": 1,
        "billing_anchor": ANCHOR,
        "start_at": ANCHOR,
        "trial_end": None,
        "next_period_start": ANCHOR,
        "created_at": now,
        "updated_at": now,
    }


def _stored(conn: Connection, table: Any, row_id: int) -> dict[str, Any]:
    return dict(conn.execute(select(table).where(table.c.id == row_id)).mappings().one())


def _check_same(what: str, stored: dict[str, Any], built: dict[str, Any]) -> None:
    """Every column the bulk row sets must hold what the service stored (raises on a difference)."""
    diff = {k: (stored.get(k), v) for k, v in built.items() if stored.get(k) != v}
    if diff:
        raise RuntimeError(f"bulk {what} rows differ from the service's: {diff}")


def populate(db: Database, n: int, *, chunk: int = CHUNK) -> Catalog:
    """Organisation and catalog via the services, then `n` customers and due subscriptions."""
    clock = FixedClock(CREATED)
    now = clock.now()
    cat = create_catalog(db, clock)
    # The first customer and subscription through the services: the reference for the bulk rows.
    cid = create_customer(db, clock, cat.org_id, customer_spec(0), actor="bench")
    sid = create_subscription(
        db,
        clock,
        cat.org_id,
        cid,
        [ItemSpec(p, q) for p, q in items_of(0, cat)],
        start_at=ANCHOR,
        actor="bench",
    )
    with db.read() as conn:
        _check_same("customer", _stored(conn, t.customers, cid), customer_row(0, cat.org_id, now))
        _check_same(
            "subscription", _stored(conn, t.subscriptions, sid), subscription_row(cat.org_id, cid, now)
        )
        si = t.subscription_items.c
        stored_items = [
            (r.organization_id, r.price_id, r.quantity)
            for r in conn.execute(
                select(t.subscription_items).where(si.subscription_id == sid).order_by(si.id)
            )
        ]
        if stored_items != [(cat.org_id, p, q) for p, q in items_of(0, cat)]:
            raise RuntimeError(f"bulk subscription_items rows differ from the service's: {stored_items}")
    c_id, s_id = t.customers.c.id, t.subscriptions.c.id
    for lo in range(1, n, chunk):
        idx = range(lo, min(lo + chunk, n))
        with db.write() as conn:
            cust_ids = [
                r[0]
                for r in conn.execute(
                    insert(t.customers).returning(c_id, sort_by_parameter_order=True),
                    [customer_row(i, cat.org_id, now) for i in idx],
                )
            ]
            sub_ids = [
                r[0]
                for r in conn.execute(
                    insert(t.subscriptions).returning(s_id, sort_by_parameter_order=True),
                    [subscription_row(cat.org_id, c, now) for c in cust_ids],
                )
            ]
            conn.execute(
                insert(t.subscription_items),
                [
                    {"organization_id": cat.org_id, "subscription_id": s, "price_id": p, "quantity": q}
                    for i, s in zip(idx, sub_ids, strict=True)
                    for p, q in items_of(i, cat)
                ],
            )
    with db.write() as conn:  # what create_subscription keeps in its transaction, for the bulk rows
        rebuild(conn, cat.org_id)
    return cat


def settle(db: Database) -> None:
    """After the bulk load: fresh planner statistics (PostgreSQL's autovacuum would gather them
    anyway, perhaps in the middle of the timed run) and a checkpoint on both databases, so the timed
    run does not pay for flushing the set-up's writes."""
    if db.is_sqlite:
        raw = db.engine.raw_connection()  # autocommit (isolation_level None): no BEGIN around it
        try:
            cur = raw.cursor()
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cur.close()
        finally:
            raw.close()
        return
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        conn.execute(text("CHECKPOINT"))
