"""Tenant isolation (OWASP API1/API5): every endpoint, every other credential, every enumerated id.

A key of organisation B and the customer tokens of B (and of A's other customer) try each of A's ids
on each templated path of the OpenAPI document: the answer is 404 (or 403 for an operation a token may
never perform), never the object, and nothing of A changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db import tables_usage_features as tf
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.discounts import CodeSpec, CouponSpec, create_coupon, create_promotion_code, redeem
from fiscus.services.usage_metrics import MetricSpec, create_metric
from fiscus.services.usage_thresholds import ThresholdSpec, create_threshold
from fiscus.services.webhooks import create_endpoint
from tests.api_support import OrgWorld, api_client, auth, build_world

PARAM_TABLES = {
    "customer_id": t.customers,
    "product_id": t.products,
    "variant_id": t.variants,
    "price_id": t.prices,
    "subscription_id": t.subscriptions,
    "order_id": t.orders,
    "document_id": t.documents,
    "run_id": t.billing_runs,
    "endpoint_id": t.webhook_endpoints,
    "delivery_id": t.webhook_deliveries,
    "coupon_id": td.coupons,
    "promotion_code_id": td.promotion_codes,
    "discount_id": td.discounts,
    "metric_id": tu.billable_metrics,
    "threshold_id": tf.usage_thresholds,
}
LISTS = {
    "/api/v1/customers": t.customers,
    "/api/v1/products": t.products,
    "/api/v1/variants": t.variants,
    "/api/v1/prices": t.prices,
    "/api/v1/subscriptions": t.subscriptions,
    "/api/v1/orders": t.orders,
    "/api/v1/documents": t.documents,
    "/api/v1/billing_runs": t.billing_runs,
    "/api/v1/webhook_endpoints": t.webhook_endpoints,
}
QUERIES = {"/api/v1/customers/{customer_id}/usage": {"subscription": "1"}}
"""Required query parameters, valid, so that only ownership can stop the request."""
OWNED = [
    t.customers,
    t.subscriptions,
    t.subscription_items,
    t.orders,
    t.documents,
    t.products,
    t.variants,
    t.prices,
    t.webhook_endpoints,
    t.webhook_deliveries,
    t.audit_events,
    t.outbox_events,
    t.api_keys,
    t.customer_tokens,
    t.billing_runs,
    td.coupons,
    td.promotion_codes,
    td.discounts,
    td.wallets,
    tu.billable_metrics,
    tf.usage_thresholds,
]


def _ids(db: Database, table: Table, org_id: int, customer_id: int | None = None) -> list[int]:
    query = select(table.c.id).where(table.c.organization_id == org_id)
    if customer_id is not None and "customer_id" in table.c:
        query = query.where(table.c.customer_id == customer_id)
    with db.read() as conn:
        return sorted(conn.execute(query).scalars())


def _fingerprint(db: Database, org_id: int) -> str:
    digest = hashlib.sha256()
    with db.read() as conn:
        for table in OWNED:
            cols = [c for c in table.c if c.name not in ("last_used_at",)]
            for row in conn.execute(
                select(*cols).where(table.c.organization_id == org_id).order_by(table.c.id)
            ):
                digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def _promotions_and_metrics(db: Database, clock: FixedClock, world: OrgWorld) -> tuple[int, int]:
    """A coupon, a promotion code, a discount on the first customer and a billable metric, so those
    resources have ids to enumerate too; the coupon's and the metric's ids."""
    org = world.org_id
    coupon = create_coupon(
        db, clock, org, CouponSpec(name="Ten", duration="forever", percent_off=Decimal(10))
    )
    create_promotion_code(db, clock, org, CodeSpec(coupon_id=coupon, code=f"TEN{org}"))
    redeem(db, clock, org, customer_id=world.customers[0], coupon_id=coupon)
    metric = create_metric(db, clock, org, MetricSpec(code="calls", name="API calls", aggregation="count"))
    sub = _ids(db, t.subscriptions, org)[0]
    create_threshold(db, clock, org, sub, ThresholdSpec("amount", "100"))
    return coupon, metric


def _bodies(attacker: OrgWorld, coupon: int, metric: int) -> dict[str, dict[str, Any]]:
    """Valid bodies, so that only ownership can stop the request (not validation)."""
    item = {"price_id": attacker.tenant.monthly, "quantity": "1"}
    usage_price = {
        "currency": "USD",
        "interval": "month",
        "metric_id": metric,
        "charge_model": "per_unit",
        "properties": {"unit_price": "0.01"},
    }
    return {
        "/api/v1/subscriptions/{subscription_id}/discounts": {"coupon": coupon},
        "/api/v1/customers/{customer_id}/discounts": {"coupon": coupon},
        "/api/v1/customers/{customer_id}/credit_grants": {"currency": "USD", "amount": "5"},
        "/api/v1/customers/{customer_id}/credit_topups": {"currency": "USD", "amount": "5"},
        "/api/v1/billable_metrics/{metric_id}": {"name": "Taken over"},
        "/api/v1/variants/{variant_id}/usage_prices": usage_price,
        "/api/v1/subscriptions/{subscription_id}/usage_thresholds": {"kind": "amount", "value": "5"},
        "/api/v1/customers/{customer_id}": {"name": "Taken over"},
        "/api/v1/products/{product_id}/variants": {"code": "x", "name": "x"},
        "/api/v1/variants/{variant_id}/prices": {"currency": "EUR", "unit_amount": "1"},
        "/api/v1/subscriptions/{subscription_id}": {"cancel_at_period_end": True},
        "/api/v1/subscriptions/{subscription_id}/cancel": {"at_period_end": False},
        "/api/v1/subscriptions/{subscription_id}/preview_change": {"items": [item]},
        "/api/v1/webhook_endpoints/{endpoint_id}": {"description": "taken"},
        "/api/v1/documents/{document_id}/credit_notes": {
            "mode": "full",
            "reason": "taken",
            "disposition": "reduce_due",
        },
    }


def test_no_credential_reaches_another_tenants_objects(db: Database, clock: FixedClock) -> None:
    a, b = build_world(db, clock)
    _promotions_and_metrics(db, clock, a)
    attacker_coupon, attacker_metric = _promotions_and_metrics(db, clock, b)
    create_endpoint(db, clock, a.org_id, url="https://hooks.example.com/a", event_types=["*"], actor="test")
    victim_customer, other_customer = a.customers
    before = _fingerprint(db, a.org_id)
    attackers = [auth(b.key), *(auth(tok) for tok in b.tokens.values()), auth(a.tokens[other_customer])]
    bodies = _bodies(b, attacker_coupon, attacker_metric)
    probes = 0
    with api_client(db, clock) as api:
        spec = api.get("/openapi.json").json()
        for path, operations in spec["paths"].items():
            params = [p for p in PARAM_TABLES if "{" + p + "}" in path]
            if not path.startswith("/api/v1/") or not params:
                continue
            table = PARAM_TABLES[params[-1]]
            for method in operations:
                for ident in _ids(db, table, a.org_id):
                    for headers in attackers:
                        is_own_token = headers == auth(a.tokens[other_customer])
                        if is_own_token and table in (t.documents, t.customers):
                            owned = _ids(db, table, a.org_id, customer_id=other_customer)
                            if table is t.customers:
                                owned = [other_customer]
                            if ident in owned:
                                continue  # its own objects
                        url = path.replace("{" + params[-1] + "}", str(ident))
                        for p in params[:-1]:
                            url = url.replace("{" + p + "}", "1")
                        response = api.request(
                            method.upper(),
                            url,
                            headers=headers,
                            json=bodies.get(path, {}) if method in ("post", "put", "patch") else None,
                            params=QUERIES.get(path),
                        )
                        probes += 1
                        assert response.status_code in (403, 404), (
                            method,
                            url,
                            response.status_code,
                            response.text,
                        )
                        assert str(victim_customer) not in response.text or response.status_code == 404
        for path, table in LISTS.items():
            for headers in attackers:
                response = api.get(path, params={"limit": 100}, headers=headers)
                if response.status_code == 403:
                    continue
                assert response.status_code == 200, (path, response.text)
                foreign = set(_ids(db, table, a.org_id))
                if headers == auth(a.tokens[other_customer]):
                    foreign -= set(_ids(db, table, a.org_id, customer_id=other_customer))
                returned = {obj["id"] for obj in response.json()["data"]}
                assert not returned & foreign, (path, returned & foreign)
    assert probes > 200
    assert _fingerprint(db, a.org_id) == before


def test_customer_token_sees_only_its_own_documents(db: Database, clock: FixedClock) -> None:
    a, _b = build_world(db, clock)
    first, second = a.customers
    with api_client(db, clock) as api:
        listed = api.get("/api/v1/documents", params={"limit": 100}, headers=auth(a.tokens[first])).json()[
            "data"
        ]
        assert {d["customer_id"] for d in listed} == {first}
        assert len(listed) == len(_ids(db, t.documents, a.org_id, customer_id=first))
        for doc in _ids(db, t.documents, a.org_id, customer_id=second):
            response = api.get(f"/api/v1/documents/{doc}", headers=auth(a.tokens[first]))
            assert response.status_code == 404
            assert json.loads(response.text)["code"] == "not_found"


DIALECT_DETAILS = ["/v1/billing/invoices/{id}/", "/invoices/{id}", "/v1/invoices/{id}"]
DIALECT_LISTS: dict[str, Callable[[Any], list[int]]] = {
    "/v1/billing/invoices/?pageSize=100": lambda body: [r["id"] for r in body["results"]],
    "/invoices?limit=100": lambda body: [int(r["id"]) for r in body["data"]["items"]],
    "/v1/invoices": lambda body: [r["id"] for r in body["data"]],
}


def test_dialects_show_no_other_tenants_or_customers_documents(db: Database, clock: FixedClock) -> None:
    a, b = build_world(db, clock)
    first, second = a.customers
    foreign_to = {
        b.key: set(_ids(db, t.documents, a.org_id)),
        b.tokens[b.customers[0]]: set(_ids(db, t.documents, a.org_id)),
        a.tokens[first]: set(_ids(db, t.documents, a.org_id, customer_id=second)),
    }
    probes = 0
    with api_client(db, clock) as api:
        for secret, foreign in foreign_to.items():
            for path in DIALECT_DETAILS:
                for ident in sorted(foreign):
                    response = api.get(path.format(id=ident), headers=auth(secret))
                    probes += 1
                    assert response.status_code == 404, (path, ident, response.text)
            for path, ids in DIALECT_LISTS.items():
                response = api.get(path, headers=auth(secret))
                assert response.status_code == 200, (path, response.text)
                assert not set(ids(response.json())) & foreign
        own = api.get("/invoices?limit=100", headers=auth(a.tokens[first])).json()["data"]["items"]
        assert own
        assert {int(i["id"]) for i in own} <= set(_ids(db, t.documents, a.org_id, customer_id=first))
    assert probes > 50
