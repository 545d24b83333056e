"""A promotion code entered by the customer for one of their subscriptions (issue 17), where the
organisation allows it: `GET` shows the form, `POST` (CSRF-checked) redeems the code onto the
subscription through the API's redemption (`services/promotion_checkout.py`), so its next invoices
carry the discount; a code that does not apply is shown again with why, in the customer's language."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from fiscus.domain.errors import DomainError
from fiscus.services.promotion_checkout import codes_allowed, redeem_for_subscription
from fiscus.web.portal.common import Page, posted, problem, redirect, signed_in
from fiscus.web.portal.subscriptions import BILLABLE, _subscription
from fiscus.web.promo_labels import refusal_message

router = APIRouter(include_in_schema=False)
FormText = Annotated[str, Form()]
MAX_CODE = 64


def _allowed(page: Page) -> bool:
    with page.c.db.read() as conn:
        return codes_allowed(conn, page.session.organization_id)


def _form(page: Page, sub_id: int, code: str = "", error: str = "", status: int = 200) -> Response:
    context = {
        "title": page.t["promo_heading"],
        "section": "subscriptions",
        "sub_id": sub_id,
        "code": code,
        "error": error,
    }
    return page.render("promotion_code.html", context, status=status)


def _target(page: Page, subscription_id: str) -> int | Response:
    """The customer's billable subscription when the organisation takes codes, else the page to show."""
    found = _subscription(page, subscription_id)
    if found is None or found[0]["status"] not in BILLABLE:
        return problem(page, "not_found_heading", "not_found_text", status=404)
    if not _allowed(page):
        return problem(page, "forbidden_heading", "promo_not_allowed_by_organization", status=403)
    return int(found[0]["id"])


@router.get("/portal/{slug}/subscriptions/{subscription_id}/promotion_code")
def promotion_code_form(slug: str, subscription_id: str, request: Request) -> Response:
    page = signed_in(request, slug)
    if isinstance(page, Response):
        return page
    target = _target(page, subscription_id)
    return target if isinstance(target, Response) else _form(page, target)


@router.post("/portal/{slug}/subscriptions/{subscription_id}/promotion_code")
def promotion_code(
    slug: str, subscription_id: str, request: Request, csrf_token: FormText = "", code: FormText = ""
) -> Response:
    page = posted(request, slug, csrf_token)
    if isinstance(page, Response):
        return page
    target = _target(page, subscription_id)
    if isinstance(target, Response):
        return target
    code = code[: MAX_CODE * 2]
    s = page.session
    try:
        redeem_for_subscription(
            page.c.db, page.c.clock, s.organization_id, s.customer_id, target, code, actor=s.actor
        )
    except DomainError as exc:
        text, status = refusal_message(page.t, exc)
        return _form(page, target, code, text, status)
    return redirect(f"{page.base}/subscriptions?done=code_applied")
