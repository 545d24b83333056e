"""Absolute links the API hands out: the public base URL and each document's hosted page.

One function builds the hosted page link for every surface (native `hosted_url`, seed 000
`transaction_url`), so they can never disagree."""

from __future__ import annotations

import functools
from collections.abc import Callable

from fastapi import Request

from fiscus.api.deps import container
from fiscus.queries.documents import DocumentView
from fiscus.services.payment_links import has_hosted_page, link_secret, payment_url

HostedLink = Callable[[DocumentView], "str | None"]
"""A document → its hosted page URL, or None when it has none (a draft, a credit note)."""


def public_base(request: Request) -> str:
    """scheme://host[:port] for absolute URLs: FISCUS_PUBLIC_URL when set, else the request's own host,
    honouring X-Forwarded-Proto and X-Forwarded-Host from a reverse proxy."""
    configured = container(request).settings.public_url
    if configured:
        return configured.rstrip("/")
    headers = request.headers  # the fallbacks only when needed: `request.url` parses the whole URL
    proto = headers.get("x-forwarded-proto")
    if proto is None:
        proto = request.scope.get("scheme", "http")
    host = headers.get("x-forwarded-host")
    if host is None:
        host = headers.get("host")
        if host is None:
            host = request.url.netloc
    return f"{proto.split(',')[0].strip()}://{host.split(',')[0].strip()}"


def hosted_links(request: Request) -> HostedLink:
    """Signed hosted page URLs on this server's public base. Given whether or not a payment gateway is
    configured: without one the page still shows the document, its state and how to pay by transfer.
    The signing key is read (made, on first use) only when a link is built, so a page served from the
    rendering cache costs no query."""
    c = container(request)

    @functools.cache
    def secret() -> bytes:
        return link_secret(c.db, c.clock, c.settings.secret_key)

    @functools.cache
    def base() -> str:  # only when a link is built: a page served from the cache builds none
        return public_base(request)

    def link(doc: DocumentView) -> str | None:
        if not has_hosted_page(doc.type, doc.status):
            return None
        return payment_url(base(), secret(), doc.organization_id, doc.id)

    return link
