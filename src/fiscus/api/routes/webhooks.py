"""Webhook endpoints, their deliveries and redelivery. Organisation keys only: endpoints carry signing
secrets and deliveries carry every event of the organisation, so customer tokens get 403.

A secret is returned twice in an endpoint's life at most: when it is created and when it is rotated.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import Query, Request, Response
from pydantic import Field
from sqlalchemy import Connection, select

from fiscus.adapters.db import tables as t
from fiscus.api import presenters as p
from fiscus.api.deps import ContainerDep, OrgDep, on_loop
from fiscus.api.routes.common import IDEMPOTENCY_HEADER, EndingBefore, Limit, StartingAfter, envelope, router
from fiscus.api.schemas import Id, In, ListOut, Out
from fiscus.queries.rows import get_row, page_rows
from fiscus.queries.scope import Scope
from fiscus.services import webhooks as svc

api = router("webhooks")

EventTypes = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64, pattern=svc.EVENT_TYPE.pattern)]],
    Field(min_length=1, max_length=100, examples=[["*"], ["invoice.*", "customer.created"]]),
]
PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
WEBHOOK_URL = (
    r"^https?://(?=[^/:?#]{1,253}([:/?#]|$))"
    r"(([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z]([a-z0-9-]{0,61}[a-z0-9])?"
    rf"|({OCTET}\.){{3}}{OCTET})"
    rf"(:{PORT})?([/?#][!-~]*)?$"
)
"""An http(s) URL with a lower-case host name or an IPv4 address, no credentials and no space: what
the SSRF guard can parse. Loopback and private destinations (`localhost`, 10.0.0.0/8, …) are then
refused with 422 unless the server runs with FISCUS_WEBHOOKS_ALLOW_PRIVATE=true, and a name that
resolves to one is refused again at each delivery."""
Url = Annotated[str, Field(min_length=1, max_length=2000, pattern=WEBHOOK_URL)]
DeliveryStatus = Literal["pending", "succeeded", "failed"]


class WebhookEndpointIn(In):
    url: Url = Field(examples=["https://example.com/hooks/fiscus"])
    event_types: EventTypes = Field(default_factory=lambda: ["*"])
    description: str = Field("", max_length=500)
    enabled: bool = True


class WebhookEndpointPatch(In):
    url: Url | None = None
    event_types: EventTypes | None = None
    description: str | None = Field(None, max_length=500)
    enabled: bool | None = None


class RotateSecretIn(In):
    expire_previous_in: int = Field(
        86_400, ge=0, le=7 * 86_400, description="seconds the old secret keeps signing too; 0 ends it now"
    )


class WebhookEndpointOut(Out):
    id: int
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookEndpointWithSecretOut(WebhookEndpointOut):
    secret: str = Field(description="whsec_… signing secret; shown only in this response")


class WebhookAttemptOut(Out):
    id: int
    object: Literal["webhook_attempt"] = "webhook_attempt"
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    response_body: str | None = Field(description="the first 2 KB of the response")


class WebhookDeliveryOut(Out):
    id: int
    object: Literal["webhook_delivery"] = "webhook_delivery"
    endpoint_id: int
    event_id: int
    webhook_id: str = Field(description="the `webhook-id` header, the same for every attempt")
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    created_at: datetime


class WebhookDeliveryDetailOut(WebhookDeliveryOut):
    attempt_log: list[WebhookAttemptOut] = Field(description="every attempt, oldest first")


def _endpoint(row: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
    out = {
        "id": row["id"],
        "object": "webhook_endpoint",
        "url": row["url"],
        "description": row["description"],
        "event_types": list(row["event_types"]),
        "enabled": bool(row["enabled"]),
        "previous_secret_expires_at": row["previous_secret_expires_at"] if row["previous_secret"] else None,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    if secret is not None:
        out["secret"] = secret
    return out


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "webhook_delivery",
        "endpoint_id": row["endpoint_id"],
        "event_id": row["event_id"],
        "webhook_id": f"evt_{row['event_id']}",
        "event_type": row["event_type"],
        "status": row["status"],
        "attempts": row["attempts"],
        "next_attempt_at": row["next_attempt_at"],
        "last_attempt_at": row["last_attempt_at"],
        "created_at": row["created_at"],
    }


def _attempt(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "webhook_attempt",
        "attempted_at": row.attempted_at,
        "status_code": row.status_code,
        "error": row.error,
        "duration_ms": row.duration_ms,
        "response_body": row.response_body,
    }


def _get_endpoint(c: ContainerDep, org_id: int, endpoint_id: int, secret: str | None = None) -> Response:
    with c.db.read() as conn:
        row = get_row(conn, Scope(org_id), t.webhook_endpoints, endpoint_id, "webhook_endpoint")
    return p.json_response(_endpoint(row, secret))


def _delivery_detail(conn: Connection, org_id: int, delivery_id: int) -> dict[str, Any]:
    row = get_row(conn, Scope(org_id), t.webhook_deliveries, delivery_id, "webhook_delivery")
    a = t.webhook_attempts.c
    attempts = conn.execute(
        select(t.webhook_attempts)
        .where(a.delivery_id == delivery_id, a.organization_id == org_id)
        .order_by(a.attempted_at, a.id)
    ).all()
    return {**_delivery(row), "attempt_log": [_attempt(r) for r in attempts]}


@api.post(
    "/webhook_endpoints",
    status_code=201,
    response_model=WebhookEndpointWithSecretOut,
    openapi_extra=IDEMPOTENCY_HEADER,
)
def create_webhook_endpoint(body: WebhookEndpointIn, principal: OrgDep, c: ContainerDep) -> Response:
    """Register a URL for events. Private and loopback destinations are refused unless the server
    allows them (`FISCUS_WEBHOOKS_ALLOW_PRIVATE`)."""
    endpoint_id, secret = svc.create_endpoint(
        c.db,
        c.clock,
        principal.organization_id,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        enabled=body.enabled,
        actor=principal.actor,
        allow_private=c.settings.webhooks_allow_private,
    )
    response = _get_endpoint(c, principal.organization_id, endpoint_id, secret)
    response.status_code = 201
    return response


@api.get("/webhook_endpoints", response_model=ListOut[WebhookEndpointOut])
@on_loop
def list_webhook_endpoints(
    request: Request,
    principal: OrgDep,
    c: ContainerDep,
    limit: Limit = 10,
    starting_after: StartingAfter = None,
    ending_before: EndingBefore = None,
) -> Response:
    with c.db.read() as conn:
        rows, more = page_rows(
            conn,
            Scope(principal.organization_id),
            t.webhook_endpoints,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
    return p.json_response(envelope(request, [_endpoint(r) for r in rows], more))


@api.get("/webhook_endpoints/{endpoint_id}", response_model=WebhookEndpointOut)
@on_loop
def get_webhook_endpoint(endpoint_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    return _get_endpoint(c, principal.organization_id, endpoint_id)


@api.post(
    "/webhook_endpoints/{endpoint_id}", response_model=WebhookEndpointOut, openapi_extra=IDEMPOTENCY_HEADER
)
def update_webhook_endpoint(
    endpoint_id: Id, body: WebhookEndpointPatch, principal: OrgDep, c: ContainerDep
) -> Response:
    svc.update_endpoint(
        c.db,
        c.clock,
        principal.organization_id,
        endpoint_id,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        enabled=body.enabled,
        actor=principal.actor,
        allow_private=c.settings.webhooks_allow_private,
    )
    return _get_endpoint(c, principal.organization_id, endpoint_id)


@api.delete("/webhook_endpoints/{endpoint_id}", response_model=WebhookEndpointOut)
def delete_webhook_endpoint(endpoint_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """Disable the endpoint and fail its queued deliveries; its delivery history stays readable."""
    svc.delete_endpoint(c.db, c.clock, principal.organization_id, endpoint_id, actor=principal.actor)
    return _get_endpoint(c, principal.organization_id, endpoint_id)


@api.post(
    "/webhook_endpoints/{endpoint_id}/rotate_secret",
    response_model=WebhookEndpointWithSecretOut,
    openapi_extra=IDEMPOTENCY_HEADER,
)
def rotate_webhook_secret(
    endpoint_id: Id, principal: OrgDep, c: ContainerDep, body: RotateSecretIn | None = None
) -> Response:
    """A new secret, shown only in this response. Until `previous_secret_expires_at`, deliveries carry
    signatures by both secrets, so receivers can switch at leisure."""
    keep = timedelta(seconds=(body or RotateSecretIn()).expire_previous_in)
    secret = svc.rotate_secret(
        c.db, c.clock, principal.organization_id, endpoint_id, keep_old_for=keep, actor=principal.actor
    )
    return _get_endpoint(c, principal.organization_id, endpoint_id, secret)


@api.get("/webhook_endpoints/{endpoint_id}/deliveries", response_model=ListOut[WebhookDeliveryOut])
@on_loop
def list_webhook_deliveries(
    endpoint_id: Id,
    request: Request,
    principal: OrgDep,
    c: ContainerDep,
    limit: Limit = 10,
    starting_after: StartingAfter = None,
    ending_before: EndingBefore = None,
    status: Annotated[DeliveryStatus | None, Query(description="pending, succeeded or failed")] = None,
) -> Response:
    """Newest first."""
    scope = Scope(principal.organization_id)
    d = t.webhook_deliveries.c
    where: list[Any] = [d.endpoint_id == endpoint_id]
    if status is not None:
        where.append(d.status == status)
    with c.db.read() as conn:
        get_row(conn, scope, t.webhook_endpoints, endpoint_id, "webhook_endpoint")
        rows, more = page_rows(
            conn,
            scope,
            t.webhook_deliveries,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            where=where,
        )
    return p.json_response(envelope(request, [_delivery(r) for r in rows], more))


@api.get("/webhook_deliveries/{delivery_id}", response_model=WebhookDeliveryDetailOut)
@on_loop
def get_webhook_delivery(delivery_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    with c.db.read() as conn:
        return p.json_response(_delivery_detail(conn, principal.organization_id, delivery_id))


@api.post(
    "/webhook_deliveries/{delivery_id}/redeliver",
    response_model=WebhookDeliveryDetailOut,
    openapi_extra=IDEMPOTENCY_HEADER,
)
def redeliver_webhook(delivery_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """Queue the delivery for an attempt now, also when it has failed (one more attempt, then failed
    again if that one fails). The endpoint must be enabled."""
    svc.redeliver(c.db, c.clock, principal.organization_id, delivery_id, actor=principal.actor)
    with c.db.read() as conn:
        return p.json_response(_delivery_detail(conn, principal.organization_id, delivery_id))
