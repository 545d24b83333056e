"""What the three compatibility dialects share: who is calling, which documents they may see, and the
absolute base URL their links are built from. Each dialect is a thin presenter over
`fiscus.queries.documents` and `fiscus.queries.payments`; none of them computes anything."""

from __future__ import annotations

import functools
from collections.abc import Callable

from fastapi import Request

from fiscus.api.deps import container, resolve_principal
from fiscus.api.errors import ApiError
from fiscus.domain.documents import DocumentType
from fiscus.queries.documents import DocumentFilters, DocumentView
from fiscus.queries.scope import Scope
from fiscus.services.access import Principal
from fiscus.services.payment_links import link_secret, payment_url

BILLED_TYPES = (DocumentType.INVOICE, DocumentType.PROFORMA)

PayLink = Callable[[DocumentView], str]
"""A document → its hosted payment page (`transaction_url`)."""


def caller(request: Request) -> Principal | ApiError:
    """The authenticated caller, or the refusal for the dialect to render in its own error shape."""
    try:
        return resolve_principal(request)
    except ApiError as exc:
        return exc


def scope_of(principal: Principal) -> Scope:
    return Scope(principal.organization_id, principal.customer_id)


def public_base(request: Request) -> str:
    """scheme://host[:port] for absolute URLs: FISCUS_PUBLIC_URL when set, else the request's own host,
    honouring X-Forwarded-Proto and X-Forwarded-Host from a reverse proxy."""
    configured = container(request).settings.public_url
    if configured:
        return configured.rstrip("/")
    headers = request.headers
    proto = headers.get("x-forwarded-proto", request.url.scheme).split(",")[0].strip()
    host = headers.get("x-forwarded-host", headers.get("host", request.url.netloc)).split(",")[0].strip()
    return f"{proto}://{host}"


def billed_documents(*, issued_only: bool) -> DocumentFilters:
    return DocumentFilters(types=BILLED_TYPES, issued_only=issued_only)


def pay_links(request: Request) -> PayLink | None:
    """Signed hosted payment page URLs on this server's public base, or None when payments are not
    configured (there is nowhere to pay). The signing key is read (made, on first use) only when a
    link is actually built, so a page served from the rendering cache costs no query."""
    c = container(request)
    if c.payments is None:
        return None
    base = public_base(request)

    @functools.cache
    def secret() -> bytes:
        return link_secret(c.db, c.clock, c.settings.secret_key)

    def link(doc: DocumentView) -> str:
        return payment_url(base, secret(), doc.organization_id, doc.id)

    return link
