"""The customer portal's API: a business's app asks for a portal session link for one of its customers
(`POST /customers/{id}/portal_sessions`, like Stripe's billing portal sessions) and sets what customers
may do there (`/portal/configuration`). The pages themselves are in `fiscus.web.portal`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import Request, Response
from pydantic import MISSING, Field

from fiscus.api import presenters as p
from fiscus.api.deps import ContainerDep, OrgDep
from fiscus.api.fields import Id, In
from fiscus.api.links import public_base
from fiscus.api.routes.common import IDEMPOTENCY_HEADER, router
from fiscus.api.schemas import Out
from fiscus.services import portal as svc
from fiscus.services.portal_settings import PortalSettings, portal_settings, update_portal_settings

api = router("portal")

PORTAL_LOCALES = Literal["en", "bg", "ru", "kk"]


class PortalSessionIn(In):
    return_url: str | None = Field(
        None,
        max_length=svc.MAX_RETURN_URL,
        pattern=svc.RETURN_URL.pattern,
        description="Where the portal's back link goes: an absolute http or https URL with a host name or "
        "IPv4 address, no credentials, a port up to 65535, RFC 3986 characters only",
    )
    locale: PORTAL_LOCALES | None = Field(None, description="omitted: the customer's locale")


class PortalSessionOut(Out):
    object: Literal["portal_session"] = "portal_session"
    customer: int
    url: str = Field(description="Open once, within `expires_at`; it signs the customer in")
    expires_at: datetime
    return_url: str | None
    locale: str | None


class PortalConfigurationIn(In):
    """Fields left out stay as they are; only `brand_color` clears with null. A price in `plans` that is
    not recurring is a 409 `field_conflict` naming it."""

    allow_plan_change: bool | MISSING = MISSING
    allow_quantity_change: bool | MISSING = MISSING
    allow_cancel: bool | MISSING = MISSING
    plans: list[Id] | MISSING = Field(
        MISSING, max_length=20, description="price ids a customer may switch to"
    )
    brand_color: str | None = Field(
        None, pattern=r"^#[0-9a-fA-F]{6}$", description="#rrggbb; null: the default colour"
    )


class PortalConfigurationOut(Out):
    object: Literal["portal_configuration"] = "portal_configuration"
    allow_plan_change: bool
    allow_quantity_change: bool
    allow_cancel: bool
    plans: list[int]
    brand_color: str | None


@api.post(
    "/customers/{customer_id}/portal_sessions",
    status_code=201,
    response_model=PortalSessionOut,
    openapi_extra=IDEMPOTENCY_HEADER,
    summary="Create a portal session link",
)
def create_portal_session(
    customer_id: Id, body: PortalSessionIn, principal: OrgDep, c: ContainerDep, request: Request
) -> Response:
    """A one-time link that signs this customer in to the customer portal: open it within an hour;
    it then sets a session cookie for this customer of this organisation only. Organisation API keys
    only (a customer token gets 403)."""
    link = svc.create_session_link(
        c.db,
        c.clock,
        principal.organization_id,
        customer_id,
        return_url=body.return_url,
        locale=body.locale,
        actor=principal.actor,
    )
    return p.json_response(
        {
            "object": "portal_session",
            "customer": customer_id,
            "url": f"{public_base(request)}{link.path}",
            "expires_at": link.expires_at,
            "return_url": link.return_url,
            "locale": body.locale,
        },
        201,
    )


def _configuration(settings: PortalSettings) -> Response:
    return p.json_response({"object": "portal_configuration", **settings.as_json()})


@api.get(
    "/portal/configuration", response_model=PortalConfigurationOut, summary="Get the portal configuration"
)
def get_portal_configuration(principal: OrgDep, c: ContainerDep) -> Response:
    """What customers may do in the portal besides seeing and paying their documents, managing cards
    and billing details. Organisation API keys only."""
    with c.db.read() as conn:
        return _configuration(portal_settings(conn, principal.organization_id))


@api.post(
    "/portal/configuration",
    response_model=PortalConfigurationOut,
    openapi_extra=IDEMPOTENCY_HEADER,
    summary="Update the portal configuration",
)
def update_portal_configuration(body: PortalConfigurationIn, principal: OrgDep, c: ContainerDep) -> Response:
    """Turn plan changes (to the `plans` offered), quantity changes and cancelling at period end on or
    off, and set the portal's brand colour. Fields left out stay as they are. Organisation API keys only."""
    changes = body.model_dump(exclude_unset=True)
    return _configuration(
        update_portal_settings(c.db, c.clock, principal.organization_id, changes, actor=principal.actor)
    )
