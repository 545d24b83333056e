"""The path a new business takes, with the CLI and the API only: `fiscus init` → settings with a logo
and an IBAN → product, price, customer → subscription created with `billing: "now"` (its invoice is
issued in the same request, so no `fiscus bill` is needed) → the PDF (its text has the IBAN, the
payment reference and the link; its QR code is the hosted link) → paid on the hosted page in Debian's
Chromium (Playwright) → the receipt in the page, the invoice paid in the API and the card saved on the
customer. On SQLite and PostgreSQL.

Fiscus runs under a real uvicorn server whose public URL is its own address, so the link the QR code
decodes to is the one the browser opens; the page's card form posts to the test gateway process."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.gateway import cards
from fiscus.services.rendering import DOCUMENTS_DIR_ENV
from tests.api_support import auth, free_port, live_server, make_app
from tests.integration.test_cli import fiscus
from tests.integration.test_invoice_presentation import pdftotext, qr_code
from tests.pages.support import CHROMIUM, fill_card
from tests.payments_support import GatewayProcess, gateway_process

if TYPE_CHECKING:
    from playwright.sync_api import Browser

IBAN = "BG80BNBG96611020345678"
LOGO = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="60" height="20">'
    b'<rect width="60" height="20" fill="#123"/></svg>'
)

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make install)")
pytestmark = [
    pytest.mark.skipif(
        shutil.which("pdftotext") is None or shutil.which("zbarimg") is None,
        reason="poppler-utils/zbar-tools missing",
    ),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}: install Debian's chromium"),
]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("gw"), extra_args=("--timeout-seconds", "3")) as gw:
        yield gw


def test_a_new_business_bills_and_gets_paid(
    db: Database,
    db_url: str,
    clock: FixedClock,
    tmp_path: Path,
    gateway: GatewayProcess,
    monkeypatch: pytest.MonkeyPatch,
    chromium: Browser,
) -> None:
    monkeypatch.setenv(DOCUMENTS_DIR_ENV, str(tmp_path / "docs"))
    init = fiscus(
        db_url, "init", "--non-interactive", "--json", "--legal-name", "Acme Tools Inc.", "--country", "US",
        "--tax-id", "043190200",
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    out = json.loads(init.stdout)
    org, key = str(out["organization_id"]), out["live_key"]
    logo = tmp_path / "logo.svg"
    logo.write_bytes(LOGO)
    update = fiscus(
        db_url, "org", "update", "--org", org, "--iban", IBAN, "--bic", "BNBGBGSF", "--logo", str(logo)
    )
    assert update.returncode == 0, update.stderr

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = make_app(db, clock, gateway_url=gateway.url, public_url=base, gateway_timeout_seconds=3.0)
    with live_server(app, port), httpx.Client(base_url=base, headers=auth(key), timeout=30) as api:
        product = api.post("/api/v1/products", json={"code": "eval", "name": "Eval Pro"}).json()
        variant = api.post(
            f"/api/v1/products/{product['id']}/variants",
            json={"code": "monthly", "name": "Eval Pro, monthly"},
        ).json()
        price = api.post(
            f"/api/v1/variants/{variant['id']}/prices",
            json={"currency": "USD", "unit_amount": "49.00", "interval": "month"},
        ).json()
        customer = api.post(
            "/api/v1/customers",
            json={"name": "Northwind LLC", "email": "ap@northwind.example", "country": "US", "locale": "en"},
        ).json()
        sub = api.post(
            "/api/v1/subscriptions",
            json={
                "customer_id": customer["id"],
                "items": [{"price_id": price["id"], "quantity": 1}],
                "billing": "now",
            },
        )
        assert sub.status_code == 201, sub.text
        [doc_id] = sub.json()["billed_document_ids"]
        doc = api.get(f"/api/v1/documents/{doc_id}").json()
        assert doc["status"] == "open"
        assert [ln["description"] for ln in doc["lines"]] == ["Eval Pro — monthly"]
        assert doc["hosted_url"].startswith(base + "/")
        pdf = api.get(f"/api/v1/documents/{doc_id}/pdf")
        assert pdf.headers["content-disposition"] == f'inline; filename="{doc["number"]}.pdf"'
        path = tmp_path / "invoice.pdf"
        path.write_bytes(pdf.content)
        text = pdftotext(path)
        assert "BG80 BNBG 9661 1020 3456 78" in text
        assert f"Payment reference: {doc['number']}" in text
        assert doc["hosted_url"] in text
        assert "Eval Pro — monthly" in text
        link = qr_code(path, tmp_path)
        assert link == doc["hosted_url"]

        browser = chromium  # the session's shared Chromium (one Playwright per worker)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(link)
            fill_card(page, cards.SUCCESS)
            page.get_by_role("button").click()
            page.wait_for_url(re.compile(r"[?&]result="))
            assert page.url.startswith(base + "/pay/")
            assert page.locator("[data-testid=notice]").get_attribute("data-kind") == "paid"
            assert page.locator("[data-testid=receipt]").count() == 1
            assert page.locator("[data-testid=receipt-card]").inner_text() == "Visa ending in 4242"
            assert page.locator("[data-testid=card-form]").count() == 0
        finally:
            for context in browser.contexts:
                context.close()

        paid = api.get(f"/api/v1/documents/{doc_id}").json()
        assert paid["status"] == "paid"
        assert paid["amount_due"] == "0.00"
        methods = api.get(f"/api/v1/customers/{customer['id']}/payment_methods").json()["data"]
        assert [(m["brand"], m["last4"]) for m in methods] == [("visa", "4242")]
