from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fiscus.adapters.db import tables as t
from fiscus.api import presenters as p
from fiscus.api.deps import ContainerDep, OrgDep, ScopeDep, container, on_loop, resolve_principal
from fiscus.api.fields import NOT_BLANK, In
from fiscus.api.links import hosted_links, public_base
from fiscus.api.routes.common import (
    IDEMPOTENCY_HEADER,
    DocumentExpand,
    envelope,
    router,
)
from fiscus.api.routes.subscriptions import present as present_subscription
from fiscus.api.schemas import AuditEventOut, DocumentOut, Id, ListOut, QueryInstant
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.domain.errors import NotFoundError
from fiscus.queries.documents import (
    DocumentFilters,
    Stamp,
    audit_events,
    document_stamp,
    get_document,
    load_documents,
    page_document_stamps,
)
from fiscus.queries.payments import document_payments
from fiscus.queries.rows import get_row
from fiscus.queries.scope import Scope
from fiscus.services import document_emails
from fiscus.services import documents as svc

api = router("documents")
Status = Annotated[
    DocumentStatus | None, Query(description="draft, open, paid, void, uncollectible, converted")
]
Type = Annotated[DocumentType | None, Query(description="proforma, invoice or credit_note")]

EXPANDABLE = {"lines", "customer", "subscription"}


def _present(
    request: Request, c: ContainerDep, scope: Scope, document_id: int, expand: Sequence[str]
) -> dict[str, Any]:
    link = hosted_links(request)
    with c.db.read() as conn:
        doc = get_document(conn, scope, document_id)
        history = document_payments(conn, scope, [doc.id]).get(doc.id)
        out = p.document(doc, history, lines=True, hosted_url=link(doc))
        if "customer" in expand:
            out["customer"] = p.customer(
                get_row(conn, Scope(scope.organization_id), t.customers, doc.customer_id, "customer")
            )
        if "subscription" in expand and doc.subscription_id is not None and scope.customer_id is None:
            org_scope = Scope(scope.organization_id)
            row = get_row(conn, org_scope, t.subscriptions, doc.subscription_id, "subscription")
            out["subscription"] = present_subscription(conn, org_scope, row, [])
    return out


class DocumentListQuery(BaseModel):
    """The list's query string, validated as one model by the handler itself: FastAPI's per-parameter
    dependency solving cost more than the whole database read on this hot path (bench/api_read.py)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    limit: Annotated[int, Field(ge=1, le=100, description="page size, 1 to 100")] = 10
    starting_after: Annotated[Id | None, Field(description="id of the last object of the previous page")] = (
        None
    )
    ending_before: Annotated[Id | None, Field(description="id of the first object of the next page")] = None
    status: Literal["draft", "open", "paid", "void", "uncollectible", "converted"] | None = None
    type: Literal["proforma", "invoice", "credit_note"] | None = None
    customer_id: Id | None = None
    subscription_id: Id | None = None
    period_start_gte: Annotated[QueryInstant | None, Field(alias="period_start[gte]")] = None
    period_start_lt: Annotated[QueryInstant | None, Field(alias="period_start[lt]")] = None
    created_gte: Annotated[QueryInstant | None, Field(alias="created[gte]")] = None
    created_lt: Annotated[QueryInstant | None, Field(alias="created[lt]")] = None
    expand: Annotated[list[Literal["lines", "customer", "subscription"]], Field(alias="expand[]")] = []

    @classmethod
    def parse(cls, request: Request) -> DocumentListQuery:
        raw: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            if key == "expand[]":
                raw.setdefault(key, []).append(value)
            else:
                raw[key] = value
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
            ) from None

    @classmethod
    def openapi_parameters(cls) -> list[dict[str, Any]]:
        schema = cls.model_json_schema(by_alias=True, mode="validation")
        return [
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": prop,
                "description": prop.get("description", ""),
            }
            for name, prop in schema["properties"].items()
        ]


@api.get(
    "/documents",
    response_model=ListOut[DocumentOut],
    openapi_extra={"parameters": DocumentListQuery.openapi_parameters()},
)
@on_loop
def list_documents(request: Request) -> Response:
    """Newest first. Lines are included with `expand[]=lines`. A customer token sees its own only."""
    principal = resolve_principal(request)
    query = DocumentListQuery.parse(request)
    scope = Scope(principal.organization_id, principal.customer_id)
    filters = DocumentFilters(
        status=DocumentStatus(query.status) if query.status else None,
        type=DocumentType(query.type) if query.type else None,
        customer_id=query.customer_id,
        subscription_id=query.subscription_id,
        period_start_gte=query.period_start_gte,
        period_start_lt=query.period_start_lt,
        created_gte=query.created_gte,
        created_lt=query.created_lt,
    )
    lines = "lines" in query.expand
    variant = f"{'lines' if lines else 'header'}:{public_base(request)}"
    link = hosted_links(request)
    cache: p.RenderedCache = request.app.state.rendered
    with container(request).db.read() as conn:
        stamps, has_more = page_document_stamps(
            conn,
            scope,
            filters,
            limit=query.limit,
            starting_after=query.starting_after,
            ending_before=query.ending_before,
        )
        rendered = {doc_id: cache.get((doc_id, stamp, variant)) for doc_id, stamp in stamps}
        missing = [doc_id for doc_id, body in rendered.items() if body is None]
        history = document_payments(conn, scope, missing)
        for doc in load_documents(conn, scope, missing, lines=lines, products=False):
            body = p.encode(p.document(doc, history.get(doc.id), lines=lines, hosted_url=link(doc)))
            cache.put((doc.id, doc.stamp, variant), body)
            rendered[doc.id] = body
    items = [body for body in rendered.values() if body is not None]
    return p.list_bytes(items, has_more, request.url.path)


@api.get("/documents/{document_id}", response_model=DocumentOut)
@on_loop
def get_document_route(
    request: Request, document_id: Id, scope: ScopeDep, c: ContainerDep, expand: DocumentExpand = None
) -> Response:
    if expand:
        return p.json_response(_present(request, c, scope, document_id, expand))
    cache: p.RenderedCache = request.app.state.rendered
    link = hosted_links(request)
    with c.db.read() as conn:
        stamp = document_stamp(conn, scope, document_id)
        if stamp is None:
            raise NotFoundError("document", document_id)

        def render(ids: list[int]) -> list[tuple[int, Stamp, bytes]]:
            history = document_payments(conn, scope, ids)
            return [
                (d.id, d.stamp, p.encode(p.document(d, history.get(d.id), lines=True, hosted_url=link(d))))
                for d in load_documents(conn, scope, ids)
            ]

        [body] = p.cached_items(cache, [(document_id, stamp)], f"native:{public_base(request)}", render)
    return Response(body, media_type="application/json")


def _act(request: Request, c: ContainerDep, principal: OrgDep, document_id: int) -> Response:
    return p.json_response(_present(request, c, Scope(principal.organization_id), document_id, []))


@api.post("/documents/{document_id}/issue", response_model=DocumentOut, openapi_extra=IDEMPOTENCY_HEADER)
def issue(request: Request, document_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """Give a draft its legal number (gapless per series) and freeze seller and buyer."""
    svc.issue_document(c.db, c.clock, principal.organization_id, document_id, actor=principal.actor)
    return _act(request, c, principal, document_id)


@api.post("/documents/{document_id}/void", response_model=DocumentOut, openapi_extra=IDEMPOTENCY_HEADER)
def void(request: Request, document_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    svc.void_document(c.db, c.clock, principal.organization_id, document_id, actor=principal.actor)
    return _act(request, c, principal, document_id)


@api.post(
    "/documents/{document_id}/mark_uncollectible",
    response_model=DocumentOut,
    openapi_extra=IDEMPOTENCY_HEADER,
)
def mark_uncollectible(request: Request, document_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    svc.mark_uncollectible(c.db, c.clock, principal.organization_id, document_id, actor=principal.actor)
    return _act(request, c, principal, document_id)


class MarkPaidIn(In):
    reference: Annotated[str, Field(max_length=100, pattern=NOT_BLANK)] | None = Field(
        None,
        description="the payment's own reference (bank transfer reference, receipt number), stored "
        "stripped as the payment attempt's `provider_charge_id` and in the audit trail",
        examples=["SEPA 2026-12-07 RF18539007547034"],
    )


@api.post("/documents/{document_id}/mark_paid", response_model=DocumentOut, openapi_extra=IDEMPOTENCY_HEADER)
def mark_paid(
    request: Request, document_id: Id, principal: OrgDep, c: ContainerDep, body: MarkPaidIn | None = None
) -> Response:
    """Record payment received outside Fiscus, optionally with its reference. Paying a proforma converts
    it; the invoice is returned."""
    paid = svc.mark_paid(
        c.db,
        c.clock,
        principal.organization_id,
        document_id,
        reference=body.reference if body else None,
        actor=principal.actor,
    )
    return _act(request, c, principal, paid)


@api.post("/documents/{document_id}/convert", response_model=DocumentOut, openapi_extra=IDEMPOTENCY_HEADER)
def convert(request: Request, document_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """Turn an issued proforma into a final invoice with its own number; returns the invoice."""
    invoice = svc.convert_proforma(
        c.db, c.clock, principal.organization_id, document_id, actor=principal.actor
    )
    return _act(request, c, principal, invoice)


class DocumentEmailOut(BaseModel):
    object: Literal["document_email"] = "document_email"
    document_id: int
    status: Literal["queued", "sending", "sent", "failed", "bounced", "suppressed", "expired"] = Field(
        description="the outbox message's status: `queued` (sent by the worker), `suppressed` (the "
        "address bounced before), or, for a replayed request, whatever the message has reached since"
    )


@api.post(
    "/documents/{document_id}/resend",
    response_model=DocumentEmailOut,
    status_code=202,
    openapi_extra=IDEMPOTENCY_HEADER,
)
def resend(document_id: Id, principal: OrgDep, c: ContainerDep, request: Request) -> Response:
    """Queue the document's email (issued invoice, proforma or credit note) to the customer's current
    address again, as the console's resend does (the same service, the `email_resent` audit row).
    Each call is a new message; with an `Idempotency-Key` a retry is the same message, never a second
    one. 409 `invalid_state` for a draft, a customer without an e-mail address, or an email the
    organisation switched off."""
    key = request.headers.get("idempotency-key")
    if key is None:
        request_key = secrets.token_hex(16)
    else:
        own = f"{principal.kind.value}:{principal.credential_id}:{key}"
        request_key = "api-" + hashlib.sha256(own.encode()).hexdigest()[:40]
    status = document_emails.resend_document_email(
        c.db, c.clock, principal.organization_id, document_id, request_key=request_key, actor=principal.actor
    )
    out = DocumentEmailOut(document_id=document_id, status=status)
    return Response(out.model_dump_json(), status_code=202, media_type="application/json")


@api.get("/documents/{document_id}/audit_events", response_model=ListOut[AuditEventOut])
@on_loop
def document_audit(document_id: Id, request: Request, principal: OrgDep, c: ContainerDep) -> Response:
    scope = Scope(principal.organization_id)
    with c.db.read() as conn:
        get_document(conn, scope, document_id, lines=False)
        events = audit_events(conn, scope, "document", document_id)
    data = [{"object": "audit_event", **e} for e in events]
    return p.json_response(envelope(request, data, False))
