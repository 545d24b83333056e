"""A customer's side of the hosted payment page: without a browser (read the page's card form, post it
to the gateway process as a browser would, follow the gateway's redirect back into Fiscus), and the
few things a test needs to drive it in Debian's Chromium instead."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import httpx2
from fastapi.testclient import TestClient
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.services.billing_run import run_billing
from fiscus.services.customers import CustomerSpec, create_customer
from fiscus.services.payment_links import link_secret, payment_path
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.builders import Tenant, make_tenant

if TYPE_CHECKING:
    from playwright.sync_api import Page

PUBLIC_URL = "http://127.0.0.1:9"
"""The Fiscus base URL the page puts in its return URL (loopback, so the gateway accepts it)."""
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
EN = ("Name on card", "Card number", "Month (MM)", "Year (YYYY)", "Security code (CVC)")


def fill_card(page: Page, number: str, labels: tuple[str, ...] = EN) -> None:
    """Type the card as a person does, finding each field by its visible label."""
    values = ("Ada Lovelace", " ".join(re.findall("....", number)), "12", "2099", "123")
    for label, value in zip(labels, values, strict=True):
        page.get_by_label(label, exact=True).fill(value)


@dataclass
class Form:
    action: str = ""
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", "")))
        elif tag == "input" and self.forms and "name" in a:
            self.forms[-1].fields[a["name"]] = a.get("value", "")


def card_form(html: str) -> Form | None:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms[0] if parser.forms else None


def pay_with(
    client: TestClient,
    html: str,
    number: str,
    *,
    exp_month: str = "12",
    exp_year: str = "2099",
    cvc: str = "123",
    state: str | None = None,
) -> httpx2.Response:
    """Submit the page's card form to the gateway and follow its redirect back to Fiscus's return URL
    (not further): the response is Fiscus's answer to the return."""
    form = card_form(html)
    assert form is not None, "the page has no card form"
    data = {
        **form.fields,
        "holder": "Ada Lovelace",
        "card_number": number,
        "exp_month": exp_month,
        "exp_year": exp_year,
        "cvc": cvc,
    }
    if state is not None:
        data["state"] = state
    gateway_answer = httpx.post(form.action, data=data, follow_redirects=False)
    assert gateway_answer.status_code == 303, gateway_answer.text
    return follow(client, gateway_answer.headers["location"])


def follow(client: TestClient, location: str) -> httpx2.Response:
    parts = urlsplit(location)
    return client.get(f"{parts.path}?{parts.query}" if parts.query else parts.path, follow_redirects=False)


def billed_document(
    db: Database,
    clock: FixedClock,
    kind: str = "bg",
    *,
    slug: str | None = None,
    tenant: Tenant | None = None,
    document: DocumentType = DocumentType.INVOICE,
    locale: str | None = None,
) -> tuple[Tenant, int, int]:
    """A tenant (made unless given), a new customer of it with a monthly subscription, and the issued
    document its first billing run made: (tenant, customer id, document id)."""
    tenant = tenant or make_tenant(db, clock, kind, slug=slug, subscription_document=document)
    with db.read() as conn:
        n = conn.execute(select(t.customers.c.id).where(t.customers.c.organization_id == tenant.org_id)).all()
        country = conn.execute(
            select(t.organizations.c.country).where(t.organizations.c.id == tenant.org_id)
        ).scalar_one()
    customer_id = create_customer(
        db,
        clock,
        tenant.org_id,
        CustomerSpec(
            name=f"Buyer {len(n)} <b>&amp;</b>",
            email=f"buyer{len(n)}@example.com",
            country=country,
            locale=locale,
            address_line1="1 Main Street",
            city="Springfield",
            postal_code="1000",
        ),
    )
    create_subscription(db, clock, tenant.org_id, customer_id, [ItemSpec(tenant.monthly, 2)])
    run_billing(db, clock)
    with db.read() as conn:
        doc_id = conn.execute(
            select(t.documents.c.id)
            .where(t.documents.c.customer_id == customer_id)
            .order_by(t.documents.c.id.desc())
            .limit(1)
        ).scalar_one()
    return tenant, customer_id, int(doc_id)


def link_of(db: Database, clock: FixedClock, org_id: int, document_id: int) -> str:
    """The document's hosted payment page path, signed as Fiscus signs it."""
    return payment_path(link_secret(db, clock, None), org_id, document_id)
