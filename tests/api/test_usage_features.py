"""Usage thresholds and their webhook, a customer's usage across subscriptions, audited usage settings:
through the API on both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.engine import Database
from fiscus.adapters.webhooks.sender import WebhookSender
from fiscus.domain.clock import FixedClock
from fiscus.services import webhooks
from fiscus.services.access import create_api_key
from fiscus.services.catalog import create_price
from fiscus.services.subscriptions import ItemSpec, create_subscription
from fiscus.services.usage_metrics import MetricSpec, create_metric
from fiscus.services.usage_prices import UsageSpec
from fiscus.services.usage_thresholds import check_thresholds
from fiscus.worker.webhooks import run_webhook_cycle
from tests.api_support import api_client, auth
from tests.builders import make_customer, make_tenant
from tests.integration.test_webhooks import Receiver
from tests.usage_support import UsageWorld, usage_world


@dataclass
class Api:
    db: Database
    clock: FixedClock
    client: TestClient
    world: UsageWorld
    headers: dict[str, str]

    def post(self, path: str, body: Any) -> Any:
        return self.client.post(f"/api/v1{path}", json=body, headers=self.headers)

    def get(self, path: str) -> Any:
        return self.client.get(f"/api/v1{path}", headers=self.headers)

    def send(self, tx: str, gb: str, minutes: int = -5, code: str = "bandwidth") -> None:
        at = (self.clock.now() + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
        event = {
            "transaction_id": tx,
            "customer_id": self.world.customer,
            "code": code,
            "timestamp": at,
            "properties": {"gb": gb, "region": "eu"},
        }
        r = self.post("/events", {"events": [event]})
        assert r.status_code == 202, r.text


@pytest.fixture
def api(db: Database, clock: FixedClock) -> Iterator[Api]:
    world = usage_world(db, clock)
    clock.advance(timedelta(hours=1))  # events a few minutes old fall in the first period
    with api_client(db, clock) as client:
        yield Api(db, clock, client, world, auth(create_api_key(db, clock, world.org_id).secret))


def test_a_threshold_is_announced_once_per_period_through_the_webhook(api: Api) -> None:
    w, sub = api.world, api.world.subscription
    path = f"/subscriptions/{sub}/usage_thresholds"
    bandwidth = w.prices["bandwidth"]
    # what the request alone gets wrong: 422; what the stored subscription refuses: 409
    assert api.post(path, {"kind": "quantity", "value": "50"}).status_code == 422
    assert api.post(path, {"kind": "amount", "value": "0.000"}).status_code == 422
    assert api.post(path, {"kind": "amount", "value": "5", "price_id": w.tenant.monthly}).status_code == 409
    assert api.post(path, {"kind": "amount", "value": "1.001"}).json()["errors"][0]["field"] == "value"
    other = make_tenant(api.db, api.clock, "us", slug="elsewhere")
    foreign = create_subscription(
        api.db, api.clock, other.org_id, make_customer(api.db, api.clock, other), [ItemSpec(other.monthly, 1)]
    )
    assert (
        api.post(f"/subscriptions/{foreign}/usage_thresholds", {"kind": "amount", "value": "1"}).status_code
        == 404
    )

    made = api.post(path, {"kind": "quantity", "value": "50", "price_id": bandwidth})
    assert made.status_code == 201, made.text
    assert made.json()["value"] == "50"
    assert made.json()["price_id"] == bandwidth
    high = api.post(path, {"kind": "amount", "value": "1000.00"}).json()
    assert [r["id"] for r in api.get(path).json()["data"]] == [made.json()["id"], high["id"]]

    with Receiver() as receiver, WebhookSender() as sender:
        webhooks.create_endpoint(
            api.db,
            api.clock,
            w.org_id,
            url=receiver.url,
            event_types=["usage.*"],
            allow_private=True,
        )
        api.send("a", "30")
        assert check_thresholds(api.db, api.clock) == 0  # 30 GB: below 50
        api.send("b", "30")
        assert check_thresholds(api.db, api.clock) == 1  # 60 GB: reached
        api.send("c", "30")
        assert check_thresholds(api.db, api.clock) == 0  # still this period: once
        run_webhook_cycle(api.db, api.clock, sender, allow_private=True)
        bodies = [json.loads(r.body) for r in receiver.received]
        assert [b["type"] for b in bodies] == ["usage.threshold_reached"]
        data = bodies[0]["data"]
        assert (data["threshold_id"], data["kind"], data["threshold"]) == (
            made.json()["id"],
            "quantity",
            "50",
        )
        assert data["value"] == "60"
        assert data["subscription_id"] == sub

        api.clock.advance(timedelta(days=32))  # the next period: announced again once reached again
        assert check_thresholds(api.db, api.clock) == 0
        api.send("d", "75")
        assert check_thresholds(api.db, api.clock) == 1
        assert check_thresholds(api.db, api.clock) == 0

    assert api.client.delete(f"/api/v1/usage_thresholds/{high['id']}", headers=api.headers).status_code == 204
    assert api.client.delete(f"/api/v1/usage_thresholds/{high['id']}", headers=api.headers).status_code == 404
    assert len(api.get(path).json()["data"]) == 1
    assert api.get(f"/subscriptions/{foreign}/usage_thresholds").status_code == 404


def test_a_customers_usage_across_its_subscriptions(api: Api) -> None:
    w = api.world
    # A metric is billed by one subscription of a customer (ADR 0008): the second prices one of its own.
    transfer = create_metric(api.db, api.clock, w.org_id, MetricSpec("transfer", "Transfer", "sum", "gb"))
    with api.db.read() as conn:
        variant = conn.execute(
            select(t.prices.c.variant_id).where(t.prices.c.id == w.tenant.monthly)
        ).scalar_one()
    price = create_price(
        api.db,
        api.clock,
        w.org_id,
        variant,
        currency_code="EUR",
        unit_amount="0",
        interval="month",
        usage=UsageSpec(transfer, "per_unit", {"unit_price": "0.05"}),
    )
    second = create_subscription(
        api.db, api.clock, w.org_id, w.customer, [ItemSpec(w.tenant.monthly, 1), ItemSpec(price, 1)]
    )
    api.send("a", "40", minutes=1, code="transfer")
    one = api.get(f"/customers/{w.customer}/usage?subscription={second}").json()
    assert one["object"] == "usage"
    assert one["amount"] == "2.00"
    both = api.get(f"/customers/{w.customer}/usage")
    assert both.status_code == 200, both.text
    body = both.json()
    assert body["object"] == "customer_usage"
    assert [s["subscription_id"] for s in body["subscriptions"]] == [w.subscription, second]
    total = sum(int(s["amount"].replace(".", "")) for s in body["subscriptions"])
    assert body["amounts"] == [{"currency": "EUR", "amount": f"{total // 100}.{total % 100:02d}"}]
    assert body["subscriptions"][1] == one
    other = make_tenant(api.db, api.clock, "us", slug="elsewhere")
    assert api.get(f"/customers/{make_customer(api.db, api.clock, other)}/usage").status_code == 404


DEFAULTS = {"accept_unknown_customers": False}


def test_usage_settings_changes_are_audited(api: Api) -> None:
    def audited() -> list[dict[str, Any]]:
        a = t.audit_events.c
        with api.db.read() as conn:
            query = select(t.audit_events).where(
                a.organization_id == api.world.org_id, a.action == "usage_settings_updated"
            )
            return [dict(r) for r in conn.execute(query.order_by(a.id)).mappings()]

    assert api.post("/usage_settings", {"late_days": 30}).status_code == 200
    assert api.post("/usage_settings", {"late_days": 30}).status_code == 200  # no change: no audit row
    assert api.post("/usage_settings", {"grace_hours": 5, "late_policy": "credit_note"}).status_code == 200
    rows = audited()
    assert [(r["before"], r["after"]) for r in rows] == [
        (
            {**DEFAULTS, "late_days": 7, "grace_hours": 1, "late_policy": "invoice"},
            {**DEFAULTS, "late_days": 30, "grace_hours": 1, "late_policy": "invoice"},
        ),
        (
            {**DEFAULTS, "late_days": 30, "grace_hours": 1, "late_policy": "invoice"},
            {**DEFAULTS, "late_days": 30, "grace_hours": 5, "late_policy": "credit_note"},
        ),
    ]
    assert rows[0]["actor"].startswith("api")


def test_events_by_external_id_and_for_customers_not_created_yet(api: Api) -> None:
    w = api.world
    customer = {"name": "Acme", "email": "ops@acme.test", "country": "BG", "external_id": "acme-1"}
    made = api.post("/customers", customer)
    assert made.status_code == 201, made.text
    assert made.json()["external_id"] == "acme-1"
    again = api.post("/customers", {**customer, "email": "other@acme.test"})
    assert (again.status_code, again.json()["errors"][0]["field"]) == (409, "external_id")

    def event(tx: str, **who: Any) -> dict[str, Any]:
        at = (api.clock.now() - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
        return {"transaction_id": tx, "code": "bandwidth", "timestamp": at, "properties": {"gb": "2"}, **who}

    def stored() -> list[tuple[str, int]]:
        e = tu.usage_events.c
        with api.db.read() as conn:
            query = select(e.transaction_id, e.customer_id).where(e.organization_id == w.org_id)
            return sorted((str(a), int(b)) for a, b in conn.execute(query))

    for both_or_neither in (event("x", customer_id=w.customer, external_customer_id="acme-1"), event("x")):
        r = api.post("/events", {"events": [both_or_neither]})
        assert (r.status_code, r.json()["errors"][0]["pointer"]) == (422, "/body/events/0"), r.text
    assert api.post("/events", {"events": [event("a", external_customer_id="acme-1")]}).status_code == 202
    assert stored() == [("a", made.json()["id"])]

    later = [event("b", external_customer_id="later-7"), event("c", external_customer_id="later-7")]
    refused = api.post("/events", {"events": later})
    assert refused.status_code == 409
    assert [e["pointer"] for e in refused.json()["errors"]] == [
        "/body/events/0/external_customer_id",
        "/body/events/1/external_customer_id",
    ]
    assert api.post("/usage_settings", {"accept_unknown_customers": True}).json()["accept_unknown_customers"]
    bad = api.post("/events", {"events": [{**later[0], "properties": {}}]})  # the metric's field missing
    assert (bad.status_code, bad.json()["errors"][0]["pointer"]) == (409, "/body/events/0/properties/gb")
    assert api.post("/events", {"events": later}).json()["received"] == 2
    assert api.post("/events", {"events": later}).json()["received"] == 2  # a resend: no-op
    assert stored() == [("a", made.json()["id"])]  # kept, not counted yet

    created = api.post("/customers", {**customer, "email": "l@later.test", "external_id": "later-7"}).json()
    assert stored() == [("a", made.json()["id"]), ("b", created["id"]), ("c", created["id"])]
    b = tu.usage_buckets.c
    with api.db.read() as conn:
        total = conn.execute(select(b.total).where(b.customer_id == created["id"])).scalar_one()
    assert Decimal(total) == Decimal(4)
    assert api.post("/events", {"events": later}).json()["received"] == 2  # still once
    assert len(stored()) == 3
