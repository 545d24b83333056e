"""`/email/unsubscribe/{org}/{token}`: the `List-Unsubscribe` link of reminder emails. GET shows a
button (a link scanner following the link must not unsubscribe anyone); POST, from that button or from
a mail client's one-click (RFC 8058), stops the organisation's reminders to that address. Invoices,
credit notes and receipts still go: they are owed to the customer. The signed token is the only key."""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request, Response

from fiscus.bootstrap import Container
from fiscus.services.emails.compose import address_of_token
from fiscus.services.emails.suppressions import unsubscribe
from fiscus.services.payment_links import link_secret
from fiscus.web.rendering import asset, csp_hash, html, security_headers, templates

router = APIRouter(include_in_schema=False)
_TEMPLATES = templates("fiscus.web.email")
CSS: Final = asset("pay.css")

TEXT: Final = {
    "ask": (
        "Stop payment reminders?",
        "Invoices and receipts will still be sent to {address}.",
        "Unsubscribe",
    ),
    "done": ("You are unsubscribed", "{address} will get no more reminders from this sender.", ""),
    "bad": ("Link not valid", "This unsubscribe link is not valid.", ""),
}


def _page(which: str, address: str = "", status: int = 200) -> Response:
    heading, text, confirm = TEXT[which]
    context = {
        "lang": "en",
        "title": heading,
        "heading": heading,
        "text": text.format(address=address),
        "confirm": confirm,
        "css": CSS,
    }
    return html(
        _TEMPLATES,
        "unsubscribe.html",
        context,
        status=status,
        headers=security_headers(style_src=csp_hash(CSS)),
    )


def _address(c: Container, org: str, token: str) -> tuple[int, str] | None:
    """(organisation, address) of a valid link; None for anything else (one answer: not valid)."""
    if not org.isdigit() or len(org) > 18 or len(token) > 700:
        return None
    org_id = int(org)
    address = address_of_token(link_secret(c.db, c.clock, c.settings.secret_key), org_id, token)
    return None if address is None else (org_id, address)


@router.get("/email/unsubscribe/{org}/{token}")
def ask(org: str, token: str, request: Request) -> Response:
    c: Container = request.app.state.container
    found = _address(c, org, token)
    return _page("bad", status=404) if found is None else _page("ask", found[1])


@router.post("/email/unsubscribe/{org}/{token}")
def confirm(org: str, token: str, request: Request) -> Response:
    c: Container = request.app.state.container
    found = _address(c, org, token)
    if found is None:
        return _page("bad", status=404)
    unsubscribe(c.db, c.clock, found[0], found[1])
    return _page("done", found[1])
