"""The customer's cards (list, add through the gateway's hosted card form as the payment page does,
make default, remove) and billing details (name, email, VAT ID, address: checked by the customers use
case as for the API; issued documents keep what they were issued with)."""

from __future__ import annotations

from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request, Response
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.api.links import public_base
from fiscus.domain.errors import DomainError, NotFoundError, ValidationError
from fiscus.domain.payments import OutcomeUnknown, ProviderError, ProviderUnreachable
from fiscus.services import portal_actions as actions
from fiscus.services.payment_links import link_secret
from fiscus.services.payments.methods import add_card
from fiscus.web.pay.labels import decline_message
from fiscus.web.portal.common import Page, gateway_origin, ident, posted, problem, redirect, signed_in
from fiscus.web.portal.errors import field_errors
from fiscus.web.signing import Signer

router = APIRouter(include_in_schema=False)
FormText = Annotated[str, Form()]
OptionalText = Annotated[str | None, Form()]
CARD_STATE: Final = "portal-card"
FIELDS: Final = ("name", "email", "vat_id", "address_line1", "address_line2", "city", "postal_code")


def _signer(page: Page) -> Signer:
    c = page.c
    return Signer(link_secret(c.db, c.clock, c.settings.secret_key), CARD_STATE)


def _card_label(page: Page, row: dict[str, Any]) -> str:
    brand = str(row["brand"] or "").replace("_", " ").title() or page.t["card"]
    return page.t["card_ending"].format(brand=brand, last4=row["last4"] or "····")


@router.get("/portal/{slug}/payment-methods")
def methods(slug: str, request: Request) -> Response:
    page = signed_in(request, slug)
    if isinstance(page, Response):
        return page
    pm = t.payment_methods.c
    s = page.session
    with page.c.db.read() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                select(t.payment_methods)
                .where(
                    pm.organization_id == s.organization_id,
                    pm.customer_id == s.customer_id,
                    pm.status == "active",
                )
                .order_by(pm.id)
            ).mappings()
        ]
    default_id = page.customer["default_payment_method_id"]
    cards = [
        {
            "id": r["id"],
            "label": _card_label(page, r),
            "expires": page.t["expires"].format(month=f"{r['exp_month'] or 0:02d}", year=r["exp_year"] or ""),
            "default": r["id"] == default_id,
        }
        for r in rows
    ]
    c = page.c
    gateway = c.settings.gateway_public_url or c.settings.gateway_url
    form = None
    if gateway and c.payments is not None:
        form = {
            "action": f"{gateway.rstrip('/')}/hosted/tokenize",
            "return_url": f"{public_base(request)}{page.base}/payment-methods/return",
            "state": _signer(page).issue_state(s.id, c.clock.now()),
        }
    query = request.query_params
    error = page.t["card_error"] if query.get("error") else ""
    # The gateway's code in the customer's words; its own (English) message is never shown.
    reason = decline_message(page.language, query.get("error", ""), "") if error else ""
    context = {
        "title": page.t["methods_heading"],
        "section": "methods",
        "cards": cards,
        "form": form,
        "error": error,
        "error_message": reason,
        "done": page.t.get(f"done_{query.get('done', '')}", ""),
    }
    return page.render("methods.html", context, forms_to=gateway_origin(form["action"]) if form else "")


@router.get("/portal/{slug}/payment-methods/return")
def card_return(slug: str, request: Request) -> Response:
    """Where the gateway sends the browser back with the card's token: attach it to the customer."""
    page = signed_in(request, slug)
    if isinstance(page, Response):
        return page
    c, s, query = page.c, page.session, request.query_params
    back = f"{page.base}/payment-methods"
    if not _signer(page).state_is_valid(s.id, query.get("state", ""), c.clock.now()):
        return problem(page, "csrf_heading", "csrf_text", status=400)
    if query.get("error") or c.payments is None:
        return redirect(f"{back}?{urlencode({'error': query.get('error', '1')[:64]})}")
    try:
        add_card(
            c.db,
            c.clock,
            c.payments,
            s.organization_id,
            s.customer_id,
            token=query.get("token", ""),
            make_default=False,  # a customer's first card becomes the default all the same
            actor=s.actor,
        )
    except (DomainError, ProviderError, ProviderUnreachable, OutcomeUnknown):
        return redirect(f"{back}?error=1")
    return redirect(f"{back}?done=added")


def _method_action(request: Request, slug: str, raw_id: str, token: str, default: bool) -> Response:
    page = posted(request, slug, token)
    if isinstance(page, Response):
        return page
    method_id = ident(raw_id)
    if method_id is None:
        return problem(page, "not_found_heading", "not_found_text", status=404)
    try:
        if default:
            actions.make_default_card(page.c.db, page.c.clock, page.session, method_id)
        else:
            actions.remove_card(page.c.db, page.c.clock, page.session, method_id)
    except NotFoundError:
        return problem(page, "not_found_heading", "not_found_text", status=404)
    return redirect(f"{page.base}/payment-methods?done={'default' if default else 'removed'}")


@router.post("/portal/{slug}/payment-methods/{method_id}/default")
def make_default(slug: str, method_id: str, request: Request, csrf_token: FormText = "") -> Response:
    return _method_action(request, slug, method_id, csrf_token, True)


@router.post("/portal/{slug}/payment-methods/{method_id}/remove")
def remove(slug: str, method_id: str, request: Request, csrf_token: FormText = "") -> Response:
    return _method_action(request, slug, method_id, csrf_token, False)


def _account_page(
    page: Page, values: dict[str, str], errors: dict[str, str], done: str, status: int = 200
) -> Response:
    context = {
        "title": page.t["account_heading"],
        "section": "account",
        "values": values,
        "errors": errors,
        "fields": FIELDS,
        "done": done,
    }
    return page.render("account.html", context, status=status)


@router.get("/portal/{slug}/account")
def account(slug: str, request: Request) -> Response:
    page = signed_in(request, slug)
    if isinstance(page, Response):
        return page
    values = {k: str(page.customer[k] or "") for k in FIELDS}
    done = page.t["done_account"] if request.query_params.get("done") == "account" else ""
    return _account_page(page, values, {}, done)


@router.post("/portal/{slug}/account")
def save_account(
    slug: str,
    request: Request,
    csrf_token: FormText = "",
    name: OptionalText = None,
    email: OptionalText = None,
    vat_id: OptionalText = None,
    address_line1: OptionalText = None,
    address_line2: OptionalText = None,
    city: OptionalText = None,
    postal_code: OptionalText = None,
) -> Response:
    """Save the fields the form sent (a field left out stays as it is)."""
    page = posted(request, slug, csrf_token)
    if isinstance(page, Response):
        return page
    sent = {
        "name": name,
        "email": email,
        "vat_id": vat_id,
        "address_line1": address_line1,
        "address_line2": address_line2,
        "city": city,
        "postal_code": postal_code,
    }
    values = {k: v for k, v in sent.items() if v is not None}
    try:
        actions.update_billing_details(page.c.db, page.c.clock, page.session, values)
    except ValidationError as exc:
        errors = field_errors(page.t, exc)
        shown = {k: values.get(k, str(page.customer[k] or "")) for k in FIELDS}
        return _account_page(page, shown, errors, "", status=422)
    return redirect(f"{page.base}/account?done=account")
