"""Compatibility dialect 001: a subscription-payments API's invoices, with cursor pagination.

A business moving from that system keeps its clients: `GET /invoices` (`{"data": {"hasMore", "items"}}`)
and `GET /invoices/{invoiceId}` (`{"data": {...}}`) under the configurable prefix, with the document's
field names, string ids, capitalised statuses, exact JSON-number money and `2023-06-07T17:32:28Z`
instants, rendered from `fiscus.queries.documents` and `fiscus.queries.payments` and nothing else.
See docs/dialects/payments.md.

The source document is a rendered OpenAPI reference page; it names no server framework and shows no
error response. The word "handler" and the regex `pattern` on a *string* `limit` suggest a generated
server behind an OpenAPI request validator (kin-openapi as used by oapi-codegen's Go middleware, or
express-openapi-validator), which refuses a pattern mismatch with 400 before the handler runs; that is
the behaviour reproduced here (as those validators do: the pattern must match the whole value, unknown
query parameters are ignored). Which framework it really is, its exact error body, and which of several
repeated values it reads (here the last, as FastAPI does) are unknown, so every refusal uses one
documented shape, `{"error": {"code", "message", "param"}}`, for 400, 401, 404 and 429 alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

import msgspec
from fastapi import APIRouter, Request, Response
from pydantic import WithJsonSchema
from sqlalchemy import Connection
from typing_extensions import TypedDict

from fiscus.api.deps import container, on_loop
from fiscus.api.dialects.common import (
    billed_documents,
    billed_listed,
    billed_period,
    caller,
    public_base,
    scope_of,
)
from fiscus.api.errors import ApiError
from fiscus.api.presenters import RenderedCache, cached_items, pdf_path
from fiscus.config import Settings
from fiscus.domain.documents import DocumentStatus, LineKind
from fiscus.domain.money import from_minor
from fiscus.queries.documents import DocumentView, LineView, Stamp, load_documents, page_document_stamps
from fiscus.queries.payments import document_payments
from fiscus.queries.scope import Scope

BASE_PATH: Final = "/invoices"
"""The paths this dialect owns, errors included (`server_error`)."""
LIMIT_PATTERN: Final = r"^[0-9][0-9]?$|^100$"
DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100
INSTANT_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
INSTANT_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"

_LIMIT = re.compile(r"[0-9][0-9]?|100")
_ID = re.compile(r"[1-9][0-9]{0,17}")
"""Canonical decimal ids only, short enough for a BIGINT: "007", "+7", "٧" or 10**30 name no invoice."""

Status = Literal["DRAFT", "OPEN", "PAID", "VOID", "UNCOLLECTIBLE"]
STATUS: Final[dict[DocumentStatus, Status]] = {
    DocumentStatus.DRAFT: "DRAFT",
    DocumentStatus.OPEN: "OPEN",
    DocumentStatus.PAID: "PAID",
    DocumentStatus.VOID: "VOID",
    DocumentStatus.UNCOLLECTIBLE: "UNCOLLECTIBLE",
    DocumentStatus.CONVERTED: "VOID",
}
"""A converted proforma is VOID: it can no longer be paid and the invoice that replaced it carries the
debt (and, once paid, the PAID), so a client summing PAID invoices never counts the money twice."""

INVOICE_ITEM_KINDS: Final = frozenset({LineKind.ORDER.value, LineKind.PRORATION.value})
"""Lines that are not a recurring charge of the subscription's period; the rest are subscription items."""

_ENCODER: Final = msgspec.json.Encoder(decimal_format="number")

ExactNumber = Annotated[
    Decimal,
    WithJsonSchema(
        {"type": "number", "description": "exact decimal at the currency's minor-unit scale, e.g. 12.50"}
    ),
]
Instant = Annotated[
    str,
    WithJsonSchema({"type": "string", "pattern": INSTANT_PATTERN, "examples": ["2023-06-07T17:32:28Z"]}),
]


class PaymentsSubscriptionItem(TypedDict):
    id: str
    network: str
    total: ExactNumber
    currency: str
    paymentProfileId: str
    priceId: str | None
    invoiceId: str
    subscriptionId: str | None
    description: str
    createdAt: Instant
    updatedAt: Instant


class PaymentsInvoice(TypedDict):
    id: str
    paymentProfileId: str
    network: str
    pdfUrl: str
    status: Status
    totalPaymentAttempts: int
    subTotal: ExactNumber
    taxTotal: ExactNumber
    currency: str
    invoiceItems: list[str]
    subscriptionItems: list[PaymentsSubscriptionItem]
    lastPaymentAttemptDate: Instant
    periodStart: Instant
    periodEnd: Instant
    createdAt: Instant


class PaymentsInvoiceEnvelope(TypedDict):
    data: PaymentsInvoice


class PaymentsInvoicePage(TypedDict):
    hasMore: bool
    items: list[PaymentsInvoice]


class PaymentsInvoiceList(TypedDict):
    data: PaymentsInvoicePage


class PaymentsErrorDetail(TypedDict):
    code: str
    message: str
    param: str | None


class PaymentsError(TypedDict):
    error: PaymentsErrorDetail


@dataclass(frozen=True, slots=True)
class CollectionFacts:
    """What payments and PDFs know about one invoice, in the dialect's terms. Before any payment attempt
    the profile and network are "" (no payment profile yet: the method that will be charged can change
    without the document's revision, which keys the rendering cache, so it is not shown) and the last
    attempt date is None, shown as the document's `createdAt` (`totalPaymentAttempts` 0 says there was
    none)."""

    payment_profile_id: str = ""
    network: str = ""
    total_payment_attempts: int = 0
    last_payment_attempt_at: datetime | None = None
    pdf_url: str = ""


def collection_facts(
    conn: Connection, scope: Scope, documents: Sequence[DocumentView], base_url: str
) -> dict[int, CollectionFacts]:
    """The payment and PDF fields of a page of invoices, keyed by document id, in two queries
    (`fiscus.queries.payments`): the payment profile (the payment method, by id) and network of the last
    payment attempt, how many attempts were made and when the last one started. `pdfUrl` is the
    document's PDF (an issued one is rendered after issue, or on first request; a draft's is a preview
    rendered on each request), readable with the same credential."""
    found = document_payments(conn, scope, [doc.id for doc in documents])
    out: dict[int, CollectionFacts] = {}
    for doc in documents:
        pdf_url = f"{base_url}{pdf_path(doc.id)}"
        paid = found.get(doc.id)
        if paid is None:
            out[doc.id] = CollectionFacts(pdf_url=pdf_url)
            continue
        out[doc.id] = CollectionFacts(
            payment_profile_id="" if paid.payment_method_id is None else str(paid.payment_method_id),
            network=paid.network or "",
            total_payment_attempts=paid.attempt_count,
            last_payment_attempt_at=paid.last_attempt_at,
            pdf_url=pdf_url,
        )
    return out


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).strftime(INSTANT_FORMAT)


def _subscription_item(doc: DocumentView, line: LineView, facts: CollectionFacts) -> PaymentsSubscriptionItem:
    return {
        "id": str(line.id),
        "network": facts.network,
        "total": from_minor(line.amount_minor, doc.currency),
        "currency": doc.currency.code,
        "paymentProfileId": facts.payment_profile_id,
        "priceId": None if line.price_id is None else str(line.price_id),
        "invoiceId": str(doc.id),
        "subscriptionId": None if doc.subscription_id is None else str(doc.subscription_id),
        "description": line.description,
        "createdAt": _instant(doc.created_at),
        "updatedAt": _instant(doc.updated_at),
    }


def present(doc: DocumentView, facts: CollectionFacts) -> PaymentsInvoice:
    start, end = billed_period(doc)
    return {
        "id": str(doc.id),
        "paymentProfileId": facts.payment_profile_id,
        "network": facts.network,
        "pdfUrl": facts.pdf_url,
        "status": STATUS[doc.status],
        "totalPaymentAttempts": facts.total_payment_attempts,
        "subTotal": from_minor(doc.subtotal_minor, doc.currency),
        "taxTotal": from_minor(doc.tax_minor, doc.currency),
        "currency": doc.currency.code,
        "invoiceItems": [str(line.id) for line in doc.lines if line.kind in INVOICE_ITEM_KINDS],
        "subscriptionItems": [
            _subscription_item(doc, line, facts) for line in doc.lines if line.kind not in INVOICE_ITEM_KINDS
        ],
        "lastPaymentAttemptDate": _instant(facts.last_payment_attempt_at or doc.created_at),
        "periodStart": _instant(start),
        "periodEnd": _instant(end),
        "createdAt": _instant(doc.created_at),
    }


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_ENCODER.encode(body), status_code=status, media_type="application/json", headers=headers)


def _error(
    status: int, code: str, message: str, param: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    body: PaymentsError = {"error": {"code": code, "message": message, "param": param}}
    return _json(body, status, headers)


def server_error() -> Response:
    """A server error in this dialect's one error shape (`code` `internal_error`, no details: those are in
    Fiscus's log). Installed for this dialect's paths by `fiscus.api.errors.install`."""
    return _error(500, "internal_error", "Server Error")


def _refusal(exc: ApiError) -> Response:
    return _error(exc.status, exc.code, exc.detail, None, exc.headers)


def _billed(conn: Connection, scope: Scope, raw_id: str, *, lines: bool = True) -> DocumentView | None:
    """The caller's invoice or proforma with that id, or None (unknown, foreign, a credit note, a draft
    discarded unissued)."""
    if not _ID.fullmatch(raw_id):
        return None
    found = load_documents(conn, scope, [int(raw_id)], lines=lines, products=False)
    return found[0] if found and billed_listed(found[0]) else None


PARAMETERS: Final[dict[str, dict[str, Any]]] = {
    "limit": {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"The maximum number of invoices to return (default {DEFAULT_LIMIT}, maximum "
        f"{MAX_LIMIT}); 0 and 00 match the pattern but are refused with 400",
        "schema": {"type": "string", "pattern": LIMIT_PATTERN},
    },
    "startingAfter": {
        "name": "startingAfter",
        "in": "query",
        "required": False,
        "description": "The ID of the last invoice in the previous page of results. Results will start "
        "after this invoice; an id this credential cannot list is refused with 400",
        "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"},
    },
    "invoiceId": {
        "name": "invoiceId",
        "in": "path",
        "required": True,
        "description": "invoiceId for which the details are supposed to be extracted",
        "schema": {"type": "string"},
    },
}
"""Parameters are read from the request and documented here rather than declared to FastAPI, so that a
bad value gets this dialect's 400, never FastAPI's 422, and the schemas are exactly the document's."""

ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"model": PaymentsError, "description": "A malformed or out-of-range parameter (`param` names it)"},
    401: {"model": PaymentsError, "description": "No credential, or an unknown, revoked or expired one"},
    404: {"model": PaymentsError, "description": "No such invoice for this credential"},
    429: {"model": PaymentsError, "description": "Rate limited; see Retry-After"},
}


def list_invoices(request: Request) -> Response:
    """This endpoint retrieves a list of all invoices, newest first (id descending)."""
    who = caller(request)
    if isinstance(who, ApiError):
        return _refusal(who)
    limit = request.query_params.get("limit")
    starting_after = request.query_params.get("startingAfter")
    size = DEFAULT_LIMIT
    if limit is not None:
        if not _LIMIT.fullmatch(limit):
            return _error(400, "invalid_parameter", f"limit must match {LIMIT_PATTERN}", "limit")
        size = int(limit)
        if size == 0:
            return _error(400, "invalid_parameter", "limit must be between 1 and 100", "limit")
    scope = scope_of(who)
    with container(request).db.read() as conn:
        after: int | None = None
        if starting_after is not None:
            anchor = _billed(conn, scope, starting_after, lines=False)
            if anchor is None:
                return _error(
                    400,
                    "invalid_parameter",
                    f"startingAfter: no invoice with id '{starting_after}'",
                    "startingAfter",
                )
            after = anchor.id
        stamps, has_more = page_document_stamps(
            conn, scope, billed_documents(issued_only=False), limit=size, starting_after=after
        )
        base = public_base(request)

        def render(ids: list[int]) -> list[tuple[int, Stamp, bytes]]:
            docs = load_documents(conn, scope, ids, products=False)
            facts = collection_facts(conn, scope, docs, base)
            return [(d.id, d.stamp, _ENCODER.encode(present(d, facts[d.id]))) for d in docs]

        cache: RenderedCache = request.app.state.rendered
        items = cached_items(cache, stamps, f"payments:{base}", render)
    body = b"".join(
        (b'{"data":{"hasMore":', b"true" if has_more else b"false", b',"items":[', b",".join(items), b"]}}")
    )
    return Response(body, media_type="application/json")


def get_invoice(request: Request) -> Response:
    """This handler get the invoice details based on the invoice ID."""
    who = caller(request)
    if isinstance(who, ApiError):
        return _refusal(who)
    invoice_id = request.path_params["invoiceId"]
    scope = scope_of(who)
    with container(request).db.read() as conn:
        doc = _billed(conn, scope, invoice_id)
        if doc is None:
            return _error(404, "not_found", f"no invoice with id '{invoice_id}'", "invoiceId")
        facts = collection_facts(conn, scope, [doc], public_base(request))
    body: PaymentsInvoiceEnvelope = {"data": present(doc, facts[doc.id])}
    return _json(body)


def router(settings: Settings) -> APIRouter:
    api = APIRouter(prefix=settings.dialect_payments_prefix, tags=["compatibility: payments"])
    api.add_api_route(
        BASE_PATH,
        on_loop(list_invoices),
        methods=["GET"],
        summary="List all invoices",
        operation_id="payments_list_invoices",
        response_model=PaymentsInvoiceList,
        responses=ERRORS,
        openapi_extra={"parameters": [PARAMETERS["limit"], PARAMETERS["startingAfter"]]},
    )
    api.add_api_route(
        BASE_PATH + "/{invoiceId}",
        on_loop(get_invoice),
        methods=["GET"],
        summary="Get an invoice by id",
        operation_id="payments_get_invoice",
        response_model=PaymentsInvoiceEnvelope,
        responses=ERRORS,
        openapi_extra={"parameters": [PARAMETERS["invoiceId"]]},
    )
    return api
