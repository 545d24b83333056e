"""Renders the README's pictures: a US, a Bulgarian and a Kazakh invoice (PDF → PNG with pdftoppm) and a
hosted payment page (HTML → PNG with headless Chromium), from a throwaway SQLite database.

    PYTHONPATH=. .venv/bin/python docs/images/render.py
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.migrations import upgrade
from fiscus.adapters.pdf.renderer import PdfRenderer
from fiscus.domain.clock import FixedClock
from fiscus.domain.logo import accept_logo
from fiscus.services.org_settings import set_logo, update_settings
from fiscus.services.billing_run import run_billing
from fiscus.services.payment_links import link_secret, payment_path
from fiscus.services.rendering import document_links, ensure_pdf
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.api_support import make_app
from tests.builders import Tenant, make_customer, make_tenant

OUT = Path(__file__).resolve().parent
BASE = "https://billing.example.com"


def logo(text: str, color: str) -> bytes:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="180" height="48" viewBox="0 0 180 48">'
        f'<rect width="48" height="48" rx="10" fill="{color}"/>'
        f'<text x="24" y="33" font-size="26" text-anchor="middle" fill="#fff" font-family="DejaVu Sans">'
        f"{text[0]}</text>"
        f'<text x="58" y="32" font-size="20" fill="{color}" font-family="DejaVu Sans">{text}</text></svg>'
    ).encode()


def setup(db: Database, clock: FixedClock, kind: str, settings: dict[str, object], mark: str, color: str) -> Tenant:
    tenant = make_tenant(db, clock, kind, slug=f"{kind}-images")
    update_settings(db, clock, tenant.org_id, settings)
    set_logo(db, clock, tenant.org_id, accept_logo(logo(mark, color), "image/svg+xml"))
    return tenant


def invoice(db: Database, clock: FixedClock, tenant: Tenant, items: list[ItemSpec], **customer: str) -> int:
    """A subscription to `items`, billed by a billing run: the invoice a customer gets each month."""
    cid = make_customer(db, clock, tenant, 1, **customer)
    create_subscription(db, clock, tenant.org_id, cid, items)
    run_billing(db, clock)
    with db.read() as conn:
        d = t.documents.c
        return int(conn.execute(select(d.id).where(d.customer_id == cid).order_by(d.id.desc()).limit(1)).scalar_one())


def to_png(pdf: Path, name: str) -> None:
    subprocess.run(["pdftoppm", "-r", "110", "-f", "1", "-l", "1", "-png", "-singlefile", str(pdf), str(OUT / name)], check=True)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="fiscus-images-"))
    url = f"sqlite:///{work / 'images.db'}"
    upgrade(url)
    db = Database(url)
    clock = FixedClock(datetime(2026, 11, 2, 9, 30, tzinfo=UTC))
    renderer = PdfRenderer()
    links = document_links(db, clock, BASE, None)
    us = setup(
        db,
        clock,
        "us",
        {
            "trading_name": "Platform",
            "tax_id": "04-3190200",
            "address": {"lines": ["12 Broadway, Suite 400"], "city": "New York", "region": "NY", "postal_code": "10003"},
            "bank_accounts": [
                {"bank_name": "Chase", "account_number": "000123456789", "routing_number": "021000021"}
            ],
            "footers": {"en": "Platform Inc. · 12 Broadway, New York · billing@platform.example"},
        },
        "Platform",
        "#1f6feb",
    )
    bg = setup(
        db,
        clock,
        "bg",
        {
            "tax_id": "175074752",
            "address": {"lines": ["ул. Витоша 1"], "city": "София", "postal_code": "1000"},
            "bank_accounts": [{"iban": "BG80BNBG96611020345678", "bic": "BNBGBGSF", "bank_name": "БНБ"}],
            "footers": {"bg": "Благодарим ви за доверието!"},
        },
        "Хостинг",
        "#0a7d4f",
    )
    kz = setup(
        db,
        clock,
        "kz",
        {
            "tax_id": "180440012349",
            "address": {"lines": ["пр. Абая 10, офис 5"], "city": "Алматы", "postal_code": "050000"},
            "bank_accounts": [{"iban": "KZ86125KZT5004100100", "bic": "KCJBKZKX", "bank_name": "АО «Банк ЦентрКредит»"}],
        },
        "Marketplace",
        "#b3261e",
    )
    docs = {
        "invoice-us": (us, invoice(db, clock, us, [ItemSpec(us.monthly, 3), ItemSpec(us.monthly_big, 1)], name="Northwind LLC", locale="en", address_line1="500 Market St", city="San Francisco", postal_code="94105")),
        "invoice-bg": (bg, invoice(db, clock, bg, [ItemSpec(bg.monthly, 2), ItemSpec(bg.monthly_big, 1)], name="Иван Петров ЕООД", locale="bg", address_line1="бул. България 12", city="Пловдив", postal_code="4000")),
        "invoice-kz": (kz, invoice(db, clock, kz, [ItemSpec(kz.monthly, 1), ItemSpec(kz.monthly_big, 2)], name="ТОО «Дала»", locale="ru", address_line1="ул. Кенесары 40", city="Астана", postal_code="010000")),
    }
    for name, (tenant, doc_id) in docs.items():
        to_png(ensure_pdf(db, clock, renderer, work / "docs", tenant.org_id, doc_id, links=links), name)
    tenant, doc_id = docs["invoice-bg"]
    with TestClient(make_app(db, clock, gateway_url="http://127.0.0.1:9")) as client:
        html = client.get(payment_path(link_secret(db, clock, None), tenant.org_id, doc_id)).text
    page = work / "page.html"
    page.write_text(html, encoding="utf-8")
    chromium = shutil.which("chromium") or "chromium"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,1500",
         f"--screenshot={OUT / 'hosted-page.png'}", page.as_uri()],
        check=True,
        capture_output=True,
    )
    db.dispose()
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
