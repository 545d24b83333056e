"""The catalog and settings pages in Debian's Chromium: an admin signs in, walks every new page (axe-core:
no serious or critical violation on any), creates a product and sees a field error in place; the
catalog and the organisation settings are shot at desktop and phone widths (nothing wider than the
phone). Screenshots go to var/artifacts, or docs/images with FISCUS_DOC_IMAGES=1."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services import catalog, webhooks
from fiscus.services.access import create_api_key
from fiscus.services.operators import create_operator
from fiscus.worker.webhooks import dispatch_events
from tests.api_support import live_server, make_app
from tests.builders import make_tenant
from tests.pages.axe import assert_accessible
from tests.pages.support import CHROMIUM

if TYPE_CHECKING:
    from playwright.sync_api import Browser

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images" if os.environ.get("FISCUS_DOC_IMAGES") else ROOT / "var" / "artifacts"
PASSWORD = "a long console password"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make install)")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}")


def test_admin_walks_the_catalog_and_settings(
    db: Database, clock: FixedClock, backend: str, chromium: Browser
) -> None:
    if backend != "sqlite":
        pytest.skip("one browser leg (CI budget); the same pages run on PostgreSQL in test_settings_pages.py")
    tenant = make_tenant(db, clock, "bg", slug="console-settings")
    org = tenant.org_id
    variant = catalog.create_variant(
        db, clock, org, tenant.product_id, code="team", name="Team", limits=["5 users"]
    )
    catalog.create_price(
        db, clock, org, variant, currency_code="EUR", unit_amount="1234.50", interval="month"
    )
    endpoint, _ = webhooks.create_endpoint(db, clock, org, url="https://erp.example/hooks", event_types=["*"])
    catalog.set_price_active(db, clock, org, tenant.monthly, active=False)
    dispatch_events(db, clock)
    create_api_key(db, clock, org, name="ERP sync")
    create_operator(db, clock, email="admin@example.com", org_id=org, role="admin", password=PASSWORD)
    base_path = f"/console/{org}"
    IMAGES.mkdir(parents=True, exist_ok=True)
    with live_server(make_app(db, clock)) as base:
        browser = chromium  # the session's shared Chromium (one Playwright per worker)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.goto(f"{base}/console/login")
            page.get_by_label("E-mail").fill("admin@example.com")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{base}{base_path}/")
            page.get_by_role("link", name="Catalog").click()
            page.wait_for_url(f"{base}{base_path}/catalog")
            for path in (
                "/catalog",
                f"/catalog/products/{tenant.product_id}",
                "/catalog/tax-categories",
                f"/catalog/prices/{tenant.monthly}/unarchive",
                "/settings",
                "/settings/organization",
                "/settings/number-series",
                "/settings/payments",
                "/settings/webhooks",
                f"/settings/webhooks/{endpoint}",
                "/settings/api-keys",
                "/settings/operators",
            ):
                page.goto(base + base_path + path)
                assert page.locator("h1").count() == 1, path
                assert_accessible(page)
            page.goto(f"{base}{base_path}/catalog")
            page.screenshot(path=str(IMAGES / "console-catalog.png"), full_page=True)
            page.get_by_label("Code").fill(catalog_code(db, org))
            page.get_by_label("Name").fill("Duplicate")
            page.get_by_role("button", name="Create").click()
            assert page.locator("#product-code-error").is_visible()
            assert_accessible(page)
            page.goto(f"{base}{base_path}/settings/organization")
            page.screenshot(path=str(IMAGES / "console-settings.png"), full_page=True)

            phone = browser.new_context(viewport={"width": 390, "height": 844})
            small = phone.new_page()
            small.context.add_cookies(context.cookies())  # type: ignore[arg-type]  # Cookie fits SetCookieParam
            for name, path in (("catalog", "/catalog"), ("settings", "/settings/organization")):
                small.goto(base + base_path + path)
                assert small.evaluate("document.documentElement.scrollWidth") <= 390, path
                small.screenshot(path=str(IMAGES / f"console-{name}-phone.png"), full_page=True)
            phone.close()
        finally:
            for context in browser.contexts:
                context.close()


def catalog_code(db: Database, org_id: int) -> str:
    """The code of a product the organisation already has (creating it again is refused by its field)."""
    from sqlalchemy import select

    from fiscus.adapters.db import tables as t

    with db.read() as conn:
        return str(
            conn.execute(select(t.products.c.code).where(t.products.c.organization_id == org_id)).scalar()
        )
