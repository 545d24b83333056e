"""Organisations: an organisation key reads and changes its own (`/organization`); a platform admin key
(`fak_…`) creates, lists, reads and changes any (`/organizations`). Neither reaches the other's routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Path, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from fiscus.api.deps import ContainerDep, OrgDep, RateLimiter, container, resolve_principal
from fiscus.api.errors import ApiError
from fiscus.api.org_schemas import (
    SERIES_PATTERN,
    LogoOut,
    OrganizationCreatedOut,
    OrganizationCreateIn,
    OrganizationListOut,
    OrganizationOut,
    OrganizationPatchIn,
    SeriesIn,
    SeriesOut,
    SettingsAddressIn,
    VatRatesIn,
)
from fiscus.api.presenters import json_response
from fiscus.api.routes.common import IDEMPOTENCY_HEADER, PROBLEMS, EndingBefore, Limit, StartingAfter, router
from fiscus.api.schemas import Id
from fiscus.bootstrap import Container
from fiscus.domain.documents import DocumentType
from fiscus.domain.errors import NotFoundError
from fiscus.domain.logo import MAX_LOGO_BYTES, PNG, SVG, accept_logo
from fiscus.queries import organizations as q
from fiscus.services import instance
from fiscus.services import org_settings as svc
from fiscus.services.access import ADMIN_PREFIX, authenticate_admin

api = router("organization")
admin = APIRouter(prefix="/api/v1", tags=["platform admin"], responses=PROBLEMS)

LOGO_HEADERS = {
    # An SVG opened directly must not run anything even if the sanitiser missed something.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, max-age=300",
}


def _show(c: Container, org_id: int, status: int = 200) -> Response:
    with c.db.read() as conn:
        return json_response(q.get_organization(conn, org_id), status)


def _changes(body: OrganizationPatchIn) -> dict[str, Any]:
    """The fields sent (a left-out field is MISSING, never dumped), in the service's shape."""
    changes = body.model_dump(exclude_unset=True)
    if body.bank_accounts is not None:
        changes["bank_accounts"] = [a.model_dump(exclude_none=True) for a in body.bank_accounts]
    if isinstance(body.address, SettingsAddressIn):
        changes["address"] = body.address.model_dump(exclude_unset=True)
    if isinstance(body.vat_rates, VatRatesIn):
        changes["vat_rates"] = body.vat_rates.model_dump(exclude_unset=True)
    return changes


# --- the calling organisation ----------------------------------------------------------------------


@api.get("/organization", response_model=OrganizationOut)
def get_own_organization(principal: OrgDep, c: ContainerDep) -> Response:
    """The calling key's organisation with all its settings."""
    return _show(c, principal.organization_id)


@api.post("/organization", response_model=OrganizationOut, openapi_extra=IDEMPOTENCY_HEADER)
def update_own_organization(body: OrganizationPatchIn, principal: OrgDep, c: ContainerDep) -> Response:
    """Change settings; issued documents keep their frozen seller, the next ones show the change."""
    svc.update_settings(c.db, c.clock, principal.organization_id, _changes(body), actor=principal.actor)
    return _show(c, principal.organization_id)


@api.get(
    "/organization/logo",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/svg+xml": {}}, "description": "the current logo"}},
)
def get_logo(principal: OrgDep, c: ContainerDep) -> Response:
    with c.db.read() as conn:
        content_type, data, sha = q.current_logo(conn, principal.organization_id)
    return Response(data, media_type=content_type, headers={**LOGO_HEADERS, "ETag": f'"{sha}"'})


LOGO_TYPES = f"{PNG}, {SVG}"
LOGO_BODY = {
    "requestBody": {
        "content": {"multipart/form-data": {"encoding": {"file": {"contentType": LOGO_TYPES}}}},
    }
}
"""The part's media types, stated where a generated client (and schemathesis) reads them."""
NOT_EMPTY: dict[str, Any] = {"minLength": 1}


@api.post(
    "/organization/logo",
    response_model=LogoOut,
    openapi_extra={**IDEMPOTENCY_HEADER, **LOGO_BODY},
    description="Multipart field `file`: a PNG (≤ 4096 px a side) or an SVG, "
    f"at most {MAX_LOGO_BYTES} bytes. "
    "An SVG is rebuilt from whitelisted elements and attributes (no script, event handlers, external "
    "references or foreignObject; a DOCTYPE or entity is refused); `removed` lists what was dropped.",
)
async def upload_logo(
    file: Annotated[
        UploadFile, File(description="PNG or SVG, not empty", json_schema_extra={"minLength": 1})
    ],
    principal: OrgDep,
    c: ContainerDep,
) -> Response:
    data = await file.read(MAX_LOGO_BYTES + 1)
    logo = accept_logo(data, file.content_type, "file")
    await run_in_threadpool(
        svc.set_logo, c.db, c.clock, principal.organization_id, logo, actor=principal.actor
    )
    return json_response(
        {
            "sha256": logo.sha256,
            "content_type": logo.content_type,
            "width": logo.width,
            "height": logo.height,
            "url": "/api/v1/organization/logo",
            "removed": list(logo.removed),
        }
    )


@api.delete("/organization/logo", response_model=OrganizationOut)
def delete_logo(principal: OrgDep, c: ContainerDep) -> Response:
    """The next documents carry no logo (issued ones keep theirs)."""
    svc.remove_logo(c.db, c.clock, principal.organization_id, actor=principal.actor)
    return _show(c, principal.organization_id)


@api.post(
    "/organization/number_series/{document_type}/{series}",
    response_model=SeriesOut,
    openapi_extra=IDEMPOTENCY_HEADER,
)
def set_series(
    document_type: DocumentType,
    series: Annotated[str, Path(pattern=SERIES_PATTERN, description="letters, digits, - or _; 1 to 32")],
    body: SeriesIn,
    principal: OrgDep,
    c: ContainerDep,
) -> Response:
    """Create a series or change its format or move its counter forward."""
    row = svc.set_series(
        c.db,
        c.clock,
        principal.organization_id,
        document_type,
        series,
        number_format=body.format,
        next_value=body.next_value,
        actor=principal.actor,
    )
    return json_response(row)


# --- platform administration ---------------------------------------------------------------------


def _admin(request: Request) -> int:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise ApiError(401, "send an admin key as `Authorization: Bearer fak_…`", code="invalid_credential")
    if not secret.startswith(ADMIN_PREFIX):
        raise ApiError(
            403,
            "organisations are managed with an admin key (fiscus admin-keys create)",
            code="insufficient_scope",
        )
    c = container(request)
    key_id = authenticate_admin(c.db, c.clock, secret)
    if key_id is None:
        raise ApiError(401, "the admin key is unknown or revoked", code="invalid_credential")
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = limiter.take(("admin", key_id))
    if wait:
        raise ApiError(
            429, "rate limit exceeded for this credential", headers={"Retry-After": str(max(1, round(wait)))}
        )
    return key_id


AdminDep = Annotated[int, Depends(_admin)]


def _admin_or_own(request: Request, organization_id: Id) -> str:
    """An admin key reaches any organisation; an organisation key only its own, and another's id is a
    404 like every other tenant's object. Returns the actor for the audit trail."""
    secret = request.headers.get("authorization", "").partition(" ")[2].strip()
    if secret.startswith(ADMIN_PREFIX):
        return f"admin_key:{_admin(request)}"
    principal = resolve_principal(request)
    if principal.is_customer:
        raise ApiError(403, "customer tokens cannot read organisation settings", code="insufficient_scope")
    if principal.organization_id != organization_id:
        raise NotFoundError("organization", organization_id)
    return principal.actor


ActorDep = Annotated[str, Depends(_admin_or_own)]


@admin.post("/organizations", status_code=201, response_model=OrganizationCreatedOut)
def create_organization(body: OrganizationCreateIn, key_id: AdminDep, c: ContainerDep) -> Response:
    """A new organisation with a first API key of its mode (the secret is in this response only)."""
    settings = _changes(body.settings) if body.settings else None
    created = instance.create_organization(
        c.db,
        c.clock,
        instance.NewOrganization(
            legal_name=body.legal_name,
            country=body.country,
            slug=body.slug,
            default_currency=body.default_currency,
            timezone=body.timezone,
            locale=body.locale,
            vat_registered=body.vat_registered,
            vat_rate=body.vat_rate,
            reduced_vat_rate=body.reduced_vat_rate,
            vat_id=body.vat_id,
            tax_id=body.tax_id,
            email=body.email,
            mode=body.mode,
            settings=settings,
        ),
        actor=f"admin_key:{key_id}",
    )
    with c.db.read() as conn:
        org = q.get_organization(conn, created.organization_id)
    key = created.key
    return json_response({**org, "api_key": {"id": key.id, "prefix": key.prefix, "secret": key.secret}}, 201)


@admin.get("/organizations", response_model=OrganizationListOut)
def list_organizations(
    request: Request,
    key_id: AdminDep,
    c: ContainerDep,
    limit: Limit = 20,
    starting_after: StartingAfter = None,
    ending_before: EndingBefore = None,
) -> Response:
    with c.db.read() as conn:
        data, more = q.page_organizations(
            conn, limit=limit, starting_after=starting_after, ending_before=ending_before
        )
    return json_response({"object": "list", "data": data, "has_more": more, "url": request.url.path})


@admin.get("/organizations/{organization_id}", response_model=OrganizationOut)
def get_organization(organization_id: Id, actor: ActorDep, c: ContainerDep) -> Response:
    """Any organisation with an admin key; its own with an organisation key (another's is a 404)."""
    return _show(c, organization_id)


@admin.post("/organizations/{organization_id}", response_model=OrganizationOut)
def update_organization(
    organization_id: Id, body: OrganizationPatchIn, actor: ActorDep, c: ContainerDep
) -> Response:
    """Change any organisation's settings with an admin key, or one's own with its key."""
    svc.update_settings(c.db, c.clock, organization_id, _changes(body), actor=actor)
    return _show(c, organization_id)
