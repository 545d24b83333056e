"""The console in Debian's Chromium (Playwright), end to end: an operator made with the CLI logs in,
reads the dashboard, filters the documents to an overdue invoice, retries its charge, issues a partial
credit note, refunds part of a payment, changes a subscription's plan after its proration preview and
exports the filtered list as CSV; each effect is then read back through the API. axe-core checks every
page visited; the documents list's sort keys are checked against the API's figures after all that;
screenshots at desktop and phone widths go to docs/images/console-*.png."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from typer.testing import CliRunner

from fiscus.adapters.db.engine import Database
from fiscus.adapters.webhooks.sender import WebhookSender
from fiscus.cli import app as cli
from fiscus.domain.clock import FixedClock
from fiscus.gateway import cards
from fiscus.services import webhooks
from fiscus.services.access import create_api_key
from fiscus.services.billing_run import run_billing
from fiscus.services.payments.methods import add_card
from fiscus.services.subscriptions import ItemSpec, create_subscription
from fiscus.worker.webhooks import run_webhook_cycle
from tests.api_support import auth, live_server, make_app
from tests.builders import make_customer, make_tenant
from tests.console.support import assert_sort_keys_hold
from tests.integration.test_webhooks import Receiver
from tests.pages.axe import assert_accessible
from tests.pages.support import CHROMIUM
from tests.payments_support import GatewayProcess, gateway_process

if TYPE_CHECKING:
    from playwright.sync_api import Browser

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images" if os.environ.get("FISCUS_DOC_IMAGES") else ROOT / "var" / "artifacts"
"""Screenshots go to var/artifacts (gitignored); with FISCUS_DOC_IMAGES=1 they replace docs/images/."""
PASSWORD = "a long console password"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make install)")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}")


@pytest.fixture
def browser(chromium: Browser) -> Browser:
    """The session's one Chromium (tests/conftest.py), for both database legs."""
    return chromium


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("gw")) as gw:
        yield gw


def test_operator_runs_billing_in_the_browser(
    db: Database,
    db_url: str,
    clock: FixedClock,
    gateway: GatewayProcess,
    browser: Browser,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant = make_tenant(db, clock, "us", slug="console-us")
    key = create_api_key(db, clock, tenant.org_id).secret
    late = make_customer(db, clock, tenant, 1, name="Late Payer <i>Inc</i>", email="late@example.com")
    payer = make_customer(db, clock, tenant, 2, name="Good Payer", email="good@example.com")
    provider = gateway.provider()
    add_card(db, clock, provider, tenant.org_id, payer, token=gateway.tokenise(cards.SUCCESS))
    sub = create_subscription(db, clock, tenant.org_id, late, [ItemSpec(tenant.monthly, 1)])
    run_billing(db, clock)
    # The late payer had no card: the invoice stays open past its due date; then they give one.
    clock.advance(timedelta(days=20))
    add_card(db, clock, provider, tenant.org_id, late, token=gateway.tokenise(cards.SUCCESS))
    create_subscription(db, clock, tenant.org_id, payer, [ItemSpec(tenant.monthly, 1)])
    run_billing(db, clock)

    monkeypatch.setenv("FISCUS_DATABASE_URL", db_url)
    made = CliRunner().invoke(
        cli,
        [
            "users",
            "create",
            "--email",
            "fin@example.com",
            "--role",
            "finance",
            "--org",
            str(tenant.org_id),
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
    )
    assert made.exit_code == 0, made.output

    # Two webhook endpoints, one answering 200 and one 500, so the deliveries list has both.
    hooks = contextlib.ExitStack()
    for receiver in (hooks.enter_context(Receiver()), hooks.enter_context(Receiver(always_fail=True))):
        webhooks.create_endpoint(
            db, clock, tenant.org_id, url=receiver.url, event_types=["*"], allow_private=True
        )
    sender = hooks.enter_context(WebhookSender())

    IMAGES.mkdir(parents=True, exist_ok=True)
    with hooks, live_server(make_app(db, clock, gateway_url=gateway.url)) as base:
        api = httpx.Client(base_url=base, headers=auth(key))
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        try:
            context.set_default_timeout(15_000)
            page = context.new_page()
            shots = backend == "sqlite"  # the screenshots once; every action on both databases

            page.goto(f"{base}/console/")
            assert_accessible(page)
            page.get_by_label("E-mail").fill("fin@example.com")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{base}/console/{tenant.org_id}/")
            assert page.get_by_role("heading", name="Open receivables").is_visible()
            assert_accessible(page)
            page.screenshot(path=str(IMAGES / "console-dashboard.png"), full_page=True)

            # Filter to the overdue invoice.
            page.get_by_role("link", name="Documents", exact=True).click()
            page.get_by_label("Overdue only").check()
            page.get_by_role("button", name="Filter").click()
            page.wait_for_url("**overdue=1**")
            rows = page.locator("#documents tbody tr")
            assert rows.count() == 1
            assert "Late Payer" in rows.first.inner_text()
            assert_accessible(page)
            if shots:
                page.screenshot(path=str(IMAGES / "console-list.png"), full_page=True)

            # Export the filtered list as CSV.
            with page.expect_download() as download:
                page.get_by_role("link", name="Export CSV").click()
            exported = list(
                csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8")))
            )
            assert len(exported) == 1
            overdue_id = int(exported[0]["id"])
            assert exported[0]["status"] == "open"

            # Retry its charge now: paid.
            rows.first.get_by_role("link").first.click()
            assert page.locator("iframe.pdf").count() == 1  # the PDF inline, same origin
            assert_accessible(page)
            page.get_by_role("link", name="Retry charge now").click()
            assert_accessible(page)
            page.get_by_role("button", name="Confirm: Retry charge now").click()
            page.wait_for_url(f"**/documents/{overdue_id}?done=retry")
            assert api.get(f"/api/v1/documents/{overdue_id}").json()["status"] == "paid"
            if shots:
                page.screenshot(path=str(IMAGES / "console-document.png"), full_page=True)

            # Refund part of that payment; first an amount with too many decimals, refused by its field.
            page.get_by_role("link", name="Refund").click()
            page.get_by_label("Amount to refund", exact=False).fill("1.234")
            page.get_by_label("Reason").fill("goodwill")
            page.get_by_role("button", name="Confirm: Refund").click()
            error = page.locator("#amount-error")
            assert "decimals" in error.inner_text()
            assert page.get_by_label("Amount to refund", exact=False).get_attribute("aria-invalid") == "true"
            assert_accessible(page)
            if shots:
                page.screenshot(path=str(IMAGES / "console-form-error.png"), full_page=True)
            page.get_by_label("Amount to refund", exact=False).fill("1.00")
            page.get_by_role("button", name="Confirm: Refund").click()
            page.wait_for_url(f"**/documents/{overdue_id}?done=refund")
            refunds = api.get(f"/api/v1/documents/{overdue_id}/refunds").json()["data"]
            assert [r["amount"] for r in refunds] == ["1.00"]
            page.goto(f"{base}/console/{tenant.org_id}/refunds?document={overdue_id}")
            assert page.locator("table tbody tr").last.inner_text().count("1.00") >= 1
            assert_accessible(page)
            page.locator("table tbody tr").last.get_by_role("link").first.click()  # its payment
            assert page.get_by_role("heading", name="Captures").is_visible()
            assert_accessible(page)

            # A partial credit note on the other customer's invoice.
            page.goto(f"{base}/console/{tenant.org_id}/documents?q=good%40example.com&type=invoice")
            page.locator("#documents tbody tr").first.get_by_role("link").first.click()
            invoice_id = int(page.url.rstrip("/").split("/")[-1])
            page.get_by_role("link", name="Credit note").click()
            page.get_by_label("An amount (tax included)").check()
            page.get_by_label("Amount (USD)").fill("2.00")
            page.get_by_label("Reason").fill("partial goodwill")
            page.get_by_label("What the credit does").select_option("reduce_due")
            assert_accessible(page)
            page.get_by_role("button", name="Confirm: Credit note").click()
            page.wait_for_url(f"**/documents/{invoice_id}?done=credit_note")
            notes = api.get(f"/api/v1/documents/{invoice_id}/credit_notes").json()["data"]
            assert [n["total"] for n in notes] == ["2.00"]

            # Change the late payer's plan: the proration preview first, then the change.
            page.goto(f"{base}/console/{tenant.org_id}/subscriptions/{sub}")
            assert_accessible(page)
            page.get_by_role("link", name="Change plan or quantity").click()
            page.get_by_label("Price").select_option(str(tenant.monthly_big))
            page.get_by_role("button", name="Preview").click()
            assert page.get_by_role("heading", name="Proration preview").is_visible()
            assert_accessible(page)
            before = api.get(f"/api/v1/subscriptions/{sub}").json()
            page.get_by_role("button", name="Confirm the change").click()
            page.wait_for_url(f"**/subscriptions/{sub}?done=change")
            after = api.get(f"/api/v1/subscriptions/{sub}").json()
            assert before != after
            assert [i["price_id"] for i in after["items"]] == [tenant.monthly_big]

            # The list's sort keys (indexed expressions) after payments, a refund, a partial credit
            # note and a plan change are what the API shows, for every document.
            assert assert_sort_keys_hold(db, tenant.org_id) >= 4

            # Pause its collection until a day (the confirm step passes axe), seen through the API;
            # a list sorted by a column says so to assistive technology.
            page.get_by_role("link", name="Pause collection").click()
            page.get_by_label("Resumes on", exact=False).fill("2027-01-04")
            assert_accessible(page)
            page.get_by_role("button", name="Confirm: Pause collection").click()
            page.wait_for_url(f"**/subscriptions/{sub}?done=pause")
            assert api.get(f"/api/v1/subscriptions/{sub}").json()["pause_collection"]["resumes_at"]
            if shots:
                page.screenshot(path=str(IMAGES / "console-subscription-paused.png"), full_page=True)
            run_webhook_cycle(db, clock, sender, allow_private=True)
            page.goto(f"{base}/console/{tenant.org_id}/webhook-deliveries?sort=-attempts")
            assert page.locator('th[aria-sort="descending"]').count() == 1
            assert_accessible(page)
            if shots:
                page.screenshot(path=str(IMAGES / "console-webhook-deliveries.png"), full_page=True)

            # Email settings (an admin's form) and a preview with real data pass axe too.
            page.goto(f"{base}/console/{tenant.org_id}/email-settings")
            assert_accessible(page)
            page.goto(f"{base}/console/{tenant.org_id}/emails/preview?kind=invoice_issued&id={invoice_id}")
            assert page.get_by_role("link", name="HTML version").is_visible()
            assert_accessible(page)

            if shots:  # the same pages at a phone's width
                phone = browser.new_context(viewport={"width": 390, "height": 844})
                small = phone.new_page()
                small.context.add_cookies(context.cookies())  # type: ignore[arg-type]  # a Cookie has every SetCookieParam key
                for name, path in (
                    ("dashboard", f"/console/{tenant.org_id}/"),
                    ("list", f"/console/{tenant.org_id}/documents"),
                    ("document", f"/console/{tenant.org_id}/documents/{overdue_id}"),
                ):
                    small.goto(base + path)
                    assert small.evaluate("document.documentElement.scrollWidth") <= 390
                    small.screenshot(path=str(IMAGES / f"console-{name}-phone.png"), full_page=True)
                small.goto(f"{base}/console/{tenant.org_id}/documents/{overdue_id}/act/refund")
                small.get_by_label("Amount to refund", exact=False).fill("0.001")
                small.get_by_role("button", name="Confirm: Refund").click()
                assert small.locator("#amount-error").is_visible()
                small.screenshot(path=str(IMAGES / "console-form-error-phone.png"), full_page=True)
                phone.close()
        finally:
            context.close()
