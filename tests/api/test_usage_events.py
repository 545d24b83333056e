"""POST /api/v1/events and /api/v1/billable_metrics on both databases: exactly once, all or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from tests.api_support import api_client, auth
from tests.builders import make_customer, make_tenant


class World:
    def __init__(self, db: Database, clock: FixedClock, client: TestClient) -> None:
        self.db, self.clock, self.client = db, clock, client
        tenant = make_tenant(db, clock, "bg", slug="usage")
        self.org_id = tenant.org_id
        self.headers = auth(create_api_key(db, clock, tenant.org_id).secret)
        self.customer = make_customer(db, clock, tenant)
        other = make_tenant(db, clock, "us", slug="other")
        self.foreign_customer = make_customer(db, clock, other)

    def post(self, path: str, body: Any) -> Any:
        return self.client.post(f"/api/v1{path}", json=body, headers=self.headers)

    def event(self, tx: str, code: str = "bandwidth", minutes: int = -30, **props: Any) -> dict[str, Any]:
        at = (self.clock.now() + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
        return {
            "transaction_id": tx,
            "customer_id": self.customer,
            "code": code,
            "timestamp": at,
            "properties": props,
        }

    def buckets(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return [dict(r) for r in conn.execute(select(tu.usage_buckets)).mappings()]

    def stored(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(tu.usage_events)).scalar_one())


@pytest.fixture
def world(db: Database, clock: FixedClock) -> Iterator[World]:
    with api_client(db, clock) as client:
        w = World(db, clock, client)
        r = w.post(
            "/billable_metrics",
            {
                "code": "bandwidth",
                "name": "Bandwidth",
                "aggregation": "sum",
                "field": "gb",
                "group_by": "region",
            },
        )
        assert r.status_code == 201, r.text
        r = w.post(
            "/billable_metrics",
            {"code": "users", "name": "Users", "aggregation": "unique_count", "field": "user"},
        )
        assert r.status_code == 201, r.text
        yield w


def test_a_batch_counts_once_and_a_resend_answers_the_same(world: World) -> None:
    batch = [world.event(f"t{i}", gb=f"{i}.5", region="eu" if i % 2 else "us") for i in range(10)]
    batch.append(world.event("u1", "users", user="ada"))
    batch.append(world.event("u2", "users", user="ada"))
    first = world.post("/events", {"events": batch})
    assert first.status_code == 202, first.text
    assert first.json() == {"object": "event_batch", "received": 12}
    again = world.post("/events", {"events": batch[3:] + batch[:3]})
    assert again.status_code == 202
    assert again.json() == first.json()
    assert world.stored() == 12
    sums = {b["group_value"]: b["total"] for b in world.buckets() if b["metric_id"] != 2 and b["count"]}
    assert sums == {
        "eu": sum((Decimal(f"{i}.5") for i in range(1, 10, 2)), Decimal(0)),
        "us": sum((Decimal(f"{i}.5") for i in range(0, 10, 2)), Decimal(0)),
    }
    with world.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(tu.usage_unique_values)).scalar_one() == 1


def test_a_bad_batch_stores_nothing_and_names_each_bad_event(world: World) -> None:
    batch = [
        world.event("ok", gb="1"),
        world.event("unknown", "nope", gb="1"),
        world.event("future", minutes=6, gb="1"),
        world.event("late", minutes=-8 * 24 * 60, gb="1"),
        world.event("nofield", region="eu"),
        {**world.event("foreign", gb="1"), "customer_id": world.foreign_customer},
    ]
    r = world.post("/events", {"events": batch})
    assert r.status_code == 409, r.text  # each is well-formed: the current data refuses it
    assert r.json()["code"] == "field_conflict"
    pointers = {e["pointer"] for e in r.json()["errors"]}
    assert pointers == {
        "/body/events/1/code",
        "/body/events/2/timestamp",
        "/body/events/3/timestamp",
        "/body/events/4/properties/gb",
        "/body/events/5/customer_id",
    }
    assert world.stored() == 0
    assert world.buckets() == []


@pytest.mark.parametrize(
    "body",
    [
        {"events": []},
        {
            "events": [
                {
                    "transaction_id": "x",
                    "customer_id": 1,
                    "code": "bandwidth",
                    "timestamp": 1,
                    "properties": {},
                }
            ]
        },
        {
            "events": [
                {
                    "transaction_id": "x",
                    "customer_id": 1,
                    "code": "bandwidth",
                    "timestamp": "2026-01-15T09:00:00Z",
                    "properties": {"gb": 1.5},
                }
            ]
        },
    ],
)
def test_malformed_events_are_422(world: World, body: Any) -> None:
    r = world.post("/events", body)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")


def test_batch_limit(world: World) -> None:
    r = world.post("/events", {"events": [world.event(f"t{i}", gb="1") for i in range(1001)]})
    assert r.status_code == 422


def test_metric_crud(world: World) -> None:
    dup = world.post("/billable_metrics", {"code": "bandwidth", "name": "Again", "aggregation": "count"})
    assert dup.status_code == 409
    for body, pointer in (
        ({"code": "x", "name": "X", "aggregation": "sum"}, "/body/field"),  # a sum needs its property
        ({"code": "x", "name": "X", "aggregation": "count", "field": "gb"}, "/body/field"),
        ({"code": "x", "name": " ", "aggregation": "count"}, "/body/name"),
        ({"code": "x", "name": "X"}, "/body/aggregation"),
        ({"code": "x", "name": "X", "aggregation": "median", "field": "gb"}, "/body/aggregation"),
    ):
        bad = world.post("/billable_metrics", body)
        assert bad.status_code == 422, body
        assert [e["pointer"] for e in bad.json()["errors"]] == [pointer], bad.text
    listed = world.client.get("/api/v1/billable_metrics", headers=world.headers).json()
    assert [m["code"] for m in listed["data"]] == ["users", "bandwidth"]
    mid = listed["data"][1]["id"]
    renamed = world.post(f"/billable_metrics/{mid}", {"name": "Traffic"})
    assert renamed.json()["name"] == "Traffic"
    assert world.post("/events", {"events": [world.event("t", gb="2")]}).status_code == 202
    assert world.client.delete(f"/api/v1/billable_metrics/{mid}", headers=world.headers).status_code == 409
    uid = listed["data"][0]["id"]
    assert world.client.delete(f"/api/v1/billable_metrics/{uid}", headers=world.headers).status_code == 204
    assert world.client.get(f"/api/v1/billable_metrics/{uid}", headers=world.headers).status_code == 404


def test_usage_settings_move_the_late_window(world: World) -> None:
    got = world.client.get("/api/v1/usage_settings", headers=world.headers).json()
    assert got == {
        "object": "usage_settings",
        "late_days": 7,
        "grace_hours": 1,
        "late_policy": "invoice",
        "accept_unknown_customers": False,
    }
    old = world.event("old", minutes=-10 * 24 * 60, gb="1")
    assert world.post("/events", {"events": [old]}).status_code == 409
    changed = world.post("/usage_settings", {"late_days": 30, "late_policy": "credit_note"})
    assert changed.json() == {
        "object": "usage_settings",
        "late_days": 30,
        "grace_hours": 1,
        "late_policy": "credit_note",
        "accept_unknown_customers": False,
    }
    assert world.post("/events", {"events": [old]}).status_code == 202
    assert world.post("/usage_settings", {"late_policy": "ignore"}).status_code == 422


def test_a_usage_price_through_the_api(world: World) -> None:
    variant = world.client.get("/api/v1/variants", headers=world.headers).json()["data"][0]["id"]
    metric = world.client.get("/api/v1/billable_metrics", headers=world.headers).json()["data"][1]["id"]
    body = {
        "currency": "EUR",
        "interval": "month",
        "metric_id": metric,
        "charge_model": "graduated",
        "properties": {
            "tiers": [{"up_to": "100", "unit_price": "0.05"}, {"up_to": None, "unit_price": "0.0125"}]
        },
    }
    made = world.post(f"/variants/{variant}/usage_prices", body)
    assert made.status_code == 201, made.text
    price = made.json()["price_id"]
    assert made.json()["properties"]["tiers"][1] == {"up_to": None, "unit_price": "0.0125", "flat_fee": "0"}
    assert world.client.get(f"/api/v1/prices/{price}", headers=world.headers).json()["unit_amount"] == "0.00"
    assert world.client.get(f"/api/v1/prices/{price}/usage", headers=world.headers).status_code == 200
    bad = world.post(f"/variants/{variant}/usage_prices", {**body, "properties": {"tiers": [{"up_to": "5"}]}})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"].startswith("usage.properties.tiers")
