"""The native API as a client uses it: create, read, list, act; money as strings; errors as problems."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Table, func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from tests.api_support import api_client, auth, build_world
from tests.builders import make_tenant


def count(db: Database, table: Table) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_catalog_customer_subscription_and_billing_flow(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg", slug="flow")
    h = auth(create_api_key(db, clock, tenant.org_id).secret)
    with api_client(db, clock) as api:
        product = api.post(
            "/api/v1/products",
            json={
                "code": "vps",
                "name": "VPS",
                "tags": ["free"],
                "modules": ["compute"],
                "extra": {"ssd": True},
            },
            headers=h,
        )
        assert product.status_code == 201, product.text
        variant = api.post(
            f"/api/v1/products/{product.json()['id']}/variants",
            json={"code": "s", "name": "Small", "limits": ["1 vCPU"]},
            headers=h,
        )
        assert variant.status_code == 201
        price = api.post(
            f"/api/v1/variants/{variant.json()['id']}/prices",
            json={"currency": "EUR", "unit_amount": "15.5", "interval": "month"},
            headers=h,
        )
        assert price.status_code == 201, price.text
        assert price.json()["unit_amount"] == "15.50"
        customer = api.post(
            "/api/v1/customers",
            json={
                "name": "Иван Петров",
                "email": "ivan@example.bg",
                "country": "BG",
                "address": {"city": "София"},
            },
            headers=h,
        )
        assert customer.status_code == 201, customer.text
        cid = customer.json()["id"]
        assert customer.json()["address"]["city"] == "София"
        sub = api.post(
            "/api/v1/subscriptions",
            json={"customer_id": cid, "items": [{"price_id": price.json()["id"], "quantity": "2"}]},
            headers=h,
        )
        assert sub.status_code == 201, sub.text
        sid = sub.json()["id"]
        upcoming = api.get(f"/api/v1/subscriptions/{sid}/upcoming_document", headers=h)
        assert upcoming.status_code == 200
        assert upcoming.json()["total"] == "37.20"  # 2 × 15.50 + 20 %
        run = api.post("/api/v1/billing_runs", json={}, headers=h)
        assert run.status_code == 202
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = api.get(f"/api/v1/billing_runs/{run.json()['id']}", headers=h).json()
            if state["status"] == "finished":
                break
            time.sleep(0.05)
        assert state["status"] == "finished"
        assert state["documents_created"] == 1
        docs = api.get("/api/v1/documents", params={"subscription_id": sid, "expand[]": "lines"}, headers=h)
        [doc] = docs.json()["data"]
        assert (doc["total"], doc["subtotal"], doc["tax"], doc["amount_due"]) == (
            "37.20",
            "31.00",
            "6.20",
            "37.20",
        )
        assert doc["lines"][0]["amount"] == "31.00"
        assert doc["tax_breakdown"] == [
            {"treatment": "standard", "rate": "0.20", "base": "31.00", "tax": "6.20", "note": ""}
        ]
        full = api.get(
            f"/api/v1/documents/{doc['id']}", params={"expand[]": ["customer", "subscription"]}, headers=h
        ).json()
        assert full["customer"]["id"] == cid
        assert full["subscription"]["id"] == sid
        assert api.post(f"/api/v1/documents/{doc['id']}/void", headers=h).json()["status"] == "void"
        again = api.post(f"/api/v1/documents/{doc['id']}/void", headers=h)
        assert again.status_code == 409
        assert again.headers["content-type"] == "application/problem+json"
        assert again.json()["code"] == "invalid_state"
        audit = api.get(f"/api/v1/documents/{doc['id']}/audit_events", headers=h).json()["data"]
        assert [e["action"] for e in audit] == ["created", "issued", "void"]
        clock.advance(timedelta(days=5))
        preview = api.post(
            f"/api/v1/subscriptions/{sid}/preview_change",
            json={"items": [{"price_id": price.json()["id"], "quantity": 3}]},
            headers=h,
        )
        assert preview.status_code == 200, preview.text
        assert [ln["kind"] for ln in preview.json()["lines"]] == ["proration", "proration"]
        canceled = api.post(f"/api/v1/subscriptions/{sid}/cancel", json={"at_period_end": True}, headers=h)
        assert canceled.json()["cancel_at"] is not None
        resumed = api.post(f"/api/v1/subscriptions/{sid}", json={"cancel_at_period_end": False}, headers=h)
        assert resumed.json()["cancel_at"] is None


@pytest.mark.parametrize(
    ("path", "body", "pointer"),
    [
        ("/api/v1/customers", {"name": "X", "email": "x@example.com", "country": "BG", "id": 5}, "/body/id"),
        (
            "/api/v1/customers",
            {"name": "X", "email": "x@example.com", "country": "BG", "organization_id": 2},
            "/body/organization_id",
        ),
        ("/api/v1/customers", {"name": "X", "email": "x@example.com", "country": "ZZ"}, "/body/country"),
        (
            "/api/v1/customers",
            {"name": "X", "email": "x@example.com", "country": "DE", "vat_id": "DE1"},
            "/body/vat_id",
        ),
        ("/api/v1/customers", {"email": "x@example.com", "country": "BG"}, "/body/name"),
        (
            "/api/v1/orders",
            {"customer_id": "CUSTOMER", "items": [{"price_id": "ONE_OFF", "quantity": "-1"}]},
            "/body/items/0/quantity",
        ),
        (
            "/api/v1/orders",
            {"customer_id": "CUSTOMER", "items": [{"price_id": "ONE_OFF", "quantity": 1.5}]},
            "/body/items/0/quantity",
        ),
    ],
)
def test_bad_input_is_a_problem_naming_the_field_and_writes_nothing(
    db: Database, clock: FixedClock, path: str, body: dict[str, object], pointer: str
) -> None:
    worlds = build_world(db, clock)
    h = auth(worlds[0].key)
    names = {
        "CUSTOMER": worlds[0].customers[0],
        "ONE_OFF": worlds[0].tenant.one_off,
        "MONTHLY": worlds[0].tenant.monthly,
    }
    body = json.loads(
        json.dumps(body),
        object_hook=lambda o: {k: names.get(v, v) if isinstance(v, str) else v for k, v in o.items()},
    )
    before = (count(db, t.customers), count(db, t.orders), count(db, t.audit_events))
    with api_client(db, clock) as api:
        response = api.post(path, json=body, headers=h)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert {"type", "title", "status", "detail", "code", "errors"} <= set(problem)
    assert pointer in [e["pointer"] for e in problem["errors"]]
    assert (count(db, t.customers), count(db, t.orders), count(db, t.audit_events)) == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"customer_id": "CUSTOMER", "items": [{"price_id": "MONTHLY"}]}, 409, "field_conflict"),
        ({"customer_id": "CUSTOMER", "items": [{"price_id": 999_999}]}, 404, "not_found"),
        ({"customer_id": 999_999, "items": [{"price_id": "ONE_OFF"}]}, 404, "not_found"),
    ],
)
def test_a_well_formed_order_the_data_does_not_allow_is_404_or_409_naming_the_field(
    db: Database, clock: FixedClock, body: dict[str, Any], status: int, code: str
) -> None:
    """422 is for what the request alone gets wrong; a missing referenced object is 404 and one that
    does not fit (a recurring price on an order) 409, each with the field's pointer."""
    world = build_world(db, clock)[0]
    names = {"CUSTOMER": world.customers[0], "ONE_OFF": world.tenant.one_off, "MONTHLY": world.tenant.monthly}
    body = {
        "customer_id": names.get(body["customer_id"], body["customer_id"]),
        "items": [{"price_id": names.get(i["price_id"], i["price_id"])} for i in body["items"]],
    }
    before = count(db, t.orders)
    with api_client(db, clock) as api:
        response = api.post("/api/v1/orders", json=body, headers=auth(world.key))
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["code"] == code
    assert problem["errors"][0]["pointer"] in {"/body/customer_id", "/body/items/0/price_id"}
    assert count(db, t.orders) == before


def test_money_as_a_json_number_is_refused(db: Database, clock: FixedClock) -> None:
    worlds = build_world(db, clock)
    h = auth(worlds[0].key)
    with api_client(db, clock) as api:
        variant = api.get("/api/v1/variants", headers=h).json()["data"][0]["id"]
        response = api.post(
            f"/api/v1/variants/{variant}/prices",
            json={"currency": "EUR", "unit_amount": 123456789012.3456789},
            headers=h,
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/body/unit_amount"
        ok = api.post(
            f"/api/v1/variants/{variant}/prices",
            json={"currency": "EUR", "unit_amount": "123456789012.3456789"},
            headers=h,
        )
        assert ok.status_code == 201
        assert ok.json()["unit_amount"] == "123456789012.3456789"  # every digit kept, below 10**12


def test_cursor_pagination_walks_every_document_once(db: Database, clock: FixedClock) -> None:
    worlds = build_world(db, clock)
    h = auth(worlds[0].key)
    with api_client(db, clock) as api:
        seen: list[int] = []
        params: dict[str, int | str] = {"limit": 3}
        while True:
            page = api.get("/api/v1/documents", params=params, headers=h).json()
            seen += [d["id"] for d in page["data"]]
            if not page["has_more"]:
                break
            params = {"limit": 3, "starting_after": page["data"][-1]["id"]}
        assert seen == sorted(seen, reverse=True)
        with db.read() as conn:
            expected = conn.execute(
                select(func.count())
                .select_from(t.documents)
                .where(t.documents.c.organization_id == worlds[0].org_id)
            ).scalar_one()
        assert len(seen) == len(set(seen)) == expected > 5
        back = api.get("/api/v1/documents", params={"limit": 2, "ending_before": seen[-1]}, headers=h).json()
        assert [d["id"] for d in back["data"]] == seen[-3:-1]
        assert api.get("/api/v1/documents", params={"limit": 0}, headers=h).status_code == 422
        assert api.get("/api/v1/documents", params={"limit": 101}, headers=h).status_code == 422
        assert api.get("/api/v1/documents", params={"status": "nope"}, headers=h).status_code == 422


def test_credentials(db: Database, clock: FixedClock) -> None:
    worlds = build_world(db, clock)
    customer = worlds[0].customers[0]
    with api_client(db, clock) as api:
        assert api.get("/api/v1/documents").status_code == 401
        assert api.get("/api/v1/documents", headers=auth("fsk_live_wrong")).status_code == 401
        mine = api.get("/api/v1/documents", headers=auth(worlds[0].tokens[customer]), params={"limit": 100})
        assert mine.status_code == 200
        assert {d["customer_id"] for d in mine.json()["data"]} == {customer}
        forbidden = api.post(
            "/api/v1/customers",
            json={"name": "X", "email": "x@example.com", "country": "BG"},
            headers=auth(worlds[0].tokens[customer]),
        )
        assert forbidden.status_code == 403
        assert forbidden.json()["code"] == "insufficient_scope"
        assert (
            api.get(f"/api/v1/customers/{customer}", headers=auth(worlds[0].tokens[customer])).status_code
            == 200
        )


def test_limits_body_size_and_rate(db: Database, clock: FixedClock) -> None:
    worlds = build_world(db, clock)
    h = auth(worlds[0].key)
    with api_client(db, clock, max_body_bytes=2000, rate_limit_per_second=1.0, rate_limit_burst=3.0) as api:
        big = api.post(
            "/api/v1/customers",
            content=b"{" + b" " * 5000 + b"}",
            headers={**h, "content-type": "application/json"},
        )
        assert big.status_code == 413
        statuses = [api.get("/api/v1/customers", headers=h).status_code for _ in range(6)]
        assert 429 in statuses
        limited = api.get("/api/v1/customers", headers=h)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["x-request-id"]


def test_operations_endpoints(db: Database, clock: FixedClock) -> None:
    with api_client(db, clock) as api:
        assert api.get("/healthz").json() == {"status": "ok"}
        assert api.get("/readyz").json() == {"status": "ready"}
        api.get("/api/v1/documents")
        metrics = api.get("/metrics").text
        assert "fiscus_http_requests_total" in metrics
        assert 'route="/api/v1/documents"' in metrics
        spec = api.get("/openapi.json").json()
        assert spec["openapi"].startswith("3.1")
        assert "/api/v1/documents/{document_id}/issue" in spec["paths"]
        assert (
            api.get("/api/v1/documents", headers={"x-request-id": "abc-123"}).headers["x-request-id"]
            == "abc-123"
        )


def test_test_mode_keys_reach_only_test_mode_organisations(db: Database, clock: FixedClock) -> None:
    from fiscus.services.organizations import OrganizationSpec, create_organization

    sandbox = create_organization(
        db,
        clock,
        OrganizationSpec(
            slug="sandbox",
            legal_name="Sandbox",
            country="US",
            timezone="America/New_York",
            default_currency="USD",
            vat_registered=False,
            mode="test",
        ),
    )
    live = make_tenant(db, clock, "us", slug="live")
    test_key = create_api_key(db, clock, sandbox).secret
    live_key = create_api_key(db, clock, live.org_id).secret
    assert test_key.startswith("fsk_test_")
    assert live_key.startswith("fsk_live_")
    with db.write() as conn:  # an organisation switched to test mode: its live keys stop working
        conn.execute(t.organizations.update().where(t.organizations.c.id == live.org_id).values(mode="test"))
    with api_client(db, clock) as api:
        assert api.get("/api/v1/customers", headers=auth(test_key)).status_code == 200
        assert api.get("/api/v1/customers", headers=auth(live_key)).status_code == 401


def test_api_key_is_stored_only_as_a_hash_and_can_be_revoked(db: Database, clock: FixedClock) -> None:
    from fiscus.services.access import revoke_api_key

    tenant = make_tenant(db, clock, "us", slug="hashes")
    issued = create_api_key(db, clock, tenant.org_id, name="ci")
    with db.read() as conn:
        row = conn.execute(select(t.api_keys).where(t.api_keys.c.id == issued.id)).mappings().one()
    assert issued.secret not in str(dict(row))
    assert row["prefix"].startswith("fsk_live_")
    assert row["prefix"].endswith("…")
    with api_client(db, clock) as api:
        assert api.get("/api/v1/customers", headers=auth(issued.secret)).status_code == 200
    revoke_api_key(db, clock, tenant.org_id, issued.id)
    with api_client(db, clock) as api:  # a new process: no cached credential
        assert api.get("/api/v1/customers", headers=auth(issued.secret)).status_code == 401
    with db.read() as conn:
        used = conn.execute(
            select(t.api_keys.c.last_used_at).where(t.api_keys.c.id == issued.id)
        ).scalar_one()
    assert used is not None


def test_cached_renderings_follow_state_changes(db: Database, clock: FixedClock) -> None:
    worlds = build_world(db, clock)
    h = auth(worlds[1].key)
    with api_client(db, clock) as api:
        doc = api.get("/api/v1/documents", params={"status": "open", "limit": 1}, headers=h).json()["data"][0]
        first = api.get(f"/api/v1/documents/{doc['id']}", headers=h).json()
        assert first["lines"][0]["product_id"] is not None
        listed = api.get("/api/v1/documents", params={"expand[]": "lines", "limit": 100}, headers=h).json()
        assert next(d for d in listed["data"] if d["id"] == doc["id"])["lines"] == first["lines"]
        clock.advance(timedelta(seconds=1))
        assert api.post(f"/api/v1/documents/{doc['id']}/void", headers=h).status_code == 200
        assert api.get(f"/api/v1/documents/{doc['id']}", headers=h).json()["status"] == "void"
        again = api.get("/api/v1/documents", params={"limit": 100}, headers=h).json()["data"]
        assert next(d for d in again if d["id"] == doc["id"])["status"] == "void"
