"""Usage routes: events in, billable metrics, a customer's current usage. Parse, call, present."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from fiscus.adapters.db import tables_usage as tu
from fiscus.api import presenters as p
from fiscus.api.deps import ContainerDep, OrgDep, on_loop
from fiscus.api.routes.common import PageDep, list_response, router
from fiscus.api.schemas import Id, ListOut
from fiscus.api.usage_schemas import EventsIn, EventsOut, MetricIn, MetricOut, MetricPatch
from fiscus.services import usage_ingest, usage_metrics

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


@api.post("/events", status_code=202, response_model=EventsOut)
def post_events(body: EventsIn, principal: OrgDep, c: ContainerDep) -> Response:
    """A batch of up to 1,000 events: all stored, or none and every bad one named by its index."""
    events = [
        usage_ingest.EventIn(e.transaction_id, e.code, e.timestamp, e.properties, e.customer_id)
        for e in body.events
    ]
    received = usage_ingest.ingest_events(c.db, c.clock, principal.organization_id, events)
    return p.json_response({"object": "event_batch", "received": received}, 202)


@api.post("/billable_metrics", status_code=201, response_model=MetricOut)
def create_metric(body: MetricIn, principal: OrgDep, c: ContainerDep) -> Response:
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
    return list_response(request, c, principal.organization_id, tu.billable_metrics, metric, page)


@api.get("/billable_metrics/{metric_id}", response_model=MetricOut)
@on_loop
def get_metric(metric_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
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
    usage_metrics.delete_metric(c.db, c.clock, principal.organization_id, metric_id, actor=principal.actor)
    return Response(status_code=204)
