"""Usage routes: events in, billable metrics, a customer's current usage. Parse, call, present."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request, Response

from fiscus.adapters.db import tables_usage as tu
from fiscus.api import presenters as p
from fiscus.api.deps import ContainerDep, OrgDep, on_loop
from fiscus.api.routes.common import PageDep, list_response, router
from fiscus.api.schemas import Id, ListOut
from fiscus.api.usage_fast import events_route
from fiscus.api.usage_schemas import (
    CustomerUsageOut,
    DocumentUsageOut,
    EventsIn,
    EventsOut,
    MetricIn,
    MetricOut,
    MetricPatch,
    ThresholdIn,
    ThresholdOut,
    UsageOut,
    UsagePriceIn,
    UsagePriceOut,
    UsageSettingsIn,
    UsageSettingsOut,
)
from fiscus.bootstrap import Container
from fiscus.domain.errors import NotFoundError
from fiscus.domain.money import currency
from fiscus.queries import usage as usage_queries
from fiscus.services import (
    catalog,
    usage_billing,
    usage_ingest,
    usage_metrics,
    usage_prices,
    usage_settings,
    usage_thresholds,
)
from fiscus.services.access import Principal

api = router("usage")


def metric(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "billable_metric",
        "code": row["code"],
        "name": row["name"],
        "aggregation": row["aggregation"],
        "field": row["field"],
        "filters": row["filters"] or {},
        "group_by": row["group_by"],
        "rounding": row["rounding"],
        "precision": row["precision"],
        "created_at": row["created_at"].isoformat().replace("+00:00", "Z"),
    }


def post_events(body: EventsIn, principal: OrgDep, c: ContainerDep) -> Response:
    """A batch of up to 1,000 events: all stored, or none and every bad one named by its index (a
    pointer per field). 422: what the batch alone gets wrong. 409 `field_conflict`: events that are
    well-formed but that the current data refuses: a `code` no billable metric has, a `customer_id`
    that is not this organisation's customer, an `external_customer_id` no customer has (unless the
    usage settings keep such events until the customer is created), a `timestamp` more than 5
    minutes ahead or older than the late window (`/usage_settings`), or properties the metric cannot
    aggregate (its `field` missing or not a number)."""
    events = [
        usage_ingest.EventIn(
            e.transaction_id, e.code, e.timestamp, e.properties, e.customer_id, e.external_customer_id
        )
        for e in body.events
    ]
    return _ingest(c, principal, events)


def _ingest(c: Container, principal: Principal, events: list[usage_ingest.EventIn]) -> Response:
    received = usage_ingest.ingest_events(c.db, c.clock, principal.organization_id, events)
    return p.json_response({"object": "event_batch", "received": received}, 202)


# A well-formed batch skips FastAPI's body parsing and pydantic (api/usage_fast.py: events_route).
api.add_api_route(
    "/events",
    post_events,
    methods=["POST"],
    status_code=202,
    response_model=EventsOut,
    route_class_override=events_route(_ingest),
)


@api.post("/billable_metrics", status_code=201, response_model=MetricOut)
def create_metric(body: MetricIn, principal: OrgDep, c: ContainerDep) -> Response:
    """A billable metric: which events count (`code`, `filters`), what is aggregated (`aggregation` over
    `field`), per which group (`group_by`), and the rounding of the aggregate."""
    spec = usage_metrics.MetricSpec(
        body.code,
        body.name,
        body.aggregation,
        body.field,
        body.filters,
        body.group_by,
        body.rounding,
        body.precision,
    )
    mid = usage_metrics.create_metric(c.db, c.clock, principal.organization_id, spec, actor=principal.actor)
    return _get(c, principal.organization_id, mid, 201)


def _get(c: ContainerDep, org_id: int, metric_id: int, status: int = 200) -> Response:
    with c.db.read() as conn:
        return p.json_response(metric(usage_metrics.get_metric(conn, org_id, metric_id)), status)


@api.get("/billable_metrics", response_model=ListOut[MetricOut])
@on_loop
def list_metrics(request: Request, principal: OrgDep, c: ContainerDep, page: PageDep) -> Response:
    """The organisation's billable metrics, newest first, a cursor page."""
    return list_response(request, c, principal.organization_id, tu.billable_metrics, metric, page)


@api.get("/billable_metrics/{metric_id}", response_model=MetricOut)
@on_loop
def get_metric(metric_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """One billable metric."""
    return _get(c, principal.organization_id, metric_id)


@api.post("/billable_metrics/{metric_id}", response_model=MetricOut)
def update_metric(metric_id: Id, body: MetricPatch, principal: OrgDep, c: ContainerDep) -> Response:
    """Only the name changes: the definition is fixed once created (the hour buckets were built with it)."""
    usage_metrics.rename_metric(
        c.db, c.clock, principal.organization_id, metric_id, body.name, actor=principal.actor
    )
    return _get(c, principal.organization_id, metric_id)


@api.delete("/billable_metrics/{metric_id}", status_code=204)
def delete_metric(metric_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """Delete a metric no price uses and no event was counted against (else 409)."""
    usage_metrics.delete_metric(c.db, c.clock, principal.organization_id, metric_id, actor=principal.actor)
    return Response(status_code=204)


def _usage(preview: usage_billing.UsagePreview) -> dict[str, Any]:
    cur = preview.computed.currency
    lines = preview.computed.lines
    charges = []
    for m in preview.measured:
        amount = sum(lines[m.first_line + k].amount_minor for k in range(len(m.parts)))
        charges.append(
            {
                "price_id": m.price_id,
                "metric_code": m.metric_code,
                "group": m.group,
                "quantity": str(m.quantity),
                "events": m.events,
                "amount": p.money(amount, cur),
                "tiers": m.parts,
            }
        )
    return {
        "object": "usage",
        "customer_id": preview.subscription["customer_id"],
        "subscription_id": preview.subscription["id"],
        "currency": cur.code,
        "period_start": preview.period.start,
        "period_end": preview.period.end,
        "amount": p.money(preview.computed.subtotal_minor, cur),
        "charges": charges,
    }


@api.get("/customers/{customer_id}/usage", response_model=UsageOut | CustomerUsageOut)
def customer_usage(
    customer_id: Id,
    principal: OrgDep,
    c: ContainerDep,
    subscription: Annotated[
        Id | None,
        Query(description="the subscription whose current period is shown; without it, every subscription"),
    ] = None,
) -> Response:
    """The current period's usage per usage price and group, and the amount so far (net), computed by the
    code that bills it. Without `subscription`: the customer's current usage across its subscriptions
    with usage prices (`object: customer_usage`, one entry per subscription, amounts per currency)."""
    org_id = principal.organization_id
    if subscription is None:
        previews = usage_billing.preview_customer_usage(c.db, org_id, customer_id, c.clock.now())
        totals: dict[str, int] = {}
        for pv in previews:
            code = pv.computed.currency.code
            totals[code] = totals.get(code, 0) + pv.computed.subtotal_minor
        amounts = [{"currency": k, "amount": p.money(v, currency(k))} for k, v in sorted(totals.items())]
        return p.json_response(
            {
                "object": "customer_usage",
                "customer_id": customer_id,
                "amounts": amounts,
                "subscriptions": [_usage(pv) for pv in previews],
            }
        )
    preview = usage_billing.preview_usage(c.db, org_id, subscription, c.clock.now())
    if preview is None or preview.subscription["customer_id"] != customer_id:
        raise NotFoundError(
            "usage", f"of subscription {subscription} for customer {customer_id}", field="subscription"
        )
    return p.json_response(_usage(preview))


@api.get("/documents/{document_id}/usage", response_model=ListOut[DocumentUsageOut])
def document_usage(document_id: Id, principal: OrgDep, c: ContainerDep, request: Request) -> Response:
    """What each usage charge of a document measured: metric, group, quantity, events, tiers, period."""
    with c.db.read() as conn:
        rows = usage_queries.document_usage(conn, principal.organization_id, document_id)
    data = [
        {
            "object": "usage_line",
            "price_id": r["price_id"],
            "metric_code": r["metric_code"],
            "group": r["group_value"],
            "period_start": r["period_start"],
            "period_end": r["period_end"],
            "quantity": str(r["quantity"]),
            "events": r["events"],
            "amount": p.money(r["amount_minor"], currency(r["currency"])),
            "tiers": r["breakdown"],
        }
        for r in rows
    ]
    return p.json_response({"object": "list", "data": data, "has_more": False, "url": request.url.path})


def _settings(s: usage_settings.UsageSettings) -> Response:
    return p.json_response(
        {
            "object": "usage_settings",
            "late_days": s.late_days,
            "grace_hours": s.grace_hours,
            "late_policy": s.late_policy,
            "accept_unknown_customers": s.accept_unknown_customers,
        }
    )


@api.get("/usage_settings", response_model=UsageSettingsOut)
def get_usage_settings(principal: OrgDep, c: ContainerDep) -> Response:
    """How late events may arrive (days), the grace before a period's usage is billed (hours), and what
    events after issue become (`invoice`: a supplementary invoice or a credit note for the difference;
    `credit_note`: the usage invoice credited in full and the period invoiced again)."""
    with c.db.read() as conn:
        return _settings(usage_settings.load_usage_settings(conn, principal.organization_id))


@api.post("/usage_settings", response_model=UsageSettingsOut)
def update_usage_settings(body: UsageSettingsIn, principal: OrgDep, c: ContainerDep) -> Response:
    """Change the late window, the grace window or the late policy (fields left out stay)."""
    return _settings(
        usage_settings.update_usage_settings(
            c.db,
            principal.organization_id,
            late_days=body.late_days,
            grace_hours=body.grace_hours,
            late_policy=body.late_policy,
            accept_unknown_customers=body.accept_unknown_customers,
            clock=c.clock,
            actor=principal.actor,
        )
    )


def _usage_price(c: ContainerDep, org_id: int, price_id: int, status: int = 200) -> Response:
    with c.db.read() as conn:
        found = usage_prices.get_usage_price(conn, org_id, price_id)
    return p.json_response(
        {
            "object": "usage_price",
            "price_id": found.price_id,
            "metric_id": found.metric_id,
            "charge_model": found.charge.model.value,
            "properties": found.properties,
        },
        status,
    )


@api.post("/variants/{variant_id}/usage_prices", status_code=201, response_model=UsagePriceOut)
def create_usage_price(variant_id: Id, body: UsagePriceIn, principal: OrgDep, c: ContainerDep) -> Response:
    """A price of the variant billed in arrears on a billable metric with a charge model; subscribe to it
    like any recurring price (`GET /prices/{id}` shows it with unit amount 0)."""
    props = body.properties.model_dump(exclude_none=True)
    price_id = catalog.create_price(
        c.db,
        c.clock,
        principal.organization_id,
        variant_id,
        currency_code=body.currency,
        unit_amount="0",
        interval=body.interval,
        interval_count=body.interval_count,
        tax_inclusive=body.tax_inclusive,
        tax_category=body.tax_category,
        actor=principal.actor,
        usage=usage_prices.UsageSpec(body.metric_id, body.charge_model, props),
    )
    return _usage_price(c, principal.organization_id, price_id, 201)


@api.get("/prices/{price_id}/usage", response_model=UsagePriceOut)
def get_usage_price(price_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """The metric and charge of a usage-based price (404 for a price that is not usage-based)."""
    return _usage_price(c, principal.organization_id, price_id)


def _threshold(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "usage_threshold",
        "subscription_id": row["subscription_id"],
        "price_id": row["price_id"],
        "kind": row["kind"],
        "value": str(row["value"]),
        "created_at": row["created_at"].isoformat().replace("+00:00", "Z"),
    }


@api.post("/subscriptions/{subscription_id}/usage_thresholds", status_code=201, response_model=ThresholdOut)
def create_usage_threshold(
    subscription_id: Id, body: ThresholdIn, principal: OrgDep, c: ContainerDep
) -> Response:
    """A usage threshold: once the current period's usage reaches it, the worker announces
    `usage.threshold_reached` to the webhook endpoints, once per period. At most 20 per subscription."""
    org_id = principal.organization_id
    spec = usage_thresholds.ThresholdSpec(body.kind, body.value, body.price_id)
    tid = usage_thresholds.create_threshold(
        c.db, c.clock, org_id, subscription_id, spec, actor=principal.actor
    )
    with c.db.read() as conn:
        return p.json_response(_threshold(usage_thresholds.get_threshold(conn, org_id, tid)), 201)


@api.get("/subscriptions/{subscription_id}/usage_thresholds", response_model=ListOut[ThresholdOut])
def list_usage_thresholds(
    subscription_id: Id, principal: OrgDep, c: ContainerDep, request: Request
) -> Response:
    """The subscription's usage thresholds, oldest first (all of them: at most 20)."""
    with c.db.read() as conn:
        rows = usage_thresholds.list_thresholds(conn, principal.organization_id, subscription_id)
    data = [_threshold(r) for r in rows]
    return p.json_response({"object": "list", "data": data, "has_more": False, "url": request.url.path})


@api.delete("/usage_thresholds/{threshold_id}", status_code=204)
def delete_usage_threshold(threshold_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """Remove a usage threshold (it is announced no more)."""
    usage_thresholds.delete_threshold(
        c.db, c.clock, principal.organization_id, threshold_id, actor=principal.actor
    )
    return Response(status_code=204)
