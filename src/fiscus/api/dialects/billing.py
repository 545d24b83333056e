"""Compatibility dialect "billing": the invoice API of an integrations marketplace built with Django
REST framework, served exactly as its document shows (seed 000, `GET /v1/billing/invoices/`), so its
clients move to Fiscus unchanged.

What DRF itself decides is reproduced from DRF 3.14 (Django 4.2/5.x), whose 404 wording is
`"Not found."` (DRF 3.15 passes Django's message through and says "No Invoice matches the given
query."; the brief asks for "Not found."):

* the view is a `ReadOnlyModelViewSet` under a `DefaultRouter`: list and retrieve answer GET and
  HEAD; OPTIONS answers `SimpleMetadata`; POST/PUT/PATCH/DELETE/TRACE are 405
  `Method "X" not allowed.`; every response carries `Allow: GET, HEAD, OPTIONS`;
* Django's `CommonMiddleware` (APPEND_SLASH) answers a path without its trailing slash with a 301 to
  the path with it (relative Location, query kept);
* content negotiation (`JSONRenderer` only), then authentication, then the handler, in DRF's order:
  an unknown format suffix or `?format=` is 404, an Accept nothing satisfies is 406, then 401, then
  the page or the object;
* authentication is DRF's `TokenAuthentication` parsing with keyword `Bearer` and the realm header of
  a `Bearer realm="api"` authenticator; the credential itself is Fiscus's (`fiscus.api.deps`);
* `PageNumberPagination` with `page_size_query_param = "pageSize"`, PAGE_SIZE 20, max 100: Django's
  `Paginator` validation of `page` (`int()` of the last value, `last`, empty → 1) and DRF's
  `_positive_int` fallback for `pageSize`; links are `build_absolute_uri()` passed through DRF's
  `replace_query_param`/`remove_query_param`, which sort the query parameters.

Uncertain: whether the marketplace enabled the browsable API (assumed not: JSON only) and which
parsers it lists in OPTIONS (assumed DRF's defaults). The payment fields (card, captures, refunds,
payment errors, the hosted payment page) all come from `payment_facts`, over `fiscus.queries.payments`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal
from urllib import parse

import msgspec
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, WithJsonSchema
from sqlalchemy import Connection

from fiscus.api.deps import container, on_loop
from fiscus.api.dialects.common import (
    BILLED_TYPES,
    PayLink,
    billed_documents,
    caller,
    pay_links,
    public_base,
    scope_of,
)
from fiscus.api.errors import ApiError
from fiscus.api.presenters import RenderedCache, cached_items
from fiscus.config import Settings
from fiscus.domain.documents import DocumentStatus
from fiscus.domain.money import Currency, from_minor
from fiscus.queries.documents import (
    DocumentView,
    LineView,
    Stamp,
    count_documents,
    load_documents,
    offset_document_stamps,
)
from fiscus.queries.payments import document_payments
from fiscus.queries.scope import Scope
from fiscus.services.access import Principal

LIST_PATH: Final = "/v1/billing/invoices/"
DETAIL_PATH: Final = "/v1/billing/invoices/{id}/"
PAGE_SIZE: Final = 20
MAX_PAGE_SIZE: Final = 100

STATUS: Final[Mapping[DocumentStatus, str]] = {
    DocumentStatus.DRAFT: "draft",
    DocumentStatus.OPEN: "waiting",
    DocumentStatus.PAID: "paid",
    DocumentStatus.VOID: "canceled",
    DocumentStatus.UNCOLLECTIBLE: "failed",
    DocumentStatus.CONVERTED: "converted",
}
"""The engine's document status → the dialect's invoice status (the document shows "waiting")."""

TIMESTAMP: Final = "%Y-%m-%dT%H:%M:%SZ"
ALLOW: Final = {"Allow": "GET, HEAD, OPTIONS"}
REALM: Final = {"WWW-Authenticate": 'Bearer realm="api"'}
NOT_AUTHENTICATED: Final = "Authentication credentials were not provided."
INVALID_TOKEN: Final = "Invalid token."
NOT_FOUND: Final = "Not found."
INVALID_PAGE: Final = "Invalid page."
NOT_ACCEPTABLE: Final = "Could not satisfy the request Accept header."
RENDERS: Final = ("application/json",)
PARSES: Final = ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")
REFUSED_METHODS: Final = ["POST", "PUT", "PATCH", "DELETE", "TRACE"]
ALL_METHODS: Final = ["GET", "HEAD", "OPTIONS", *REFUSED_METHODS]

_ENCODER: Final = msgspec.json.Encoder(decimal_format="number")
_PK: Final = re.compile(r"[^/.]+")
_PK_WITH_SUFFIX: Final = re.compile(r"([^/.]+)\.([a-z0-9]+)")
_DJANGO_SAFE: Final = "/:@&+$,-_.!~*'()"


@dataclass(frozen=True, slots=True)
class PaymentError:
    """A failed payment attempt on an invoice, as the dialect prints it in `errors`."""

    id: int
    code: str
    description: str
    created_at: datetime
    invoice: int


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    """What payments know about one document, in the dialect's terms. The defaults are a document nobody
    tried to charge: no card, nothing captured or refunded, no failed attempt, no hosted payment page."""

    card: int | None = None
    captured_minor: int = 0
    refunded_minor: int = 0
    captured_at: datetime | None = None
    errors: tuple[PaymentError, ...] = ()
    transaction_url: str | None = None


PAYABLE_AT_LINK: Final = frozenset({DocumentStatus.OPEN, DocumentStatus.UNCOLLECTIBLE, DocumentStatus.PAID})
"""Documents whose `transaction_url` is given: those the customer can still pay, and paid ones, whose page
shows the receipt. Drafts (not issued), void and converted documents (the final invoice carries the
debt) have nothing to pay."""


def payment_facts(
    conn: Connection, scope: Scope, docs: Sequence[DocumentView], pay_link: PayLink | None
) -> dict[int, PaymentFacts]:
    """The payment fields of a page of documents in two queries (`fiscus.queries.payments`):

    * `card`: the payment method (card) of the last attempt, by id;
    * `captured_amount` / `captured_at`: every capture received for the document (payments recorded
      outside Fiscus included) and when the last one settled;
    * `refund_amount`: what was refunded of it;
    * `errors`: the failed attempts, oldest first (`description` is the provider's message);
    * `transaction_url`: the signed hosted payment page, when payments are configured (`pay_link`)
      and the document is payable or paid (`PAYABLE_AT_LINK`)."""
    found = document_payments(conn, scope, [doc.id for doc in docs])
    out: dict[int, PaymentFacts] = {}
    for doc in docs:
        url = None
        if pay_link is not None and doc.type in BILLED_TYPES and doc.status in PAYABLE_AT_LINK:
            url = pay_link(doc)
        paid = found.get(doc.id)
        if paid is None:
            out[doc.id] = PaymentFacts(transaction_url=url)
            continue
        out[doc.id] = PaymentFacts(
            card=paid.payment_method_id,
            captured_minor=paid.captured_minor,
            refunded_minor=paid.refunded_minor,
            captured_at=paid.last_captured_at,
            errors=tuple(
                PaymentError(f.attempt_id, f.code, f.message, f.created_at, f.document_id)
                for f in paid.failures
            ),
            transaction_url=url,
        )
    return out


class _Refusal(Exception):
    """A DRF `APIException`: a status and a `detail`, rendered as `{"detail": ...}`."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


def _json(body: object, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        _ENCODER.encode(body),
        status_code=status,
        media_type="application/json",
        headers={**ALLOW, **(headers or {})},
    )


def _refused(exc: _Refusal) -> Response:
    return _json({"detail": exc.detail}, exc.status, exc.headers)


def _timestamp(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime(TIMESTAMP)


def _money(minor: int, cur: Currency) -> str:
    return str(from_minor(minor, cur))


def _unit_price(value: Decimal, cur: Currency) -> str:
    """The stored unit price, exact: at least the currency's minor digits, more when the price has them
    (a price may be finer than the minor unit; only line amounts are rounded)."""
    exact = value.normalize()
    exponent = exact.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -cur.exponent:
        exact = exact.quantize(cur.quantum)
    return format(exact, "f")


def _count(quantity: Decimal) -> int | Decimal:
    """A whole quantity as an integer; a fractional one as its exact decimal, never rounded."""
    return int(quantity) if quantity == quantity.to_integral_value() else quantity.normalize()


def _integration(line: LineView) -> dict[str, Any] | None:
    if line.product is None:
        return None
    row = line.product.row
    return {
        "id": line.product.id,
        "code": row["code"],
        "name": row["name"],
        "slug": row["slug"],
        "comment": row["comment"],
        "slogan": row["slogan"],
        "type": row["type"],
        "detail": row["detail"],
        "icon": row["icon"],
        "image": row["image"],
        "image_alt": row["image_alt"],
        "disabled": row["disabled"],
        "extra": row["extra"],
        "demo_enabled": row["demo_enabled"],
        "demo_duration": row["demo_duration"],
        "tags": list(row["tags"]),
        "modules": list(row["modules"]),
        "visable": row["visible"],
    }


def _item(doc: DocumentView, line: LineView) -> dict[str, Any]:
    variant = line.variant
    return {
        "id": line.id,
        "integration": _integration(line),
        "variant": None
        if variant is None
        else {"id": variant.id, "name": variant.name, "code": variant.code, "limits": list(variant.limits)},
        "invoice": doc.id,
        "type": None if line.product is None else line.product.row["type"],
        "start_at": _timestamp(line.period_start),
        "end_at": _timestamp(line.period_end),
        "count": _count(line.quantity),
        "price": _unit_price(line.unit_price, doc.currency),
        "amount": _money(line.amount_minor, doc.currency),
        "integration_period": line.subscription_period_id,
    }


def present(doc: DocumentView, facts: PaymentFacts) -> dict[str, Any]:
    """One invoice object, fields in the document's order."""
    cur = doc.currency
    return {
        "id": doc.id,
        "tenant": doc.customer_id,
        "card": facts.card,
        "currency": cur.code,
        "status": STATUS[doc.status],
        "total": _money(doc.total_minor, cur),
        "captured_amount": _money(facts.captured_minor, cur),
        "refund_amount": _money(facts.refunded_minor, cur),
        "captured_at": _timestamp(facts.captured_at),
        "start_at": _timestamp(doc.period_start),
        "end_at": _timestamp(doc.period_end),
        "items": [_item(doc, line) for line in doc.lines],
        "errors": [
            {
                "id": e.id,
                "code": e.code,
                "description": e.description,
                "created_at": _timestamp(e.created_at),
                "invoice": e.invoice,
            }
            for e in facts.errors
        ],
        "transaction_url": facts.transaction_url,
        "created_at": _timestamp(doc.created_at),
    }


def _negotiate(request: Request, suffix: str | None) -> None:
    """DRF's content negotiation, which runs before authentication."""
    fmt = suffix or request.query_params.get("format")
    if fmt and fmt != "json":
        raise _Refusal(404, NOT_FOUND)
    accept = request.headers.get("accept")
    if not accept:
        return
    wanted = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    if not wanted & {"*/*", "application/*", "application/json", ""}:
        raise _Refusal(406, NOT_ACCEPTABLE)


def _authenticate(request: Request) -> Principal:
    """`TokenAuthentication.authenticate` with keyword Bearer, then Fiscus's own credential check."""
    parts = request.headers.get("authorization", "").encode("latin-1").split()
    if not parts or parts[0].lower() != b"bearer":
        raise _Refusal(401, NOT_AUTHENTICATED, REALM)
    if len(parts) == 1:
        raise _Refusal(401, "Invalid token header. No credentials provided.", REALM)
    if len(parts) > 2:
        raise _Refusal(401, "Invalid token header. Token string should not contain spaces.", REALM)
    try:
        parts[1].decode()
    except UnicodeError:
        raise _Refusal(
            401, "Invalid token header. Token string should not contain invalid characters.", REALM
        ) from None
    found = caller(request)
    if isinstance(found, ApiError):
        if found.status == 429:
            wait = int(found.headers.get("Retry-After", "1"))
            unit = "second" if wait == 1 else "seconds"
            raise _Refusal(
                429,
                f"Request was throttled. Expected available in {wait} {unit}.",
                {"Retry-After": str(wait)},
            )
        raise _Refusal(401, INVALID_TOKEN, REALM)
    return found


def _full_path(request: Request) -> str:
    """Django's `request.get_full_path()`: the escaped path and the raw query string."""
    path = parse.quote(request.scope.get("root_path", "") + request.scope["path"], safe=_DJANGO_SAFE)
    query = request.url.query
    return f"{path}?{query}" if query else path


def _replace_query_param(url: str, key: str, value: object) -> str:
    scheme, netloc, path, query, fragment = parse.urlsplit(url)
    params = parse.parse_qs(query, keep_blank_values=True)
    params[key] = [str(value)]
    return parse.urlunsplit(
        (scheme, netloc, path, parse.urlencode(sorted(params.items()), doseq=True), fragment)
    )


def _remove_query_param(url: str, key: str) -> str:
    scheme, netloc, path, query, fragment = parse.urlsplit(url)
    params = parse.parse_qs(query, keep_blank_values=True)
    params.pop(key, None)
    return parse.urlunsplit(
        (scheme, netloc, path, parse.urlencode(sorted(params.items()), doseq=True), fragment)
    )


def _page_size(request: Request) -> int:
    """`get_page_size` with `_positive_int(strict=True, cutoff=MAX_PAGE_SIZE)`; any failure → default."""
    raw = request.query_params.get("pageSize")
    if raw is None:
        return PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        return PAGE_SIZE
    if size <= 0:
        return PAGE_SIZE
    return min(size, MAX_PAGE_SIZE)


def _page_number(request: Request, num_pages: int) -> int:
    """`get_page_number` and Django's `Paginator.validate_number`: every failure is "Invalid page."."""
    raw = request.query_params.get("page") or "1"
    if raw == "last":
        return num_pages
    try:
        number = int(raw)
    except ValueError:
        raise _Refusal(404, INVALID_PAGE) from None
    if number < 1 or number > num_pages:
        raise _Refusal(404, INVALID_PAGE)
    return number


def _drf(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """Render refusals as DRF does; each view runs negotiation and authentication itself."""

    def view(request: Request) -> Response:
        try:
            return handler(request)
        except _Refusal as exc:
            return _refused(exc)

    view.__name__ = handler.__name__
    view.__doc__ = handler.__doc__
    return view


def _list(request: Request) -> Response:
    _negotiate(request, None)
    principal = _authenticate(request)
    if request.method == "OPTIONS":
        return _metadata("Invoice List")
    if request.method not in ("GET", "HEAD"):
        raise _Refusal(405, f'Method "{request.method}" not allowed.')
    page_size = _page_size(request)
    scope = scope_of(principal)
    filters = billed_documents(issued_only=False)
    base = public_base(request)
    links = pay_links(request)
    cache: RenderedCache = request.app.state.rendered
    with container(request).db.read() as conn:
        count = count_documents(conn, scope, filters)
        num_pages = max(1, -(-count // page_size))
        number = _page_number(request, num_pages)
        stamps = offset_document_stamps(
            conn, scope, filters, offset=(number - 1) * page_size, limit=page_size
        )

        def render(ids: list[int]) -> list[tuple[int, Stamp, bytes]]:
            docs = load_documents(conn, scope, ids)
            facts = payment_facts(conn, scope, docs, links)
            return [(doc.id, doc.stamp, _ENCODER.encode(present(doc, facts[doc.id]))) for doc in docs]

        items = cached_items(cache, stamps, f"billing:{base}", render)
    url = base + _full_path(request)
    next_link = _replace_query_param(url, "page", number + 1) if number < num_pages else None
    previous_link = None
    if number == 2:
        previous_link = _remove_query_param(url, "page")
    elif number > 2:
        previous_link = _replace_query_param(url, "page", number - 1)
    body = b"".join(
        (
            b'{"count":',
            str(count).encode(),
            b',"next":',
            _ENCODER.encode(next_link),
            b',"previous":',
            _ENCODER.encode(previous_link),
            b',"results":[',
            b",".join(items),
            b"]}",
        )
    )
    return Response(body, media_type="application/json", headers=ALLOW)


def _retrieve(request: Request, raw_id: str) -> Response:
    pk, suffix = raw_id, None
    if not _PK.fullmatch(raw_id):
        with_suffix = _PK_WITH_SUFFIX.fullmatch(raw_id)
        if with_suffix is None:
            raise _Refusal(404, NOT_FOUND)
        pk, suffix = with_suffix.group(1), with_suffix.group(2)
    _negotiate(request, suffix)
    principal = _authenticate(request)
    if request.method == "OPTIONS":
        return _metadata("Invoice Instance")
    if request.method not in ("GET", "HEAD"):
        raise _Refusal(405, f'Method "{request.method}" not allowed.')
    try:
        ident = int(pk)
    except ValueError:
        raise _Refusal(404, NOT_FOUND) from None
    if not -(2**63) <= ident < 2**63:
        raise _Refusal(404, NOT_FOUND)
    scope = scope_of(principal)
    with container(request).db.read() as conn:
        found = load_documents(conn, scope, [ident])
        found = [d for d in found if d.type in BILLED_TYPES]
        if not found:
            raise _Refusal(404, NOT_FOUND)
        facts = payment_facts(conn, scope, found, pay_links(request))
    return _json(present(found[0], facts[ident]))


def _metadata(name: str) -> Response:
    return _json({"name": name, "description": "", "renders": list(RENDERS), "parses": list(PARSES)})


@_drf
def list_invoices(request: Request) -> Response:
    """Invoices and proformas (credit notes are not listed), drafts included, newest first.

    Paginated by page number (DRF `PageNumberPagination`): `pageSize` defaults to 20 and is capped at
    100; an invalid or out-of-range `page` is 404 `{"detail": "Invalid page."}`."""
    return _list(request)


@_drf
def retrieve_invoice(request: Request) -> Response:
    """One invoice or proforma of the caller; any other id is 404 `{"detail": "Not found."}`."""
    return _retrieve(request, request.path_params["id"])


@_drf
def append_slash(request: Request) -> Response:
    """Django's APPEND_SLASH: a 301 to the same path with a slash, unless it is a format-suffixed
    detail path, which Django routes as it is."""
    raw_id = request.path_params.get("id")
    if raw_id is not None and _PK_WITH_SUFFIX.fullmatch(raw_id):
        return _retrieve(request, raw_id)
    path = _full_path(request)
    bare, sep, query = path.partition("?")
    return Response(status_code=301, headers={"Location": f"{bare}/{sep}{query}"})


_TIMESTAMP_SCHEMA: Final = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
    "examples": ["2023-11-07T05:31:56Z"],
}
_MONEY_SCHEMA: Final = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["4990.00"]}

Timestamp = Annotated[str, WithJsonSchema(_TIMESTAMP_SCHEMA)]
DecimalString = Annotated[str, WithJsonSchema(_MONEY_SCHEMA)]
Link = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "format": "uri", "examples": ["http://api.example.org/accounts/?page=4"]}
    ),
]
Count = Annotated[
    int,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "number"}],
            "description": "The quantity: an integer, or its exact decimal when it is fractional.",
        }
    ),
]


class BillingIntegration(BaseModel):
    id: int
    code: str
    name: str
    slug: str
    comment: str
    slogan: str
    type: str
    detail: str
    icon: str
    image: str
    image_alt: str
    disabled: bool
    extra: Annotated[Any, Field(description="The product's stored JSON, or null.")]
    demo_enabled: bool
    demo_duration: str
    tags: list[str]
    modules: list[str]
    visable: Annotated[bool, Field(description="The product's `visible` flag, in the document's spelling.")]


class BillingVariant(BaseModel):
    id: int
    name: str
    code: str
    limits: list[str]


class BillingInvoiceItem(BaseModel):
    id: int
    integration: BillingIntegration | None
    variant: BillingVariant | None
    invoice: int
    type: str | None
    start_at: Timestamp | None
    end_at: Timestamp | None
    count: Count
    price: Annotated[
        DecimalString, Field(description="Unit price, exact (may be finer than the minor unit).")
    ]
    amount: Annotated[DecimalString, Field(description="Line net amount in the currency's minor units.")]
    integration_period: int | None


class BillingInvoiceError(BaseModel):
    id: int
    code: str
    description: str
    created_at: Timestamp
    invoice: int


class BillingInvoice(BaseModel):
    id: int
    tenant: Annotated[int, Field(description="The customer's id.")]
    card: Annotated[
        int | None,
        Field(description="The payment method (card) the last payment attempt charged; null before any."),
    ]
    currency: Annotated[str, Field(pattern="^[A-Z]{3}$", examples=["KZT"])]
    status: Literal["draft", "waiting", "paid", "canceled", "failed", "converted"]
    total: DecimalString
    captured_amount: Annotated[
        DecimalString, Field(description="Money received for the invoice (captures, and payments recorded).")
    ]
    refund_amount: Annotated[DecimalString, Field(description="Money refunded of it.")]
    captured_at: Annotated[Timestamp | None, Field(description="When the last capture settled.")]
    start_at: Timestamp | None
    end_at: Timestamp | None
    items: list[BillingInvoiceItem]
    errors: Annotated[list[BillingInvoiceError], Field(description="Failed payment attempts, oldest first.")]
    transaction_url: Annotated[
        str | None,
        Field(
            description="The hosted payment page (signed link) of an invoice that can be paid or is paid; "
            "null for drafts, canceled and converted ones, and when payments are not configured."
        ),
    ]
    created_at: Timestamp


class BillingInvoicePage(BaseModel):
    count: int
    next: Link | None
    previous: Link | None
    results: list[BillingInvoice]


class BillingDetail(BaseModel):
    detail: str


def _error(description: str) -> dict[str, Any]:
    return {"model": BillingDetail, "description": description}


_AUTH_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: _error('Missing or bad credentials (`WWW-Authenticate: Bearer realm="api"`).'),
    406: _error("No acceptable media type in Accept (only application/json is rendered)."),
    429: {
        **_error('Rate limited: `{"detail": "Request was throttled. Expected available in N seconds."}`.'),
        "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}},
    },
}
_PAGE_PARAMETERS: Final = [
    {
        "name": "page",
        "in": "query",
        "required": False,
        "description": (
            "A page number within the paginated result set: an integer from 1, or `last`. Not validated "
            "up front, as in DRF: empty or absent is page 1, a repeated parameter counts by its last "
            'value, anything else outside the pages is 404 `{"detail": "Invalid page."}`.'
        ),
        "schema": {"examples": [1, 2, "last"]},
    },
    {
        "name": "pageSize",
        "in": "query",
        "required": False,
        "description": (
            f"Number of results to return per page: an integer, default {PAGE_SIZE}, capped at "
            f"{MAX_PAGE_SIZE}. Never refused, as in DRF: a value that is not a positive integer gives "
            "the default."
        ),
        "schema": {"examples": [PAGE_SIZE, MAX_PAGE_SIZE]},
    },
]


def router(settings: Settings) -> APIRouter:
    r = APIRouter(prefix=settings.dialect_billing_prefix, tags=["compatibility: billing"])
    r.add_api_route(
        LIST_PATH,
        on_loop(list_invoices),
        methods=["GET"],
        response_model=BillingInvoicePage,
        responses={**_AUTH_ERRORS, 404: _error('`{"detail": "Invalid page."}`')},
        openapi_extra={"parameters": _PAGE_PARAMETERS},
        operation_id="billing_invoices_list",
        summary="List invoices (billing dialect)",
    )
    r.add_api_route(
        DETAIL_PATH,
        on_loop(retrieve_invoice),
        methods=["GET"],
        response_model=BillingInvoice,
        responses={**_AUTH_ERRORS, 404: _error('`{"detail": "Not found."}`')},
        openapi_extra={
            "parameters": [
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "description": "A unique integer value identifying this invoice.",
                    "schema": {"type": "integer"},
                }
            ]
        },
        operation_id="billing_invoices_retrieve",
        summary="Retrieve an invoice (billing dialect)",
    )
    others = [m for m in ALL_METHODS if m != "GET"]
    r.add_api_route(LIST_PATH, list_invoices, methods=others, include_in_schema=False)
    r.add_api_route(DETAIL_PATH, retrieve_invoice, methods=others, include_in_schema=False)
    r.add_api_route(LIST_PATH.rstrip("/"), append_slash, methods=ALL_METHODS, include_in_schema=False)
    r.add_api_route(DETAIL_PATH.rstrip("/"), append_slash, methods=ALL_METHODS, include_in_schema=False)
    return r
