"""One subscription bills a customer's usage of a metric (ADR 0008): a second subscription of the
customer pricing the same metric, created, changed onto it or resumed into it, is refused with a 409
`field_conflict` naming the field, and nothing is written; once the first ends at its period end,
another may take the metric from then on. On both databases, through the API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from fiscus.services.catalog import create_price
from fiscus.services.usage_metrics import MetricSpec, create_metric
from fiscus.services.usage_prices import UsageSpec
from tests.api_support import api_client, auth
from tests.builders import make_customer, make_tenant


def test_a_metric_is_billed_by_one_subscription_of_a_customer(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    org = tenant.org_id
    cid, other_customer = make_customer(db, clock, tenant, 0), make_customer(db, clock, tenant, 1)
    metric = create_metric(db, clock, org, MetricSpec("api_calls", "API calls", "count"))
    storage = create_metric(db, clock, org, MetricSpec("storage", "Storage", "sum", "gb"))
    with db.read() as conn:
        variant = conn.execute(
            select(t.prices.c.variant_id).where(t.prices.c.id == tenant.monthly)
        ).scalar_one()

    def usage_price(metric_id: int, unit_price: str) -> int:
        spec = UsageSpec(metric_id, "per_unit", {"unit_price": unit_price})
        return create_price(
            db, clock, org, variant, currency_code="EUR", unit_amount="0", interval="month", usage=spec
        )

    calls, calls_dear, gb = (
        usage_price(metric, "0.01"),
        usage_price(metric, "0.02"),
        usage_price(storage, "0.1"),
    )
    h = auth(create_api_key(db, clock, org).secret)

    def subscribe(customer: int, *prices: int) -> tuple[int, dict[str, Any]]:
        items = [{"price_id": tenant.monthly}] + [{"price_id": p} for p in prices]
        r = api.post("/api/v1/subscriptions", json={"customer_id": customer, "items": items}, headers=h)
        return r.status_code, r.json()

    def count() -> int:
        with db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(t.subscriptions)).scalar_one())

    with api_client(db, clock) as api:
        status, first = subscribe(cid, calls)
        assert status == 201, first
        for prices, pointer in (
            ((calls_dear,), "/body/items/1/price_id"),
            ((gb, calls, gb), "/body/items/3/price_id"),
        ):
            status, refused = subscribe(cid, *prices)
            assert (status, refused["code"]) == (409, "field_conflict"), refused
            assert refused["errors"][0]["pointer"] == pointer, refused
        assert count() == 1  # nothing written
        assert subscribe(other_customer, calls)[0] == 201  # another customer's usage is its own
        status, second = subscribe(cid, gb)
        assert status == 201, second
        url = f"/api/v1/subscriptions/{second['id']}"
        moved = api.post(
            url, json={"items": [{"price_id": tenant.monthly}, {"price_id": calls_dear}]}, headers=h
        )
        assert (moved.status_code, moved.json()["errors"][0]["pointer"]) == (409, "/body/items/1/price_id")
        # The first ends at its period end: from then on another subscription may bill the metric.
        ending = api.post(
            f"/api/v1/subscriptions/{first['id']}", json={"cancel_at_period_end": True}, headers=h
        )
        assert ending.status_code == 200, ending.text
        start = ending.json()["cancel_at"]
        body = {
            "customer_id": cid,
            "items": [{"price_id": tenant.monthly}, {"price_id": calls_dear}],
            "start_at": start,
        }
        assert api.post("/api/v1/subscriptions", json=body, headers=h).status_code == 201
        resumed = api.post(
            f"/api/v1/subscriptions/{first['id']}", json={"cancel_at_period_end": False}, headers=h
        )
        assert (resumed.status_code, resumed.json()["errors"][0]["pointer"]) == (
            409,
            "/body/cancel_at_period_end",
        )
