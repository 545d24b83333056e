"""The catalog and settings objects of the console test world: in each organisation a webhook
endpoint with a delivery and an API key; in the first a product named with markup. And the new
pages' routes with the permission each needs, for the security walk of test_pages.py."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_console as tc
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services import access, catalog, webhooks
from fiscus.worker.webhooks import dispatch_events

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@dataclass
class SettingsIds:
    product_id: int
    variant_id: int
    price_id: int
    endpoint_id: int
    delivery_id: int
    key_id: int
    operator_id: int
    """The viewer of the first organisation."""
    other_product_id: int
    other_price_id: int
    other_endpoint_id: int
    other_delivery_id: int
    other_key_id: int
    other_operator_id: int
    """The outsider (admin of the second organisation only)."""


def _objects(db: Database, clock: FixedClock, org_id: int, price_id: int) -> tuple[int, int, int, int]:
    endpoint_id, _ = webhooks.create_endpoint(
        db, clock, org_id, url=f"https://hooks.example/{org_id}", event_types=["*"], description=XSS
    )
    catalog.set_price_active(db, clock, org_id, price_id, active=False)
    catalog.set_price_active(db, clock, org_id, price_id, active=True)
    dispatch_events(db, clock)
    key = access.create_api_key(db, clock, org_id, name=f"console {XSS}")
    d = t.webhook_deliveries.c
    with db.read() as conn:
        delivery = conn.execute(select(d.id).where(d.endpoint_id == endpoint_id).order_by(d.id)).scalar()
    assert delivery is not None
    return endpoint_id, int(delivery), key.id, price_id


def build_settings(
    db: Database, clock: FixedClock, org_id: int, other_org_id: int, other_price: int
) -> SettingsIds:
    product = catalog.create_product(
        db, clock, org_id, catalog.ProductSpec(code="xss", name=f"Product {XSS}")
    )
    variant = catalog.create_variant(
        db, clock, org_id, product, code="v1", name=f"Variant {XSS}", limits=[XSS]
    )
    price = catalog.create_price(
        db, clock, org_id, variant, currency_code="EUR", unit_amount="12.50", interval="month"
    )
    endpoint, delivery, key, _ = _objects(db, clock, org_id, price)
    o_endpoint, o_delivery, o_key, _ = _objects(db, clock, other_org_id, other_price)
    o = tc.operators.c
    with db.read() as conn:
        viewer = conn.execute(select(o.id).where(o.email == "viewer@console.example")).scalar_one()
        outsider = conn.execute(select(o.id).where(o.email == "outsider@console.example")).scalar_one()
        other_product = conn.execute(
            select(t.products.c.id).where(t.products.c.organization_id == other_org_id)
        ).scalar_one()
    return SettingsIds(
        product,
        variant,
        price,
        endpoint,
        delivery,
        key,
        int(viewer),
        int(other_product),
        other_price,
        o_endpoint,
        o_delivery,
        o_key,
        int(outsider),
    )


def settings_routes(org_id: int, ids: SettingsIds | None) -> list[tuple[str, str]]:
    """(path, permission) of every new GET page: read (every role), catalog (admin, finance), admin."""
    assert ids is not None
    base = f"/console/{org_id}"
    return [
        (f"{base}/catalog", "read"),
        (f"{base}/catalog/products/{ids.product_id}", "read"),
        (f"{base}/catalog/tax-categories", "read"),
        (f"{base}/catalog/prices/{ids.price_id}/archive", "catalog"),
        (f"{base}/catalog/prices/{ids.price_id}/unarchive", "catalog"),
        (f"{base}/settings", "read"),
        (f"{base}/settings/organization", "read"),
        (f"{base}/settings/number-series", "read"),
        (f"{base}/settings/payments", "read"),
        (f"{base}/settings/webhooks", "read"),
        (f"{base}/settings/webhooks/{ids.endpoint_id}", "read"),
        (f"{base}/settings/webhooks/{ids.endpoint_id}/disable", "admin"),
        (f"{base}/settings/logo/remove", "admin"),
        (f"{base}/settings/api-keys", "admin"),
        (f"{base}/settings/api-keys/{ids.key_id}/revoke", "admin"),
        (f"{base}/settings/operators", "admin"),
        (f"{base}/settings/operators/{ids.operator_id}/remove", "admin"),
        (f"{base}/settings/operators/{ids.operator_id}/disable", "admin"),
    ]


def foreign_paths(org_id: int, ids: SettingsIds | None) -> list[tuple[str, str]]:
    """(method, path) in `org_id` naming the other organisation's objects: each must be a 404."""
    assert ids is not None
    base = f"/console/{org_id}"
    return [
        ("GET", f"{base}/catalog/products/{ids.product_id}"),
        ("GET", f"{base}/catalog/prices/{ids.price_id}/archive"),
        ("POST", f"{base}/catalog/prices/{ids.price_id}/archive"),
        ("POST", f"{base}/catalog/products/{ids.product_id}/variants"),
        ("POST", f"{base}/catalog/variants/{ids.variant_id}/prices"),
        ("POST", f"{base}/catalog/products/{ids.product_id}"),
        ("POST", f"{base}/settings/webhooks/{ids.endpoint_id}"),
        ("GET", f"{base}/settings/webhooks/{ids.endpoint_id}"),
        ("POST", f"{base}/settings/webhooks/{ids.endpoint_id}/disable"),
        ("POST", f"{base}/settings/webhook-deliveries/{ids.delivery_id}/redeliver"),
        ("GET", f"{base}/settings/api-keys/{ids.key_id}/revoke"),
        ("POST", f"{base}/settings/api-keys/{ids.key_id}/revoke"),
        ("POST", f"{base}/settings/operators/{ids.operator_id}/role"),
        ("GET", f"{base}/settings/operators/{ids.operator_id}/remove"),
        ("POST", f"{base}/settings/operators/{ids.operator_id}/disable"),
    ]
