"""Compatibility dialect of seed 002: the invoice list of a Bulgarian VPS host's Laravel API
(`GET /v1/invoices?page=N`, an API resource collection over Eloquent's `paginate(30)`), so that the
host's existing clients keep working against Fiscus. See docs/dialects/vps.md.

Framework behaviour reproduced is Laravel 11 (framework 11.x, Sanctum 4, PHP 8.3), from its source:

* `PaginationServiceProvider`'s page resolver: `page` must pass `FILTER_VALIDATE_INT` (surrounding
  whitespace and a sign allowed, no leading zeros, at most PHP_INT_MAX) and be >= 1, otherwise page 1.
  PHP's query parser keeps the last `page=`; `page[]=…` makes it an array, which also means page 1.
* `LengthAwarePaginator::toArray`, `linkCollection`, `url` and `UrlWindow` (onEachSide = 3), wrapped
  by `PaginatedResourceResponse::paginationInformation` into `links` and `meta`. Only `page` is kept
  in the URLs (no `withQueryString()`). A page past the last is answered with empty `data`.
* `JsonResponse` encodes with PHP's default `json_encode` flags: `/` as `\\/`, non-ASCII as `\\uXXXX`.
* Errors as the exception handler renders them for `Accept: application/json` (the document makes that
  header required): 401 `Unauthenticated.`, 404 `No query results for model [App\\Models\\Invoice] <id>`,
  unknown route, 405, 429 `Too Many Attempts.`, 500 `Server Error`. A request without that Accept
  header would be redirected to a login route by Laravel; we answer JSON regardless.

Uncertain: the real app's lang file. Laravel ships `&laquo; Previous` / `Next &raquo;`; the document
shows `« Previous` / `Next »`, which we follow. The host's ordering is assumed to be newest id first.

The host's invoice has no payment or PDF fields; payments show only through the documents they make (a
paid proforma is followed by its final invoice, `type` "original", with the proforma's `order_ids`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Final
from urllib.parse import parse_qsl, quote
from zoneinfo import ZoneInfo

import msgspec
from fastapi import APIRouter, Request, Response

from fiscus.api.deps import container, on_loop
from fiscus.api.dialects.common import (
    BILLED_TYPES,
    billed_documents,
    bounded_int,
    caller,
    public_base,
    scope_of,
)
from fiscus.api.errors import ApiError
from fiscus.api.presenters import RenderedCache, cached_items
from fiscus.config import Settings
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.domain.money import Currency
from fiscus.queries.documents import (
    DocumentView,
    Stamp,
    count_documents,
    load_documents,
    offset_document_stamps,
)

log = logging.getLogger(__name__)

LIST_PATH: Final = "/v1/invoices"
BASE_PATH: Final = LIST_PATH
"""The paths this dialect owns, errors included (`server_error`)."""
PER_PAGE: Final = 30
ON_EACH_SIDE: Final = 3
PHP_INT_MAX: Final = 2**63 - 1
PHP_INT_DIGITS: Final = len(str(PHP_INT_MAX))
MODEL: Final = "App\\Models\\Invoice"
PREVIOUS_LABEL: Final = "« Previous"
NEXT_LABEL: Final = "Next »"
ALLOWED: Final = ("GET", "HEAD")

TYPE_NAMES: Final = {DocumentType.PROFORMA: "proform", DocumentType.INVOICE: "original"}
"""The dialect's `type`; credit notes are not part of this API."""

_ENCODER: Final = msgspec.json.Encoder(decimal_format="number")
_NON_ASCII: Final = re.compile(r"[^\x00-\x7f]")
_DECIMAL_INT: Final = re.compile(r"[+-]?(0|[1-9][0-9]*)")


# --- PHP and Laravel primitives -------------------------------------------------------------------


def php_json(value: Any) -> bytes:
    """`json_encode($value)` with PHP's default flags, which Laravel's JsonResponse uses."""
    text = _ENCODER.encode(value).decode().replace("/", "\\/")
    return _NON_ASCII.sub(_escape_char, text).encode("ascii")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def filter_validate_int(value: str) -> int | None:
    """PHP's `filter_var($value, FILTER_VALIDATE_INT)`: None where PHP returns false."""
    stripped = value.strip(" \t\n\r\v")
    if not _DECIMAL_INT.fullmatch(stripped):
        return None
    number = bounded_int(stripped, max_digits=PHP_INT_DIGITS)
    return number if number is not None and -PHP_INT_MAX - 1 <= number <= PHP_INT_MAX else None


def resolve_page(query_string: str) -> int:
    """The current page as Laravel's resolver sees `page` after PHP has parsed the query string."""
    page: str | None = None
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        if key == "page":
            page = value
        elif key.startswith("page[") and "]" in key:
            page = None
    number = filter_validate_int(page) if page is not None else None
    return number if number is not None and number >= 1 else 1


def php_amount(minor: int, cur: Currency) -> int | Decimal:
    """A money figure the way PHP's json_encode writes the host's amounts: `15`, `18`, `15.5`.

    Exact (built from the integer minor units), in plain notation, without trailing zeros."""
    scale: int = 10**cur.exponent
    whole, fraction = divmod(abs(minor), scale)
    if fraction == 0:
        return -whole if minor < 0 else whole
    digits = str(fraction).rjust(cur.exponent, "0").rstrip("0")
    return Decimal(f"{'-' if minor < 0 else ''}{whole}.{digits}")


def laravel_timestamp(day: date, zone: str) -> str:
    """Carbon's JSON form of midnight of `day` in the issuer's zone: `2024-09-24T21:00:00.000000Z`."""
    midnight = datetime.combine(day, time(0), tzinfo=ZoneInfo(zone)).astimezone(UTC)
    return midnight.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class LengthAwarePage:
    """Illuminate\\Pagination\\LengthAwarePaginator, as far as its array form goes."""

    path: str
    current_page: int
    total: int
    count: int
    per_page: int = PER_PAGE

    @property
    def last_page(self) -> int:
        return max(-(-self.total // self.per_page), 1)

    def url(self, page: int) -> str:
        return f"{self.path}?page={max(page, 1)}"

    @property
    def first_item(self) -> int:
        """1-based position of the page's first invoice; 0 on an empty page (the seed shows an integer,
        so never null: positions start at 1)."""
        return (self.current_page - 1) * self.per_page + 1 if self.count else 0

    @property
    def last_item(self) -> int:
        return self.first_item + self.count - 1 if self.count else 0

    @property
    def previous_page_url(self) -> str | None:
        return self.url(self.current_page - 1) if self.current_page > 1 else None

    @property
    def next_page_url(self) -> str | None:
        return self.url(self.current_page + 1) if self.current_page < self.last_page else None

    def _range(self, start: int, end: int) -> list[int]:
        return list(range(start, end + 1))

    def elements(self) -> list[list[int] | None]:
        """UrlWindow::make plus elements(): runs of page numbers, None standing for a `...` gap."""
        last, current, window = self.last_page, self.current_page, ON_EACH_SIDE + 4
        if last < ON_EACH_SIDE * 2 + 8:
            return [self._range(1, last)]
        if current <= window:
            return [self._range(1, window + ON_EACH_SIDE), None, self._range(last - 1, last)]
        if current > last - window:
            return [self._range(1, 2), None, self._range(last - (window + ON_EACH_SIDE - 1), last)]
        return [
            self._range(1, 2),
            None,
            self._range(current - ON_EACH_SIDE, current + ON_EACH_SIDE),
            None,
            self._range(last - 1, last),
        ]

    def link_collection(self) -> list[dict[str, Any]]:
        links: list[dict[str, Any]] = [
            {"url": self.previous_page_url, "label": PREVIOUS_LABEL, "active": False}
        ]
        for run in self.elements():
            if run is None:
                links.append({"url": None, "label": "...", "active": False})
                continue
            links.extend({"url": self.url(p), "label": str(p), "active": p == self.current_page} for p in run)
        links.append({"url": self.next_page_url, "label": NEXT_LABEL, "active": False})
        return links

    def pagination_information(self) -> dict[str, Any]:
        """PaginatedResourceResponse: `links` from the *_page_url keys, `meta` from the rest."""
        return {
            "links": {
                "first": self.url(1),
                "last": self.url(self.last_page),
                "prev": self.previous_page_url,
                "next": self.next_page_url,
            },
            "meta": {
                "current_page": self.current_page,
                "from": self.first_item,
                "last_page": self.last_page,
                "links": self.link_collection(),
                "path": self.path,
                "per_page": self.per_page,
                "to": self.last_item,
                "total": self.total,
            },
        }


def laravel_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(php_json(body), status_code=status, media_type="application/json", headers=headers)


def laravel_message(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return laravel_json({"message": message}, status, headers)


def refusal(error: ApiError) -> Response:
    """The engine's authentication refusal in the shape Laravel's handler gives it."""
    if error.status == 401:
        return laravel_message(401, "Unauthenticated.")
    if error.status == 429:
        retry = {k: v for k, v in error.headers.items() if k.lower() == "retry-after"}
        return laravel_message(429, "Too Many Attempts.", retry)
    return laravel_message(error.status, error.detail)


def raw_path(request: Request) -> str:
    """Laravel's `$request->path()`: the still-encoded path without its leading slash."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else quote(request.url.path)
    return path.split("?", 1)[0].strip("/") or "/"


# --- presenting invoices --------------------------------------------------------------------------


def present(doc: DocumentView) -> dict[str, Any]:
    """One invoice of the dialect (issued documents only). `created_at` is the document date (not the
    row's insert time) at midnight in the issuer's zone, frozen in the seller snapshot at issue."""
    issue_date = doc.issue_date or doc.created_at.date()
    zone = str(doc.seller["timezone"])
    return {
        "id": doc.id,
        "invoice_number": f"{doc.sequence or 0:010d}",
        "created_at": laravel_timestamp(issue_date, zone),
        "amount": php_amount(doc.subtotal_minor, doc.currency),
        "amount_with_vat": php_amount(doc.total_minor, doc.currency),
        "type": TYPE_NAMES[doc.type],
        "order_ids": list(doc.order_ids),
    }


def listed(doc: DocumentView) -> bool:
    return doc.type in BILLED_TYPES and doc.status is not DocumentStatus.DRAFT and doc.number is not None


# --- OpenAPI ----------------------------------------------------------------------------------------

_URL: Final = {"type": "string", "format": "uri", "example": "https://api.vpsbg.eu/v1/invoices?page=1"}
_NULLABLE_URL: Final = {"anyOf": [_URL, {"type": "null"}]}
_POSITION: Final = {"type": "integer", "minimum": 0, "description": "1-based position; 0 on an empty page"}
INVOICE_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["id", "invoice_number", "created_at", "amount", "amount_with_vat", "type", "order_ids"],
    "properties": {
        "id": {"type": "integer", "example": 8552},
        "invoice_number": {
            "type": "string",
            "pattern": "^[0-9]{10,}$",
            "description": "Gapless sequence of the document's series (proformas and invoices apart), "
            "zero-padded to 10 digits.",
            "example": "0000007513",
        },
        "created_at": {
            "type": "string",
            "format": "date-time",
            "description": "Document date at midnight in the issuer's zone, in UTC, microseconds.",
            "example": "2024-09-24T21:00:00.000000Z",
        },
        "amount": {"type": "number", "description": "Net (subtotal), exact.", "example": 15},
        "amount_with_vat": {"type": "number", "description": "Gross (total), exact.", "example": 18},
        "type": {"type": "string", "enum": ["proform", "original"], "example": "proform"},
        "order_ids": {"type": "array", "items": {"type": "integer"}},
    },
}
PAGE_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["data", "links", "meta"],
    "properties": {
        "data": {"type": "array", "items": INVOICE_SCHEMA},
        "links": {
            "type": "object",
            "required": ["first", "last", "prev", "next"],
            "properties": {"first": _URL, "last": _URL, "prev": _NULLABLE_URL, "next": _NULLABLE_URL},
        },
        "meta": {
            "type": "object",
            "required": ["current_page", "from", "last_page", "links", "path", "per_page", "to", "total"],
            "properties": {
                "current_page": {"type": "integer"},
                "from": _POSITION,
                "last_page": {"type": "integer", "minimum": 1},
                "links": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["url", "label", "active"],
                        "properties": {
                            "url": _NULLABLE_URL,
                            "label": {"type": "string"},
                            "active": {"type": "boolean"},
                        },
                    },
                },
                "path": {"type": "string", "format": "uri"},
                "per_page": {"type": "integer", "example": PER_PAGE},
                "to": _POSITION,
                "total": {"type": "integer"},
            },
        },
    },
}
MESSAGE_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["message"],
    "properties": {"message": {"type": "string"}},
}


def _json(description: str, schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"description": description, "content": {"application/json": content}}


_ACCEPT_PARAM: Final = {
    "name": "Accept",
    "in": "header",
    "required": False,
    "description": "The host's document requires `application/json`; Fiscus answers JSON either way.",
    "schema": {"type": "string", "default": "application/json"},
}
_UNAUTHENTICATED: Final = _json(
    "Missing, unknown or revoked credential.", MESSAGE_SCHEMA, {"message": "Unauthenticated."}
)
_TOO_MANY: Final = _json("Rate limit of the credential.", MESSAGE_SCHEMA, {"message": "Too Many Attempts."})
_SERVER_ERROR: Final = _json("Server Error", MESSAGE_SCHEMA, {"message": "Server Error"})


# --- routes -----------------------------------------------------------------------------------------


def server_error() -> Response:
    """Laravel's rendering of any unexpected failure: `{"message": "Server Error"}`, no details (those
    are in Fiscus's log). Installed for this dialect's paths by `fiscus.api.errors.install`."""
    return laravel_message(500, "Server Error")


def router(settings: Settings) -> APIRouter:
    prefix = settings.dialect_vps_prefix
    api = APIRouter(prefix=prefix, tags=["compatibility: vps"])

    def list_invoices(request: Request) -> Response:
        principal = caller(request)
        if isinstance(principal, ApiError):
            return refusal(principal)
        scope = scope_of(principal)
        page = resolve_page(request.url.query)
        path = f"{public_base(request)}{prefix}{LIST_PATH}"

        filters = billed_documents(issued_only=True)
        items: list[bytes] = []
        cache: RenderedCache = request.app.state.rendered
        with container(request).db.read() as conn:
            total = count_documents(conn, scope, filters)
            offset = (page - 1) * PER_PAGE
            if offset < total:
                stamps = offset_document_stamps(
                    conn, scope, filters, offset=offset, limit=PER_PAGE, total=total
                )

                def render(ids: list[int]) -> list[tuple[int, Stamp, bytes]]:
                    docs = load_documents(conn, scope, ids, lines=False)
                    return [(d.id, d.stamp, php_json(present(d))) for d in docs]

                items = cached_items(cache, stamps, "vps", render)
        paginator = LengthAwarePage(path, page, total, len(items))
        rest = php_json(paginator.pagination_information())
        body = b"".join((b'{"data":[', b",".join(items), b"],", rest[1:]))
        return Response(body, media_type="application/json")

    def show_invoice(request: Request) -> Response:
        principal = caller(request)
        if isinstance(principal, ApiError):
            return refusal(principal)
        scope = scope_of(principal)
        raw_id = str(request.path_params["invoice"])
        not_found = laravel_message(404, f"No query results for model [{MODEL}] {raw_id}")
        invoice_id = bounded_int(raw_id, max_digits=PHP_INT_DIGITS) if raw_id.isascii() else None
        if invoice_id is None or not raw_id.isdigit() or invoice_id > PHP_INT_MAX:
            return not_found

        with container(request).db.read() as conn:
            found = [d for d in load_documents(conn, scope, [invoice_id], lines=False) if listed(d)]
        if not found:
            return not_found
        return laravel_json({"data": present(found[0])})

    def method_not_allowed(request: Request) -> Response:
        path = raw_path(request)
        if request.method == "OPTIONS":
            return Response(status_code=200, headers={"Allow": ",".join(ALLOWED)})
        return laravel_message(
            405,
            f"The {request.method} method is not supported for route {path}. "
            f"Supported methods: {', '.join(ALLOWED)}.",
            {"Allow": ", ".join(ALLOWED)},
        )

    def route_not_found(request: Request) -> Response:
        return laravel_message(404, f"The route {raw_path(request)} could not be found.")

    api.add_api_route(
        LIST_PATH,
        on_loop(list_invoices),
        methods=["GET"],
        summary="List invoices",
        operation_id="vps_list_invoices",
        description=f"Issued proformas and invoices of the caller, newest first, {PER_PAGE} a page "
        "(Laravel LengthAwarePaginator). Credentials: `Authorization: Bearer <API key or customer token>`.",
        response_class=Response,
        response_model=None,
        responses={
            200: _json("List of all invoices.", PAGE_SCHEMA),
            401: _UNAUTHENTICATED,
            429: _TOO_MANY,
            500: _SERVER_ERROR,
        },
        openapi_extra={
            "parameters": [
                {
                    "name": "page",
                    "in": "query",
                    "required": False,
                    "description": "Page number, an integer in the host's document. No value is refused: "
                    "anything but an integer >= 1 means page 1, as Laravel's page resolver does.",
                    "schema": {"default": 1, "examples": [1, 2]},
                },
                _ACCEPT_PARAM,
            ]
        },
    )
    api.add_api_route(
        LIST_PATH + "/{invoice}",
        on_loop(show_invoice),
        methods=["GET"],
        summary="Get an invoice",
        operation_id="vps_get_invoice",
        description="One invoice as an API resource, wrapped in `data`.",
        response_class=Response,
        response_model=None,
        responses={
            200: _json(
                "The invoice.",
                {"type": "object", "required": ["data"], "properties": {"data": INVOICE_SCHEMA}},
            ),
            401: _UNAUTHENTICATED,
            404: _json(
                "Unknown id, another customer's or organisation's, a draft or a credit note.",
                MESSAGE_SCHEMA,
                {"message": f"No query results for model [{MODEL}] 8552"},
            ),
            429: _TOO_MANY,
            500: _SERVER_ERROR,
        },
        openapi_extra={
            "parameters": [
                {"name": "invoice", "in": "path", "required": True, "schema": {"type": "integer"}},
                _ACCEPT_PARAM,
            ]
        },
    )
    for path, handler in ((LIST_PATH, list_invoices), (LIST_PATH + "/{invoice}", show_invoice)):
        api.add_api_route(path, handler, methods=["HEAD"], include_in_schema=False)
        api.add_api_route(
            path,
            method_not_allowed,
            methods=["POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            include_in_schema=False,
        )
    api.add_api_route(
        LIST_PATH + "/{invoice}/{rest:path}",
        route_not_found,
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        include_in_schema=False,
    )
    return api
