"""The catalog and the settings as an operator changes them: each function checks the actor's
permission (`require`, the one table in services/operators.py) and then calls the very service the API
calls, with the operator as the audit actor. The console's catalog and settings pages write only
through these, so a role's limits hold whatever a page shows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.logo import Logo
from fiscus.services import access, catalog, org_settings, webhooks
from fiscus.services.operators import Actor, require
from fiscus.services.payments.settings import update_payment_settings


def create_product(db: Database, clock: Clock, actor: Actor, *, code: str, name: str) -> int:
    require(actor, "catalog.write")
    spec = catalog.ProductSpec(code=code, name=name)
    return catalog.create_product(db, clock, actor.organization_id, spec, actor=actor.audit)


def update_product(
    db: Database, clock: Clock, actor: Actor, product_id: int, *, name: str, description: str
) -> None:
    """The product's name and description (`detail` in the API), as `POST /api/v1/products/{id}`."""
    require(actor, "catalog.write")
    catalog.update_product(
        db, clock, actor.organization_id, product_id, name=name, detail=description, actor=actor.audit
    )


def create_variant(
    db: Database, clock: Clock, actor: Actor, product_id: int, *, code: str, name: str, limits: list[str]
) -> int:
    require(actor, "catalog.write")
    return catalog.create_variant(
        db, clock, actor.organization_id, product_id, code=code, name=name, limits=limits, actor=actor.audit
    )


def create_price(
    db: Database,
    clock: Clock,
    actor: Actor,
    variant_id: int,
    *,
    currency_code: str,
    unit_amount: object,
    interval: str | None,
    interval_count: int,
    tax_inclusive: bool,
    tax_category: str,
) -> int:
    require(actor, "catalog.write")
    return catalog.create_price(
        db,
        clock,
        actor.organization_id,
        variant_id,
        currency_code=currency_code,
        unit_amount=unit_amount,
        interval=interval,
        interval_count=interval_count,
        tax_inclusive=tax_inclusive,
        tax_category=tax_category,
        actor=actor.audit,
    )


def set_price_active(db: Database, clock: Clock, actor: Actor, price_id: int, *, active: bool) -> None:
    require(actor, "catalog.write")
    catalog.set_price_active(db, clock, actor.organization_id, price_id, active=active, actor=actor.audit)


def update_settings(db: Database, clock: Clock, actor: Actor, changes: Mapping[str, Any]) -> tuple[str, ...]:
    require(actor, "settings.write")
    return org_settings.update_settings(db, clock, actor.organization_id, changes, actor=actor.audit)


def set_logo(db: Database, clock: Clock, actor: Actor, logo: Logo) -> str:
    require(actor, "settings.write")
    return org_settings.set_logo(db, clock, actor.organization_id, logo, actor=actor.audit)


def remove_logo(db: Database, clock: Clock, actor: Actor) -> None:
    require(actor, "settings.write")
    org_settings.remove_logo(db, clock, actor.organization_id, actor=actor.audit)


def set_series(
    db: Database,
    clock: Clock,
    actor: Actor,
    document_type: str,
    series: str,
    *,
    number_format: str | None,
    next_value: int | None,
) -> dict[str, Any]:
    require(actor, "settings.write")
    return org_settings.set_series(
        db,
        clock,
        actor.organization_id,
        document_type,
        series,
        number_format=number_format,
        next_value=next_value,
        actor=actor.audit,
    )


def update_payment_collection(
    db: Database, clock: Clock, actor: Actor, *, auto_collect: bool, capture_mode: str
) -> dict[str, Any]:
    """How the organisation collects (the retry schedule is the dunning policy's, on its own page)."""
    require(actor, "settings.write")
    return update_payment_settings(
        db,
        clock,
        actor.organization_id,
        auto_collect=auto_collect,
        capture_mode=capture_mode,
        actor=actor.audit,
    )


def create_webhook(
    db: Database,
    clock: Clock,
    actor: Actor,
    *,
    url: str,
    event_types: list[str],
    description: str,
    allow_private: bool,
) -> tuple[int, str]:
    """A new endpoint; returns its id and its signing secret (shown once). `allow_private` is the
    server's setting, passed as the API passes it, so both refuse the same destinations."""
    require(actor, "settings.write")
    return webhooks.create_endpoint(
        db,
        clock,
        actor.organization_id,
        url=url,
        event_types=event_types,
        description=description,
        actor=actor.audit,
        allow_private=allow_private,
    )


def update_webhook(
    db: Database,
    clock: Clock,
    actor: Actor,
    endpoint_id: int,
    *,
    url: str,
    event_types: list[str],
    description: str,
    allow_private: bool,
) -> None:
    """An endpoint's URL, events and description with the API's checks (the SSRF guard's static half,
    the event type patterns); queued deliveries keep their events."""
    require(actor, "settings.write")
    webhooks.update_endpoint(
        db,
        clock,
        actor.organization_id,
        endpoint_id,
        url=url,
        event_types=event_types,
        description=description,
        actor=actor.audit,
        allow_private=allow_private,
    )


def set_webhook_enabled(db: Database, clock: Clock, actor: Actor, endpoint_id: int, *, enabled: bool) -> None:
    require(actor, "settings.write")
    if enabled:
        webhooks.update_endpoint(
            db, clock, actor.organization_id, endpoint_id, enabled=True, actor=actor.audit
        )
    else:
        webhooks.delete_endpoint(db, clock, actor.organization_id, endpoint_id, actor=actor.audit)


def redeliver(db: Database, clock: Clock, actor: Actor, delivery_id: int) -> None:
    require(actor, "settings.write")
    webhooks.redeliver(db, clock, actor.organization_id, delivery_id, actor=actor.audit)


def create_api_key(db: Database, clock: Clock, actor: Actor, *, name: str) -> access.IssuedSecret:
    """A new key of the organisation's mode; its secret is in the answer only."""
    require(actor, "api_keys.manage")
    return access.create_api_key(db, clock, actor.organization_id, name=name, actor=actor.audit)


def revoke_api_key(db: Database, clock: Clock, actor: Actor, key_id: int) -> None:
    require(actor, "api_keys.manage")
    access.revoke_api_key(db, clock, actor.organization_id, key_id, actor=actor.audit)
