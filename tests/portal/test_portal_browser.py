"""The customer portal in Debian's Chromium (Playwright), Fiscus under uvicorn and the test gateway as
its own process: a customer opens the session link the API made, downloads a PDF (the API's bytes),
pays an open invoice on the hosted page, adds a card and makes it the default, changes plan after
seeing the proration, and cancels at the period end; another customer's document, PDF and subscription
are 404 in the same browser. Every effect is read back through the API, every
page passes axe-core, and screenshots at desktop and phone width go to docs/images/portal-*.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.gateway import cards
from fiscus.services.access import create_api_key
from fiscus.services.discounts import CodeSpec, CouponSpec, create_coupon, create_promotion_code
from fiscus.services.org_settings import update_settings
from fiscus.services.portal_settings import update_portal_settings
from tests.api_support import auth, live_server, make_app
from tests.pages.axe import assert_accessible
from tests.pages.support import CHROMIUM, billed_document, fill_card
from tests.payments_support import GatewayProcess, gateway_process

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
OTHER_CARD = "5555555555554444"
"""Any valid number other than the scenario cards is approved by the test gateway."""

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make install)")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}")


@pytest.fixture
def browser(chromium: Browser) -> Browser:
    """The session's Chromium (tests/conftest.py)."""
    return chromium


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("gw")) as gw:
        yield gw


class Shots:
    """Screenshots for docs/images (from the SQLite leg only: one set is enough to look at)."""

    def __init__(self, browser: Browser, keep: bool) -> None:
        self.browser, self.keep = browser, keep

    def take(self, page: Page, name: str, *, phone: bool = False) -> None:
        assert_accessible(page)
        if not self.keep:
            return
        page.screenshot(path=str(IMAGES / f"portal-{name}.png"), full_page=True)
        if phone:
            ctx = self.browser.new_context(
                viewport={"width": 390, "height": 844}, storage_state=page.context.storage_state()
            )
            small = ctx.new_page()
            small.goto(page.url)
            assert small.evaluate("document.documentElement.scrollWidth") <= 390, (
                f"{name} is wider than a phone"
            )
            small.screenshot(path=str(IMAGES / f"portal-{name}-phone.png"), full_page=True)
            ctx.close()


def test_a_customer_uses_the_portal_in_a_browser(
    db: Database, clock: FixedClock, gateway: GatewayProcess, browser: Browser, backend: str
) -> None:
    shop, alice, invoice = billed_document(db, clock, "us", slug="us-shop", locale="en")
    _shop, bob, bob_invoice = billed_document(db, clock, tenant=shop)
    key = create_api_key(db, clock, shop.org_id).secret
    update_portal_settings(
        db, clock, shop.org_id, {"allow_plan_change": True, "allow_cancel": True, "plans": [shop.monthly_big]}
    )
    update_settings(db, clock, shop.org_id, {"customer_promotion_codes": True})
    ten = create_coupon(db, clock, shop.org_id, CouponSpec("Welcome", "once", percent_off=Decimal(10)))
    create_promotion_code(db, clock, shop.org_id, CodeSpec(ten, "WELCOME"))
    shots = Shots(browser, keep=backend == "sqlite")
    with live_server(make_app(db, clock, gateway_url=gateway.url)) as base:

        def api(path: str) -> Any:
            r = httpx.get(f"{base}/api/v1{path}", headers=auth(key))
            assert r.status_code == 200, r.text
            return r.json()

        made = httpx.post(
            f"{base}/api/v1/customers/{alice}/portal_sessions",
            json={"return_url": "https://app.example/account"},
            headers=auth(key),
        )
        assert made.status_code == 201, made.text
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        context.set_default_timeout(15_000)
        page = context.new_page()
        try:
            page.goto(made.json()["url"])
            assert page.url == f"{base}/portal/us-shop"
            row = page.locator(f"[data-testid=document-row][data-id='{invoice}']")
            assert row.count() == 1
            shots.take(page, "documents", phone=True)

            # The document, and its PDF: the very bytes the API serves.
            row.get_by_role("link").first.click()
            page.wait_for_url(re.compile(rf"/documents/{invoice}$"))
            shots.take(page, "document", phone=True)
            with page.expect_download() as download:
                page.locator("[data-testid=pdf-link]").click()
            pdf = Path(download.value.path()).read_bytes()
            from_api = httpx.get(f"{base}/api/v1/documents/{invoice}/pdf", headers=auth(key))
            assert from_api.status_code == 200
            assert pdf == from_api.content
            assert pdf.startswith(b"%PDF")

            # Pay it on the hosted payment page.
            page.locator("[data-testid=pay-link]").click()
            page.wait_for_url(re.compile(r"/pay/"))
            fill_card(page, cards.SUCCESS)
            page.get_by_role("button").click()
            page.wait_for_url(re.compile(r"\?result="))
            assert api(f"/documents/{invoice}")["status"] == "paid"

            # Cards: the one just used is the default; add another and make it the default.
            page.goto(f"{base}/portal/us-shop/payment-methods")
            assert page.locator("[data-testid=card][data-default=true]").count() == 1
            fill_card(page, OTHER_CARD)
            page.get_by_role("button", name="Save card").click()
            page.wait_for_url(re.compile(r"done=added"))
            new = page.locator("[data-testid=card]:not([data-default])")
            assert new.count() == 1
            new_id = int(new.get_attribute("data-id") or 0)
            shots.take(page, "payment-methods", phone=True)
            new.get_by_role("button", name=re.compile("default", re.I)).click()
            page.wait_for_url(re.compile(r"done=default"))
            assert api(f"/customers/{alice}")["default_payment_method_id"] == new_id

            # Change plan: the proration is shown before anything is written.
            page.goto(f"{base}/portal/us-shop/subscriptions")
            shots.take(page, "subscriptions", phone=True)
            sub_id = int(page.locator("[data-testid=subscription]").get_attribute("data-id") or 0)
            page.locator("[data-testid=change-link]").click()
            page.get_by_role("combobox", name="Plan").select_option(str(shop.monthly_big))
            page.get_by_role("button", name="Preview the change").click()
            assert page.locator("[data-testid=preview]").count() == 1
            assert api(f"/subscriptions/{sub_id}")["items"][0]["price_id"] == shop.monthly
            shots.take(page, "change-preview")  # a POST result: no phone re-load
            page.locator("[data-testid=confirm-change]").click()
            page.wait_for_url(re.compile(r"done=changed"))
            assert api(f"/subscriptions/{sub_id}")["items"][0]["price_id"] == shop.monthly_big

            # A promotion code (issue 17): a refusal says why on the form; a good code is redeemed.
            page.locator("[data-testid=promo-link]").click()
            page.get_by_label("Promotion code").fill("nope")
            page.locator("[data-testid=promo-apply]").click()
            assert (
                page.locator("[data-testid=promo-error]").inner_text() == "There is no such promotion code."
            )
            shots.take(page, "promotion-code")
            page.get_by_label("Promotion code").fill("welcome")
            page.locator("[data-testid=promo-apply]").click()
            page.wait_for_url(re.compile(r"done=code_applied"))

            # Cancel at the end of the period, with a reason.
            page.locator("[data-testid=cancel-link]").click()
            shots.take(page, "cancel")
            page.get_by_label("I do not use it enough").check()
            page.locator("[data-testid=confirm-cancel]").click()
            page.wait_for_url(re.compile(r"done=canceled"))
            sub = api(f"/subscriptions/{sub_id}")
            assert sub["cancel_at"] is not None
            assert sub["status"] == "active"
            assert page.locator("[data-testid=sub-ends]").count() == 1

            # Another customer's ids, typed into the address bar: not found, whatever they name.
            with db.read() as conn:
                bob_sub = conn.execute(
                    select(t.subscriptions.c.id).where(t.subscriptions.c.customer_id == bob)
                ).scalar_one()
            for path in (
                f"/documents/{bob_invoice}",
                f"/documents/{bob_invoice}/pdf",
                f"/subscriptions/{bob_sub}/change",
                f"/subscriptions/{bob_sub}/cancel",
            ):
                answer = page.goto(f"{base}/portal/us-shop{path}")
                assert answer is not None
                assert answer.status == 404, path
            assert api(f"/subscriptions/{bob_sub}")["cancel_at"] is None

            page.goto(f"{base}/portal/us-shop/account")
            shots.take(page, "account")
            page.goto(f"{base}/portal/us-shop/payments")
            assert page.locator("[data-testid=payment-row]").count() == 1
            shots.take(page, "payments")
        finally:
            context.close()
