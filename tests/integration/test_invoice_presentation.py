"""Invoices a business sends, read as their customer reads them: pdftotext finds the IBAN, the payment
reference and the pay-online link; the QR code, decoded by zbar from the rendered page, is the SEPA
transfer (EUR to an IBAN) or the hosted page link; the download is `<number>.pdf`; an issued document
keeps the logo it was issued with."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.pdf.renderer import PdfRenderer
from fiscus.domain.clock import FixedClock
from fiscus.domain.logo import accept_logo
from fiscus.services.access import create_api_key
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.org_settings import set_logo, update_settings
from fiscus.services.payment_links import link_secret, payment_url
from fiscus.services.rendering import DOCUMENTS_DIR_ENV, _render_inputs, document_links, ensure_pdf
from fiscus.services.subscriptions import ItemSpec
from tests.api_support import auth, make_app
from tests.builders import Tenant, make_customer, make_tenant

BASE = "http://pay.example.test"
IBAN = "BG80BNBG96611020345678"
LOGO = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40">'
    b'<rect width="120" height="40" fill="#1f6feb"/></svg>'
)
OTHER_LOGO = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><circle cx="20" cy="20" r="20"/></svg>'
)

needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
needs_zbar = pytest.mark.skipif(
    shutil.which("zbarimg") is None or shutil.which("pdftoppm") is None, reason="zbar-tools not installed"
)


def pdftotext(path: Path) -> str:
    return subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True, text=True).stdout


def qr_code(path: Path, tmp: Path) -> str:
    """The one QR code on the first page, as zbar reads the page rendered at 200 dpi (binary mode:
    the payload's exact UTF-8 bytes, not zbar's guess at its encoding)."""
    prefix = tmp / "page"
    subprocess.run(
        ["pdftoppm", "-r", "200", "-f", "1", "-l", "1", "-png", str(path), str(prefix)], check=True
    )
    [png] = sorted(tmp.glob("page*.png"))
    out = subprocess.run(
        ["zbarimg", "--quiet", "--raw", "-Sbinary", str(png)], check=True, capture_output=True
    ).stdout
    return out.decode("utf-8").removesuffix("\n")


def _bg(db: Database, clock: FixedClock) -> Tenant:
    tenant = make_tenant(db, clock, "bg", slug="bg-present")
    update_settings(
        db,
        clock,
        tenant.org_id,
        {
            "tax_id": "175074752",
            "address": {"lines": ["ул. Витоша 1"], "city": "София", "postal_code": "1000"},
            "bank_accounts": [{"iban": IBAN, "bic": "BNBGBGSF", "bank_name": "БНБ"}],
        },
    )
    set_logo(db, clock, tenant.org_id, accept_logo(LOGO, "image/svg+xml"))
    return tenant


def _us(db: Database, clock: FixedClock) -> Tenant:
    tenant = make_tenant(db, clock, "us", slug="us-present")
    update_settings(
        db,
        clock,
        tenant.org_id,
        {
            "tax_id": "04-3190200",
            "address": {"lines": ["12 Broadway"], "city": "New York", "region": "NY", "postal_code": "10003"},
            "bank_accounts": [
                {"account_number": "000123456789", "routing_number": "021000021", "bank_name": "Chase"}
            ],
        },
    )
    return tenant


def _invoice(db: Database, clock: FixedClock, tenant: Tenant, **customer: str) -> int:
    cid = make_customer(db, clock, tenant, 1, **customer)
    return bill_order_now(
        db, clock, tenant.org_id, create_order(db, clock, tenant.org_id, cid, [ItemSpec(tenant.one_off, 2)])
    )


def _number(db: Database, doc_id: int) -> str:
    with db.read() as conn:
        return str(conn.execute(select(t.documents.c.number).where(t.documents.c.id == doc_id)).scalar_one())


def _pdf(db: Database, clock: FixedClock, tenant: Tenant, doc_id: int, store: Path) -> Path:
    links = document_links(db, clock, BASE, None)
    return ensure_pdf(db, clock, PdfRenderer(), store, tenant.org_id, doc_id, links=links)


@needs_poppler
@needs_zbar
def test_eur_invoice_prints_bank_details_reference_link_and_a_sepa_qr(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    tenant = _bg(db, clock)
    doc_id = _invoice(
        db, clock, tenant, name="Иван Петров ЕООД", locale="bg", city="Пловдив", postal_code="4000"
    )
    number = _number(db, doc_id)
    path = _pdf(db, clock, tenant, doc_id, tmp_path / "docs")
    text = pdftotext(path)
    link = payment_url(BASE, link_secret(db, clock, None), tenant.org_id, doc_id)
    assert IBAN in text.replace(" ", "")
    assert f"Основание за плащане: {number}" in text

    assert link in text, [ln for ln in text.splitlines() if "example.test" in ln]
    assert "ЕИК: 175074752" in text
    assert "ДДС №: BG175074752" in text
    assert "1000 София" in text
    qr = qr_code(path, tmp_path)
    lines = qr.split("\n")
    assert lines[:7] == ["BCD", "002", "1", "SCT", "BNBGBGSF", "Хостинг ЕООД", IBAN]
    assert lines[7].startswith("EUR")
    assert lines[-1] == number


@needs_poppler
@needs_zbar
def test_usd_invoice_qr_is_the_hosted_link_and_the_address_is_american(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    tenant = _us(db, clock)
    doc_id = _invoice(db, clock, tenant, name="Buyer LLC", locale="en")
    path = _pdf(db, clock, tenant, doc_id, tmp_path / "docs")
    text = pdftotext(path)
    link = payment_url(BASE, link_secret(db, clock, None), tenant.org_id, doc_id)
    assert "New York, NY 10003" in text
    assert "EIN: 04-3190200" in text
    assert "not registered for VAT" in text
    assert "VAT breakdown" not in text
    assert "000123456789" in text
    assert "021000021" in text
    assert qr_code(path, tmp_path) == link


@needs_poppler
def test_kazakh_seller_shows_bin_not_inn(db: Database, clock: FixedClock, tmp_path: Path) -> None:
    tenant = make_tenant(db, clock, "kz", slug="kz-present")
    update_settings(db, clock, tenant.org_id, {"tax_id": "180440012349"})
    doc_id = _invoice(db, clock, tenant, name="ТОО «Дала»", locale="ru")
    text = pdftotext(_pdf(db, clock, tenant, doc_id, tmp_path / "docs"))
    assert "БИН: 180440012349" in text
    assert "ИНН / НДС" not in text


def test_an_issued_document_keeps_its_logo(db: Database, clock: FixedClock, tmp_path: Path) -> None:
    tenant = _bg(db, clock)
    first = _invoice(db, clock, tenant)
    set_logo(db, clock, tenant.org_id, accept_logo(OTHER_LOGO, "image/svg+xml"))
    second = _invoice(db, clock, tenant)
    with db.read() as conn:
        logos = dict(
            conn.execute(
                select(t.documents.c.id, t.documents.c.seller).where(t.documents.c.id.in_([first, second]))
            ).all()
        )
    assert logos[first]["logo_sha256"] != logos[second]["logo_sha256"]
    [(_, first_vm, _)] = _render_inputs(db, tenant.org_id, [first])
    [(_, second_vm, _)] = _render_inputs(db, tenant.org_id, [second])
    assert "#1f6feb" in first_vm["logo"]["text"]  # the blue bar it was issued with
    assert "circle" in second_vm["logo"]["text"]
    assert _pdf(db, clock, tenant, first, tmp_path / "docs").read_bytes().startswith(b"%PDF")


def test_pdf_downloads_are_named_by_number(
    db: Database, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DOCUMENTS_DIR_ENV, str(tmp_path / "docs"))
    tenant = _bg(db, clock)
    doc_id = _invoice(db, clock, tenant, locale="bg")
    number = _number(db, doc_id)
    key = create_api_key(db, clock, tenant.org_id).secret
    app = make_app(db, clock)
    link = payment_url("", link_secret(db, clock, None), tenant.org_id, doc_id)
    with TestClient(app) as client:
        api = client.get(f"/api/v1/documents/{doc_id}/pdf", headers=auth(key))
        page = client.get(link).text
        hosted = client.get(f"{link}/pdf")
        forged = client.get(f"{link[:-3]}AAA/pdf")
    assert api.status_code == 200
    assert api.headers["content-disposition"] == f'inline; filename="{number}.pdf"'
    assert f'href="{link}/pdf"' in page
    assert hosted.status_code == 200
    assert hosted.content.startswith(b"%PDF")
    assert hosted.headers["content-disposition"] == f'attachment; filename="{number}.pdf"'
    assert forged.status_code == 404
