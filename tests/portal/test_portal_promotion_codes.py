"""A customer's promotion code in the portal over HTTP, on both databases (issue 17): nothing is offered
or accepted until the organisation allows it; the CSRF-checked form redeems onto the customer's own
subscription (another's is 404), each refusal says why in the customer's language, and the next
invoice shown is the discounted one."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from html import unescape
from urllib.parse import urlsplit

from fastapi.testclient import TestClient
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.services.access import create_api_key
from fiscus.services.discounts import CodeSpec, CouponSpec, create_coupon, create_promotion_code, redeem
from fiscus.services.org_settings import update_settings
from fiscus.web.promo_labels import promo_labels
from tests.api_support import api_client, auth
from tests.pages.support import billed_document, link_of


def _sign_in(client: TestClient, key: str, customer_id: int, locale: str) -> None:
    made = client.post(
        f"/api/v1/customers/{customer_id}/portal_sessions", json={"locale": locale}, headers=auth(key)
    )
    assert made.status_code == 201, made.text
    assert client.get(urlsplit(made.json()["url"]).path, follow_redirects=False).status_code == 303


def _error(html: str) -> str:
    found = re.search(r'data-testid="promo-error">([^<]*)<', html)
    assert found, html
    return unescape(found.group(1))


def test_portal_redeems_a_code_onto_the_customers_subscription(db: Database, clock: FixedClock) -> None:
    shop, alice, _doc = billed_document(db, clock, "bg", slug="shop", locale="en")
    _, bob, _ = billed_document(db, clock, tenant=shop)
    org = shop.org_id
    key = create_api_key(db, clock, org).secret
    with db.read() as conn:
        subs = dict(conn.execute(select(t.subscriptions.c.customer_id, t.subscriptions.c.id)).all())
    ten = create_coupon(db, clock, org, CouponSpec("Ten", "once", percent_off=Decimal(10)))
    codes = {
        "OLD": CodeSpec(ten, "OLD", expires_at=clock.now() - timedelta(minutes=1)),
        "FULL": CodeSpec(ten, "FULL", max_redemptions=1),
        "BOBS": CodeSpec(ten, "BOBS", customer_id=bob),
        "FIRST": CodeSpec(ten, "FIRST", first_purchase_only=True),
        "BIG": CodeSpec(ten, "BIG", minimum_amount=Decimal("1000.00"), minimum_currency="EUR"),
        "WELCOME": CodeSpec(ten, "WELCOME"),
    }
    for spec in codes.values():
        create_promotion_code(db, clock, org, spec)
    redeem(db, clock, org, subscription_id=subs[bob], code="full")
    form_url = f"/portal/shop/subscriptions/{subs[alice]}/promotion_code"
    with api_client(db, clock) as client:
        _sign_in(client, key, alice, "en")
        assert 'data-testid="promo-link"' not in client.get("/portal/shop/subscriptions").text
        assert client.get(form_url).status_code == 403
        # The organisation allows it through its settings API, strictly typed and audited.
        assert (
            client.get("/api/v1/organization", headers=auth(key)).json()["customer_promotion_codes"] is False
        )
        bad = client.post("/api/v1/organization", json={"customer_promotion_codes": "yes"}, headers=auth(key))
        assert bad.status_code == 422
        on = client.post("/api/v1/organization", json={"customer_promotion_codes": True}, headers=auth(key))
        assert (on.status_code, on.json()["customer_promotion_codes"]) == (200, True)
        with db.read() as conn:
            audit = (
                conn.execute(
                    select(t.audit_events.c.after).where(t.audit_events.c.entity_type == "organization")
                )
                .scalars()
                .all()
            )
        assert {"customer_promotion_codes": True} in audit
        assert 'data-testid="promo-link"' in client.get("/portal/shop/subscriptions").text
        assert client.get(form_url).status_code == 200
        csrf = client.cookies.get("fiscus_portal_csrf")
        assert client.post(form_url, data={"code": "welcome"}).status_code == 403  # no CSRF token
        en = promo_labels("en")
        for code, reason in (
            ("old", "code_expired"),
            ("full", "code_max_redemptions"),
            ("bobs", "wrong_customer"),
            ("first", "not_first_purchase"),
            ("big", "below_minimum_amount"),
        ):
            r = client.post(form_url, data={"code": code, "csrf_token": csrf})
            assert r.status_code == 409, (code, r.text)
            assert _error(r.text) == en[f"promo_{reason}"], code
            assert 'aria-invalid="true"' in r.text
        assert (
            _error(client.post(form_url, data={"code": "nope", "csrf_token": csrf}).text)
            == en["promo_unknown"]
        )
        assert client.post(form_url, data={"code": "!", "csrf_token": csrf}).status_code == 422
        bobs_form = f"/portal/shop/subscriptions/{subs[bob]}/promotion_code"
        assert client.post(bobs_form, data={"code": "welcome", "csrf_token": csrf}).status_code == 404
        before = client.get("/portal/shop/subscriptions").text
        assert "36.00" in before  # 2 × 15.00 + 20 % VAT
        done = client.post(form_url, data={"code": "welcome", "csrf_token": csrf}, follow_redirects=False)
        assert done.status_code == 303
        page = client.get(done.headers["location"])
        assert en["done_code_applied"] in page.text
        assert "32.40" in page.text  # 30.00 − 10 % = 27.00 + 20 % VAT
        again = client.post(form_url, data={"code": "welcome", "csrf_token": csrf})
        assert _error(again.text) == en["promo_already_redeemed"]

    with api_client(db, clock) as client:  # the same refusal in Bulgarian for a Bulgarian session
        _sign_in(client, key, bob, "bg")
        bobs_form = f"/portal/shop/subscriptions/{subs[bob]}/promotion_code"
        assert client.get(bobs_form).status_code == 200  # sets the CSRF cookie
        r = client.post(
            bobs_form, data={"code": "old", "csrf_token": client.cookies.get("fiscus_portal_csrf")}
        )
        assert r.status_code == 409
        assert _error(r.text) == promo_labels("bg")["promo_code_expired"]


def test_the_hosted_page_leaves_the_portals_csrf_cookie_alone(db: Database, clock: FixedClock) -> None:
    """The portal and the hosted page keep their CSRF tokens in cookies of their own, each scoped to its
    pages: going from the portal to a hosted page (its promotion code form sets a token) and back leaves
    the portal's open form working, and a token of one surface is refused on the other."""
    tenant, customer, proforma = billed_document(db, clock, "bg", slug="pro", document=DocumentType.PROFORMA)
    org = tenant.org_id
    update_settings(db, clock, org, {"customer_promotion_codes": True})
    key = create_api_key(db, clock, org).secret
    with db.read() as conn:
        sub = conn.execute(
            select(t.subscriptions.c.id).where(t.subscriptions.c.customer_id == customer)
        ).scalar()
    form_url = f"/portal/pro/subscriptions/{sub}/promotion_code"
    with api_client(db, clock) as client:
        _sign_in(client, key, customer, "en")
        portal_token = _form_token(client.get(form_url).text)
        pay_path = link_of(db, clock, org, proforma)
        pay_token = _form_token(client.get(pay_path).text)  # the hosted page's form sets its own cookie
        assert {c.name: c.path for c in client.cookies.jar} == {
            "fiscus_portal": "/portal/pro",
            "fiscus_portal_csrf": "/portal/pro",
            "fiscus_pay_csrf": pay_path,
        }
        r = client.post(form_url, data={"code": "nope", "csrf_token": portal_token})
        assert r.status_code == 404, r.text  # past the CSRF check: an unknown code
        assert client.post(form_url, data={"code": "nope", "csrf_token": pay_token}).status_code == 403
        crossed = client.post(f"{pay_path}/promotion_code", data={"code": "nope", "csrf_token": portal_token})
        assert crossed.status_code == 403
        r = client.post(f"{pay_path}/promotion_code", data={"code": "nope", "csrf_token": pay_token})
        assert r.status_code == 404, r.text


def _form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)
