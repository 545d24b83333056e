"""Organisations (tenants): legal identity, time zone, currency, tax rates and number series."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import DEFAULT_SERIES, append_audit, audit_row
from fiscus.adapters.db.engine import Database
from fiscus.domain import organization as o
from fiscus.domain.clock import Clock
from fiscus.domain.documents import DocumentType
from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.money import currency
from fiscus.domain.numbering import validate_format
from fiscus.domain.tax import EU_MEMBER_STATES, TaxCategory, TaxRate, TaxRounding, normalize_vat_id
from fiscus.services import validation as v

DEFAULT_FORMATS = {
    DocumentType.INVOICE: "INV-{YYYY}-{seq:06}",
    DocumentType.PROFORMA: "PRO-{YYYY}-{seq:06}",
    DocumentType.CREDIT_NOTE: "CN-{YYYY}-{seq:06}",
}


@dataclass(frozen=True, slots=True)
class SeriesSpec:
    document_type: DocumentType
    format: str
    start: int = 1
    series: str = DEFAULT_SERIES


@dataclass(slots=True)
class OrganizationSpec:
    slug: str
    legal_name: str
    country: str
    timezone: str
    default_currency: str
    vat_registered: bool = True
    vat_id: str | None = None
    tax_id: str | None = None
    email: str | None = None
    address_line1: str = ""
    address_line2: str = ""
    city: str = ""
    postal_code: str = ""
    locale: str = "en"
    tax_rates: Sequence[TaxRate] = ()
    series: Sequence[SeriesSpec] = ()
    tax_rounding: TaxRounding = TaxRounding.DOCUMENT
    subscription_document: DocumentType = DocumentType.INVOICE
    order_document: DocumentType = DocumentType.INVOICE
    auto_issue: bool = True
    payment_terms_days: int = 14
    mode: str = "live"
    facturx_enabled: bool = False
    trading_name: str | None = None
    region: str = ""
    paper_size: str | None = None
    bank_accounts: Sequence[dict[str, Any]] = ()
    footers: dict[str, str] = field(default_factory=dict)
    sandbox_of: int | None = None


def create_organization(db: Database, clock: Clock, spec: OrganizationSpec, *, actor: str = "cli") -> int:
    """Create a tenant with its rates and a default number series per document type."""
    with db.write() as conn:
        return insert_organization(conn, clock, spec, actor=actor)


def insert_organization(conn: Connection, clock: Clock, spec: OrganizationSpec, *, actor: str = "cli") -> int:
    """`create_organization` in the caller's transaction (`fiscus init` makes two and their keys at once)."""
    slug = v.text("slug", spec.slug, max_len=64)
    country = v.country("country", spec.country)
    currency(spec.default_currency, "default_currency")
    v.timezone("timezone", spec.timezone)
    v.locale("locale", spec.locale)
    vat_id = normalize_vat_id(spec.vat_id, country) if spec.vat_id else None
    if spec.vat_registered and country in EU_MEMBER_STATES and not vat_id:
        raise InvalidFieldError("vat_id", "a VAT-registered EU organisation must print its VAT ID")
    if spec.facturx_enabled and spec.tax_rounding is TaxRounding.LINE:
        raise InvalidFieldError(
            "facturx_enabled", "EN 16931 (BR-S-09) needs tax rounded per rate over the document, not per line"
        )
    if spec.mode not in ("live", "test"):
        raise InvalidFieldError("mode", "must be live or test")
    if not 0 <= spec.payment_terms_days <= 365:
        raise InvalidFieldError("payment_terms_days", "must be between 0 and 365")
    tax_id = o.normalize_national_id(spec.tax_id, country) if spec.tax_id else None
    paper = o.paper_size("paper_size", spec.paper_size) if spec.paper_size else None
    accounts = [a.as_dict() for a in o.bank_accounts("bank_accounts", list(spec.bank_accounts), country)]
    footers = o.footers("footers", spec.footers)
    for doc_type in (spec.subscription_document, spec.order_document):
        if doc_type is DocumentType.CREDIT_NOTE:
            raise InvalidFieldError("subscription_document", "must be invoice or proforma")
    series = {(s.document_type, s.series): s for s in spec.series}
    for doc_type, fmt in DEFAULT_FORMATS.items():
        series.setdefault((doc_type, DEFAULT_SERIES), SeriesSpec(doc_type, fmt))
    for i, s in enumerate(series.values()):
        validate_format(s.format, f"series.{i}.format")
        if s.start < 1:
            raise InvalidFieldError(f"series.{i}.start", "must be at least 1")
    now = clock.now()
    org_id = conn.execute(
        insert(t.organizations)
        .values(
            slug=slug,
            legal_name=v.text("legal_name", spec.legal_name),
            email=v.email("email", spec.email) if spec.email else None,
            address_line1=spec.address_line1,
            address_line2=spec.address_line2,
            city=spec.city,
            postal_code=spec.postal_code,
            country=country,
            vat_id=vat_id,
            tax_id=tax_id,
            trading_name=v.text("trading_name", spec.trading_name, allow_empty=True) or None
            if spec.trading_name
            else None,
            region=v.text("region", spec.region, max_len=100, allow_empty=True),
            paper_size=paper,
            bank_accounts=accounts,
            footers=footers,
            sandbox_of=spec.sandbox_of,
            timezone=spec.timezone,
            default_currency=spec.default_currency,
            locale=spec.locale,
            vat_registered=spec.vat_registered,
            tax_rounding=spec.tax_rounding.value,
            subscription_document=spec.subscription_document.value,
            order_document=spec.order_document.value,
            auto_issue=spec.auto_issue,
            payment_terms_days=spec.payment_terms_days,
            mode=spec.mode,
            facturx_enabled=spec.facturx_enabled,
            created_at=now,
        )
        .returning(t.organizations.c.id)
    ).scalar_one()
    conn.execute(
        insert(t.number_series),
        [
            {
                "organization_id": org_id,
                "document_type": s.document_type.value,
                "series": s.series,
                "format": s.format,
                "next_value": s.start,
                "start_value": s.start,
            }
            for s in series.values()
        ],
    )
    if spec.tax_rates:
        conn.execute(
            insert(t.tax_rates),
            [
                {
                    "organization_id": org_id,
                    "country": v.country(f"tax_rates.{i}.country", r.country),
                    "category": TaxCategory(r.category).value,
                    "rate": r.rate,
                    "note": r.note,
                }
                for i, r in enumerate(spec.tax_rates)
            ],
        )
    append_audit(
        conn,
        [audit_row(org_id, "organization", org_id, "created", actor, now, None, {"slug": slug})],
    )
    return int(org_id)


def standard_rates(country: str, standard: Decimal, reduced: Decimal | None = None) -> list[TaxRate]:
    """A country's usual rate set: standard, optionally reduced, zero, and exempt with its note."""
    rates = [
        TaxRate(country, TaxCategory.STANDARD, standard),
        TaxRate(country, TaxCategory.ZERO, Decimal(0), "Zero-rated supply"),
        TaxRate(country, TaxCategory.EXEMPT, Decimal(0), "Exempt from VAT"),
    ]
    if reduced is not None:
        rates.append(TaxRate(country, TaxCategory.REDUCED, reduced))
    return rates
