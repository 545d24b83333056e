"""The path a new business takes, with the CLI and the API only: `fiscus init` → settings with a logo
and an IBAN → product, price, customer → subscription → `fiscus bill` → the PDF (its text has the
IBAN, the payment reference and the link; its QR code is the hosted link) → paid on the hosted page
→ the receipt. On SQLite and PostgreSQL.

The card is entered on the hosted page through the test gateway's real card form (HTTP, no browser);
tests/pages/test_browser.py drives the same page in Chromium."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.gateway import cards
from fiscus.services.rendering import DOCUMENTS_DIR_ENV
from tests.api_support import auth, make_app
from tests.integration.test_cli import fiscus
from tests.integration.test_invoice_presentation import pdftotext, qr_code
from tests.pages.support import PUBLIC_URL, follow, pay_with
from tests.payments_support import GatewayProcess, gateway_process

IBAN = "BG80BNBG96611020345678"
LOGO = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="60" height="20">'
    b'<rect width="60" height="20" fill="#123"/></svg>'
)

pytestmark = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("zbarimg") is None,
    reason="poppler-utils/zbar-tools missing",
)


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

    app = make_app(db, clock, gateway_url=gateway.url, public_url=PUBLIC_URL, gateway_timeout_seconds=1.0)
    with TestClient(app, raise_server_exceptions=True) as api:
        h = auth(key)
        product = api.post("/api/v1/products", json={"code": "eval", "name": "Eval Pro"}, headers=h).json()
        variant = api.post(
            f"/api/v1/products/{product['id']}/variants",
            json={"code": "monthly", "name": "Eval Pro, monthly"},
            headers=h,
        ).json()
        price = api.post(
            f"/api/v1/variants/{variant['id']}/prices",
            json={"currency": "USD", "unit_amount": "49.00", "interval": "month"},
            headers=h,
        ).json()
        customer = api.post(
            "/api/v1/customers",
            json={"name": "Northwind LLC", "email": "ap@northwind.example", "country": "US", "locale": "en"},
            headers=h,
        ).json()
        sub = api.post(
            "/api/v1/subscriptions",
            json={"customer_id": customer["id"], "items": [{"price_id": price["id"], "quantity": 1}]},
            headers=h,
        )
        assert sub.status_code in (200, 201), sub.text
        bill = fiscus(db_url, "bill", "--at", clock.now().isoformat())
        assert bill.returncode == 0, bill.stderr
        [doc] = api.get(f"/api/v1/documents?customer_id={customer['id']}", headers=h).json()["data"]
        full = api.get(f"/api/v1/documents/{doc['id']}", headers=h).json()
        assert [ln["description"] for ln in full["lines"]] == ["Eval Pro — monthly"]
        pdf = api.get(f"/api/v1/documents/{doc['id']}/pdf", headers=h)
        assert pdf.headers["content-disposition"] == f'inline; filename="{doc["number"]}.pdf"'
        path = tmp_path / "invoice.pdf"
        path.write_bytes(pdf.content)
        text = pdftotext(path)
        assert "BG80 BNBG 9661 1020 3456 78" in text
        assert f"Payment reference: {doc['number']}" in text
        assert doc["hosted_url"] in text
        assert "Eval Pro — monthly" in text
        assert qr_code(path, tmp_path) == doc["hosted_url"]

        page_path = re.sub(r"^https?://[^/]+", "", doc["hosted_url"])
        answer = pay_with(api, api.get(page_path).text, cards.SUCCESS)
        paid = follow(api, answer.headers["location"]).text
        assert 'data-testid="receipt"' in paid
        assert api.get(f"/api/v1/documents/{doc['id']}", headers=h).json()["status"] == "paid"
