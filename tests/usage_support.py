"""A usage-billing organisation for tests: four metrics and their usage prices on one subscription."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.catalog import create_price
from fiscus.services.subscriptions import ItemSpec, create_subscription
from fiscus.services.usage_metrics import MetricSpec, create_metric
from fiscus.services.usage_prices import UsageSpec
from tests.builders import Tenant, make_customer, make_tenant

TIERS = [
    {"up_to": "100", "unit_price": "0.05"},
    {"up_to": "1000", "unit_price": "0.03", "flat_fee": "2"},
    {"up_to": None, "unit_price": "0.0125"},
]
METRICS: dict[str, tuple[MetricSpec, str, dict[str, Any]]] = {
    "bandwidth": (
        MetricSpec("bandwidth", "Bandwidth", "sum", "gb", group_by="region"),
        "graduated",
        {"tiers": TIERS},
    ),
    "api_calls": (
        MetricSpec("api_calls", "API calls", "count"),
        "per_unit",
        {"unit_price": "0.000125", "free_units": "10"},
    ),
    "storage": (
        MetricSpec("storage", "Backup storage", "weighted_sum", "gb"),
        "per_unit",
        {"unit_price": "0.021"},
    ),
    "payments": (
        MetricSpec("payments", "Payments", "sum", "amount", filters={"status": ["ok"]}),
        "percentage",
        {"rate": "2.9", "fixed_fee": "0.30", "min_amount": "1", "max_amount": "100"},
    ),
    "seats": (MetricSpec("seats", "Seats", "unique_count", "user"), "volume", {"tiers": TIERS}),
    "peak": (
        MetricSpec("peak", "Peak CPUs", "max", "cpus"),
        "package",
        {"unit_price": "4.99", "package_size": "2"},
    ),
}


@dataclass
class UsageWorld:
    tenant: Tenant
    customer: int
    subscription: int
    metrics: dict[str, int]
    prices: dict[str, int]
    start: datetime

    @property
    def org_id(self) -> int:
        return self.tenant.org_id


def usage_world(db: Database, clock: FixedClock, *, facturx: bool = False, slug: str = "usage") -> UsageWorld:
    tenant = make_tenant(db, clock, "bg", slug=slug, facturx=facturx)
    org = tenant.org_id
    customer = make_customer(db, clock, tenant)
    with db.read() as conn:
        variant = conn.execute(
            select(t.prices.c.variant_id).where(t.prices.c.id == tenant.monthly)
        ).scalar_one()
    metrics, prices = {}, {}
    for code, (spec, model, props) in METRICS.items():
        metrics[code] = create_metric(db, clock, org, spec)
        prices[code] = create_price(
            db,
            clock,
            org,
            variant,
            currency_code="EUR",
            unit_amount="0",
            interval="month",
            usage=UsageSpec(metrics[code], model, props),
        )
    items = [ItemSpec(tenant.monthly, 1)] + [ItemSpec(p, 1) for p in prices.values()]
    sub = create_subscription(db, clock, org, customer, items)
    return UsageWorld(tenant, customer, sub, metrics, prices, clock.now())
