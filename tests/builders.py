"""Plain functions that build realistic tenants through the services, with defaults."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TypedDict

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.documents import DocumentType
from fiscus.domain.tax import TaxRounding
from fiscus.services.catalog import ProductSpec, create_price, create_product, create_variant
from fiscus.services.customers import CustomerSpec, create_customer
from fiscus.services.organizations import OrganizationSpec, SeriesSpec, create_organization, standard_rates


@dataclass
class Tenant:
    org_id: int
    product_id: int
    monthly: int
    monthly_big: int
    yearly: int
    one_off: int
    currency: str


class OrgProfile(TypedDict):
    legal_name: str
    country: str
    timezone: str
    default_currency: str
    vat_id: str | None
    rates: tuple[str, str, str | None] | None
    prices: tuple[str, str, str, str]


ORGS: dict[str, OrgProfile] = {
    "bg": {
        "legal_name": "Хостинг ЕООД",
        "country": "BG",
        "timezone": "Europe/Sofia",
        "default_currency": "EUR",
        "vat_id": "BG175074752",
        "rates": ("BG", "0.20", "0.09"),
        "prices": ("15", "30.50", "150", "9.99"),
    },
    "kz": {
        "legal_name": "Marketplace LLP",
        "country": "KZ",
        "timezone": "Asia/Almaty",
        "default_currency": "KZT",
        "vat_id": None,
        "rates": ("KZ", "0.12", None),
        "prices": ("4990", "1234.565", "49900", "1500"),
    },
    "us": {
        "legal_name": "Platform Inc.",
        "country": "US",
        "timezone": "America/New_York",
        "default_currency": "USD",
        "vat_id": None,
        "rates": None,
        "prices": ("29", "99.99", "290", "5"),
    },
    "jp": {
        "legal_name": "株式会社テスト",
        "country": "JP",
        "timezone": "Asia/Tokyo",
        "default_currency": "JPY",
        "vat_id": None,
        "rates": ("JP", "0.10", "0.08"),
        "prices": ("1980", "3333.5", "19800", "500"),
    },
    "kw": {
        "legal_name": "Kuwait Co.",
        "country": "KW",
        "timezone": "Asia/Kuwait",
        "default_currency": "KWD",
        "vat_id": None,
        "rates": ("KW", "0.05", None),
        "prices": ("4.995", "10.1235", "49.5", "1.001"),
    },
}


def make_tenant(
    db: Database,
    clock: Clock,
    kind: str = "bg",
    *,
    slug: str | None = None,
    subscription_document: DocumentType = DocumentType.INVOICE,
    order_document: DocumentType = DocumentType.INVOICE,
    auto_issue: bool = True,
    rounding: TaxRounding = TaxRounding.DOCUMENT,
    tax_inclusive: bool = False,
    facturx: bool = False,
) -> Tenant:
    spec = ORGS[kind]
    rates = spec["rates"]
    tax_rates = []
    if rates is not None:
        country, std, red = rates
        tax_rates = standard_rates(country, Decimal(std), Decimal(red) if red else None)
    org_id = create_organization(
        db,
        clock,
        OrganizationSpec(
            slug=slug or f"{kind}-org",
            legal_name=spec["legal_name"],
            country=spec["country"],
            timezone=spec["timezone"],
            default_currency=spec["default_currency"],
            vat_id=spec["vat_id"],
            vat_registered=rates is not None,
            tax_rates=tax_rates,
            subscription_document=subscription_document,
            order_document=order_document,
            auto_issue=auto_issue,
            tax_rounding=rounding,
            facturx_enabled=facturx,
            series=[
                SeriesSpec(DocumentType.INVOICE, "{seq:010}", 1590),
                SeriesSpec(DocumentType.PROFORMA, "{seq:010}", 7390),
            ],
        ),
    )
    cur = spec["default_currency"]
    monthly_p, big_p, yearly_p, one_p = spec["prices"]
    product = create_product(
        db,
        clock,
        org_id,
        ProductSpec(code="crm", name="CRM Connector", tags=["free"], modules=["finance"], extra={"k": 1}),
    )
    v1 = create_variant(db, clock, org_id, product, code="basic", name="Basic", limits=["3 users"])
    v2 = create_variant(db, clock, org_id, product, code="pro", name="Pro", limits=["10 users", "API"])
    v3 = create_variant(db, clock, org_id, product, code="addon", name="Setup", limits=[])
    return Tenant(
        org_id=org_id,
        product_id=product,
        monthly=create_price(
            db,
            clock,
            org_id,
            v1,
            currency_code=cur,
            unit_amount=monthly_p,
            interval="month",
            tax_inclusive=tax_inclusive,
        ),
        monthly_big=create_price(
            db,
            clock,
            org_id,
            v2,
            currency_code=cur,
            unit_amount=big_p,
            interval="month",
            tax_inclusive=tax_inclusive,
        ),
        yearly=create_price(db, clock, org_id, v2, currency_code=cur, unit_amount=yearly_p, interval="year"),
        one_off=create_price(db, clock, org_id, v3, currency_code=cur, unit_amount=one_p),
        currency=cur,
    )


def make_customer(db: Database, clock: Clock, tenant: Tenant, n: int = 0, **kw: str) -> int:
    country = kw.pop("country", None)
    with db.read() as conn:
        from sqlalchemy import select

        from fiscus.adapters.db import tables as t

        org_country = conn.execute(
            select(t.organizations.c.country).where(t.organizations.c.id == tenant.org_id)
        ).scalar_one()
    return create_customer(
        db,
        clock,
        tenant.org_id,
        CustomerSpec(
            name=kw.pop("name", f"Customer {n}"),
            email=kw.pop("email", f"c{n}@example.com"),
            country=country or org_country,
            **kw,
        ),
    )
