from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Query, Request, Response

from fiscus.adapters.db import tables as t
from fiscus.api import presenters as p
from fiscus.api.deps import ContainerDep, OrgDep, ScopeDep, on_loop
from fiscus.api.routes.common import (
    IDEMPOTENCY_HEADER,
    DocumentExpand,
    EndingBefore,
    Limit,
    StartingAfter,
    envelope,
    router,
)
from fiscus.api.routes.subscriptions import present as present_subscription
from fiscus.api.schemas import AuditEventOut, DocumentOut, Id, ListOut, QueryInstant
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.queries.documents import (
    DocumentFilters,
    audit_events,
    get_document,
    load_documents,
    page_document_ids,
)
from fiscus.queries.rows import get_row
from fiscus.queries.scope import Scope
from fiscus.services import documents as svc

api = router("documents")
Status = Annotated[
    DocumentStatus | None, Query(description="draft, open, paid, void, uncollectible, converted")
]
Type = Annotated[DocumentType | None, Query(description="proforma, invoice or credit_note")]

EXPANDABLE = {"lines", "customer", "subscription"}


def _present(c: ContainerDep, scope: Scope, document_id: int, expand: Sequence[str]) -> dict[str, Any]:
    with c.db.read() as conn:
        doc = get_document(conn, scope, document_id)
        out = p.document(doc, lines=True)
        if "customer" in expand:
            out["customer"] = p.customer(
                get_row(conn, Scope(scope.organization_id), t.customers, doc.customer_id, "customer")
            )
        if "subscription" in expand and doc.subscription_id is not None and scope.customer_id is None:
            org_scope = Scope(scope.organization_id)
            row = get_row(conn, org_scope, t.subscriptions, doc.subscription_id, "subscription")
            out["subscription"] = present_subscription(conn, org_scope, row, [])
    return out


@api.get("/documents", response_model=ListOut[DocumentOut])
@on_loop
def list_documents(
    request: Request,
    scope: ScopeDep,
    c: ContainerDep,
    limit: Limit = 10,
    starting_after: StartingAfter = None,
    ending_before: EndingBefore = None,
    status: Status = None,
    type: Type = None,
    customer_id: Annotated[Id | None, Query()] = None,
    subscription_id: Annotated[Id | None, Query()] = None,
    period_start_gte: Annotated[QueryInstant | None, Query(alias="period_start[gte]")] = None,
    period_start_lt: Annotated[QueryInstant | None, Query(alias="period_start[lt]")] = None,
    created_gte: Annotated[QueryInstant | None, Query(alias="created[gte]")] = None,
    created_lt: Annotated[QueryInstant | None, Query(alias="created[lt]")] = None,
    expand: DocumentExpand = None,
) -> Response:
    """Newest first. Lines are included with `expand[]=lines`. A customer token sees its own only."""
    filters = DocumentFilters(
        status=status,
        type=type,
        customer_id=customer_id,
        subscription_id=subscription_id,
        period_start_gte=period_start_gte,
        period_start_lt=period_start_lt,
        created_gte=created_gte,
        created_lt=created_lt,
    )
    lines = "lines" in (expand or [])
    with c.db.read() as conn:
        page = page_document_ids(
            conn, scope, filters, limit=limit, starting_after=starting_after, ending_before=ending_before
        )
        docs = load_documents(conn, scope, page.ids, lines=lines, products=False)
    return p.json_response(envelope(request, [p.document(d, lines=lines) for d in docs], page.has_more))


@api.get("/documents/{document_id}", response_model=DocumentOut)
@on_loop
def get_document_route(
    document_id: Id, scope: ScopeDep, c: ContainerDep, expand: DocumentExpand = None
) -> Response:
    return p.json_response(_present(c, scope, document_id, expand or []))


def _act(c: ContainerDep, principal: OrgDep, document_id: int) -> Response:
    return p.json_response(_present(c, Scope(principal.organization_id), document_id, []))


@api.post("/documents/{document_id}/issue", response_model=DocumentOut, openapi_extra=IDEMPOTENCY_HEADER)
def issue(document_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """Give a draft its legal number (gapless per series) and freeze seller and buyer."""
    svc.issue_document(c.db, c.clock, principal.organization_id, document_id, actor=principal.actor)
    return _act(c, principal, document_id)


@api.post("/documents/{document_id}/void", response_model=DocumentOut, openapi_extra=IDEMPOTENCY_HEADER)
def void(document_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    svc.void_document(c.db, c.clock, principal.organization_id, document_id, actor=principal.actor)
    return _act(c, principal, document_id)


@api.post(
    "/documents/{document_id}/mark_uncollectible",
    response_model=DocumentOut,
    openapi_extra=IDEMPOTENCY_HEADER,
)
def mark_uncollectible(document_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    svc.mark_uncollectible(c.db, c.clock, principal.organization_id, document_id, actor=principal.actor)
    return _act(c, principal, document_id)


@api.post("/documents/{document_id}/mark_paid", response_model=DocumentOut, openapi_extra=IDEMPOTENCY_HEADER)
def mark_paid(document_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """Record payment received outside Fiscus. Paying a proforma converts it; the invoice is returned."""
    paid = svc.mark_paid(c.db, c.clock, principal.organization_id, document_id, actor=principal.actor)
    return _act(c, principal, paid)


@api.post("/documents/{document_id}/convert", response_model=DocumentOut, openapi_extra=IDEMPOTENCY_HEADER)
def convert(document_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """Turn an issued proforma into a final invoice with its own number; returns the invoice."""
    invoice = svc.convert_proforma(
        c.db, c.clock, principal.organization_id, document_id, actor=principal.actor
    )
    return _act(c, principal, invoice)


@api.get("/documents/{document_id}/audit_events", response_model=ListOut[AuditEventOut])
@on_loop
def document_audit(document_id: Id, request: Request, principal: OrgDep, c: ContainerDep) -> Response:
    scope = Scope(principal.organization_id)
    with c.db.read() as conn:
        get_document(conn, scope, document_id, lines=False)
        events = audit_events(conn, scope, "document", document_id)
    data = [{"object": "audit_event", **e} for e in events]
    return p.json_response(envelope(request, data, False))
