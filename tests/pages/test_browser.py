"""The hosted payment page in a real browser (Debian's Chromium driven by Playwright, JavaScript off):
Fiscus under uvicorn and the test gateway as its own process, the card typed into the page, posted to
the gateway and brought back as a token. Full-page screenshots are kept for a person to look at."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.gateway import cards
from fiscus.services.access import create_api_key
from tests.api_support import auth, live_server, make_app
from tests.pages.axe import assert_accessible
from tests.pages.support import CHROMIUM, EN, billed_document, fill_card, link_of
from tests.payments_support import GatewayProcess, gateway_process

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

BG = ("Име върху картата", "Номер на картата", "Месец (ММ)", "Година (ГГГГ)", "Код за сигурност (CVC)")
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "artifacts"
"""Where the screenshots are copied for a person to look at (gitignored, like all of var/)."""

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make install)")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}: install Debian's chromium (make test does)"
)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("gw")) as gw:
        yield gw


class Shots:
    """Full-page screenshots into the test's tmp_path, copied to var/artifacts/."""

    def __init__(self, tmp_path: Path, prefix: str) -> None:
        self.dir, self.prefix = tmp_path, prefix

    def take(self, page: Page, name: str) -> Path:
        path = self.dir / f"{self.prefix}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, ARTIFACTS / path.name)
        return path


def test_pay_an_invoice_in_a_browser(
    db: Database, clock: FixedClock, gateway: GatewayProcess, tmp_path: Path, backend: str, chromium: Browser
) -> None:
    us, _c1, paid_id = billed_document(db, clock, "us", slug="us-shop", locale="en")
    bg, _c2, declined_id = billed_document(db, clock, "bg", slug="bg-host", locale="bg")
    key = create_api_key(db, clock, us.org_id).secret
    shots = Shots(tmp_path, f"pay-{backend}")
    after_submit = re.compile(r"/pay/\d+\.[A-Za-z0-9_-]+\?result=")
    with live_server(make_app(db, clock, gateway_url=gateway.url)) as base:
        browser = chromium  # the session's shared Chromium (one Playwright per worker)
        try:
            context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
            context.set_default_timeout(10_000)
            page = context.new_page()

            # A success card: the page shows the invoice paid, and so does the API.
            page.goto(base + link_of(db, clock, us.org_id, paid_id))
            assert page.locator("[data-testid=card-form]").count() == 1
            shots.take(page, "1-open")
            fill_card(page, cards.SUCCESS, EN)
            page.get_by_role("button").click()
            page.wait_for_url(after_submit)
            notice = page.locator("[data-testid=notice]")
            assert notice.get_attribute("data-kind") == "paid"
            assert page.locator("[data-testid=receipt-card]").inner_text() == "Visa ending in 4242"
            assert page.locator("[data-testid=card-form]").count() == 0
            shots.take(page, "2-paid")
            api = httpx.get(f"{base}/api/v1/documents/{paid_id}", headers=auth(key))
            assert api.status_code == 200
            assert api.json()["status"] == "paid"

            # A declining card: the error is shown, nothing is captured, the form is there to retry.
            page.goto(base + link_of(db, clock, bg.org_id, declined_id))
            fill_card(page, cards.DO_NOT_HONOR, BG)
            page.get_by_role("button").click()
            page.wait_for_url(after_submit)
            assert page.locator("[data-testid=notice]").get_attribute("data-kind") == "declined"
            assert page.locator("[data-testid=notice-code]").inner_text() == "do_not_honor"
            assert page.get_by_role("alert").count() == 1
            assert page.locator("[data-testid=card-form]").count() == 1
            shots.take(page, "3-declined")

            mobile = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
            small = mobile.new_page()
            small.goto(page.url)
            # Responsive: nothing wider than a phone's screen, and the outcome is in view on arrival
            # (the redirect lands on #pay, below the document on a phone).
            assert small.evaluate("document.documentElement.scrollWidth") <= 390
            top = small.locator("[data-testid=notice]").evaluate("e => e.getBoundingClientRect().top")
            assert 0 <= top < 844
            shots.take(small, "4-declined-mobile")

            # axe-core runs in a context with JavaScript on (the page itself needs none).
            checker = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            checker.goto(page.url)
            assert_accessible(checker)
        finally:
            for context in browser.contexts:
                context.close()
    with db.read() as conn:
        attempt = (
            conn.execute(select(t.payment_attempts).where(t.payment_attempts.c.document_id == declined_id))
            .mappings()
            .one()
        )
        doc = conn.execute(select(t.documents).where(t.documents.c.id == declined_id)).mappings().one()
    assert attempt["status"] == "failed"
    assert doc["status"] == "open"
    assert doc["amount_paid_minor"] == 0
    ledger = gateway.ledger()
    charges = [c for c in ledger["charges"] if c["reference"] == attempt["idempotency_key"]]  # type: ignore[attr-defined]
    assert [c["status"] for c in charges] == ["declined"]
    assert not [c for c in ledger["captures"] if c["charge_id"] == charges[0]["id"]]  # type: ignore[attr-defined]
