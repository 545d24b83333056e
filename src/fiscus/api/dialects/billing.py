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
payment errors, the hosted payment page) all come from `billing_present.payment_facts`; the OpenAPI
models are in `billing_schema`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final
from urllib import parse

import msgspec
from fastapi import APIRouter, Request, Response

from fiscus.api.deps import container, on_loop
from fiscus.api.dialects.billing_present import payment_facts, present
from fiscus.api.dialects.billing_schema import (
    AUTH_ERRORS,
    MAX_PAGE_SIZE,
    PAGE_PARAMETERS,
    PAGE_SIZE,
    BillingInvoice,
    BillingInvoicePage,
    error_response,
)
from fiscus.api.dialects.common import (
    billed_documents,
    billed_listed,
    bounded_int,
    caller,
    hosted_links,
    public_base,
    scope_of,
)
from fiscus.api.errors import ApiError
from fiscus.api.presenters import RenderedCache, cached_items
from fiscus.config import Settings
from fiscus.queries.documents import (
    Stamp,
    count_documents,
    load_documents,
    offset_document_stamps,
)
from fiscus.services.access import Principal

LIST_PATH: Final = "/v1/billing/invoices/"
DETAIL_PATH: Final = "/v1/billing/invoices/{id}/"
BASE_PATH: Final = "/v1/billing/invoices"
"""The paths this dialect owns (with or without the slash), errors included (`server_error`)."""

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
    size = bounded_int(raw)
    if size is None or size <= 0:
        return PAGE_SIZE
    return min(size, MAX_PAGE_SIZE)


def _page_number(request: Request, num_pages: int) -> int:
    """`get_page_number` and Django's `Paginator.validate_number`: every failure is "Invalid page."."""
    raw = request.query_params.get("page") or "1"
    if raw == "last":
        return num_pages
    number = bounded_int(raw)
    if number is None or number < 1 or number > num_pages:
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
    links = hosted_links(request)
    cache: RenderedCache = request.app.state.rendered
    with container(request).db.read() as conn:
        count = count_documents(conn, scope, filters)
        num_pages = max(1, -(-count // page_size))
        number = _page_number(request, num_pages)
        stamps = offset_document_stamps(
            conn, scope, filters, offset=(number - 1) * page_size, limit=page_size, total=count
        )

        def render(ids: list[int]) -> list[tuple[int, Stamp, bytes]]:
            docs = load_documents(conn, scope, ids)
            facts = payment_facts(conn, scope, docs, links, base)
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
    ident = bounded_int(pk)
    if ident is None or not -(2**63) <= ident < 2**63:
        raise _Refusal(404, NOT_FOUND)
    scope = scope_of(principal)
    with container(request).db.read() as conn:
        found = load_documents(conn, scope, [ident])
        found = [d for d in found if billed_listed(d)]
        if not found:
            raise _Refusal(404, NOT_FOUND)
        facts = payment_facts(conn, scope, found, hosted_links(request), public_base(request))
    return _json(present(found[0], facts[ident]))


def server_error() -> Response:
    """DRF's JSON server error view (`rest_framework.exceptions.server_error`, the `handler500` a JSON API
    installs): `{"error": "Server Error (500)"}`. Installed for this dialect's paths by
    `fiscus.api.errors.install`; details only in Fiscus's log."""
    return Response(_ENCODER.encode({"error": "Server Error (500)"}), 500, media_type="application/json")


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


def router(settings: Settings) -> APIRouter:
    r = APIRouter(prefix=settings.dialect_billing_prefix, tags=["compatibility: billing"])
    r.add_api_route(
        LIST_PATH,
        on_loop(list_invoices),
        methods=["GET"],
        response_model=BillingInvoicePage,
        responses={**AUTH_ERRORS, 404: error_response('`{"detail": "Invalid page."}`')},
        openapi_extra={"parameters": PAGE_PARAMETERS},
        operation_id="billing_invoices_list",
        summary="List invoices (billing dialect)",
    )
    r.add_api_route(
        DETAIL_PATH,
        on_loop(retrieve_invoice),
        methods=["GET"],
        response_model=BillingInvoice,
        responses={**AUTH_ERRORS, 404: error_response('`{"detail": "Not found."}`')},
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
