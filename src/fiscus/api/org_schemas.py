"""Request and response shapes of organisations and their settings (`/api/v1/organization[s]`).

Kept apart from schemas.py (which other resources share). Updates are partial: a field left out is
unchanged, a null clears an optional one. Field checks that need a country or a checksum (VAT number,
national ID, IBAN/BIC) are the service's, and come back as the same RFC 9457 problems naming the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from fiscus.api.schemas import Country, Currency, In, Out, Quantity

DocumentKind = Literal["invoice", "proforma"]
Locale = Literal["en", "bg", "ru", "kk"]
PaperSize = Literal["a4", "letter"]


class SettingsAddressIn(In):
    lines: list[str] | None = Field(None, max_length=2, description="up to two street lines")
    city: str | None = Field(None, max_length=100)
    postal_code: str | None = Field(None, max_length=20)
    region: str | None = Field(None, max_length=100, description="state, province or oblast")


class BankAccountIn(In):
    label: str | None = Field(None, max_length=100)
    bank_name: str | None = Field(None, max_length=200)
    iban: str | None = Field(None, max_length=42, description="checked by python-stdnum")
    bic: str | None = Field(None, max_length=14, description="must match the IBAN's country")
    account_number: str | None = Field(None, max_length=40, description="a local account, instead of an IBAN")
    routing_number: str | None = Field(None, max_length=20, description="US ABA routing number")
    currency: Currency | None = None


class VatRatesIn(In):
    standard: Quantity = Field(description='standard rate as a fraction, e.g. "0.20"')
    reduced: Quantity | None = Field(None, description='e.g. "0.09"')


class VatRatesOut(Out):
    standard: str | None
    reduced: str | None


class OrganizationPatchIn(In):
    legal_name: str | None = Field(None, min_length=1, max_length=200)
    trading_name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=254)
    address: SettingsAddressIn | None = None
    country: Country | None = None
    vat_registered: bool | None = None
    vat_id: str | None = Field(None, max_length=32, description="VAT number, checked for the country")
    vat_rates: VatRatesIn | None = Field(None, description="the country's rates for the next documents")
    tax_id: str | None = Field(
        None, max_length=32, description="national company ID: BIN (KZ), EIK (BG), EIN (US), or free form"
    )
    default_currency: Currency | None = None
    locale: Locale | None = None
    timezone: str | None = Field(None, max_length=64, description="IANA time zone")
    paper_size: PaperSize | None = Field(None, description="null: follow the country (Letter in the US…)")
    payment_terms_days: int | None = Field(None, ge=0, le=365)
    bank_accounts: list[BankAccountIn] | None = Field(None, max_length=5, description="replaces the list")
    footers: dict[str, str] | None = Field(
        None, description='footer/legal text per locale, merged; "" removes one: {"bg": "…"}'
    )
    subscription_document: DocumentKind | None = None
    order_document: DocumentKind | None = None
    auto_issue: bool | None = None
    tax_rounding: Literal["document", "line"] | None = None
    facturx_enabled: bool | None = None
    cancel_issued_ahead: Literal["void", "credit_note"] | None = Field(
        None,
        description="cancelling a subscription now: void a document already issued for a later period "
        "(only while nothing was paid and no card payment is in flight), else a full credit note",
    )


class OrganizationCreateIn(In):
    legal_name: str = Field(min_length=1, max_length=200)
    country: Country
    slug: str | None = Field(None, min_length=1, max_length=64)
    mode: Literal["live", "test"] = "live"
    default_currency: Currency | None = None
    timezone: str | None = Field(None, max_length=64)
    locale: Locale | None = None
    vat_registered: bool | None = Field(None, description="default: false in the US, true elsewhere")
    vat_rate: Quantity | None = Field(None, description='standard VAT rate as a decimal string, e.g. "0.20"')
    reduced_vat_rate: Quantity | None = Field(None, description='e.g. "0.09"')
    vat_id: str | None = Field(None, max_length=32)
    tax_id: str | None = Field(None, max_length=32)
    email: str | None = Field(None, max_length=254)
    settings: OrganizationPatchIn | None = Field(None, description="any further settings, as in an update")


class SeriesIn(In):
    format: str | None = Field(
        None, max_length=64, description="e.g. INV-{YYYY}-{seq:06}; issued numbers never change"
    )
    next_value: int | None = Field(None, ge=1, description="move the counter forward (never back)")


class SeriesOut(Out):
    document_type: str
    series: str
    format: str
    next_value: int
    start_value: int


class SettingsAddressOut(Out):
    lines: list[str]
    city: str
    postal_code: str
    region: str
    country: str


class BankAccountOut(Out):
    label: str
    bank_name: str
    iban: str | None
    bic: str | None
    account_number: str | None
    routing_number: str | None
    currency: str | None


class LogoOut(Out):
    sha256: str
    content_type: str
    width: int | None
    height: int | None
    url: str


class OrganizationOut(Out):
    id: int
    object: Literal["organization"] = "organization"
    slug: str
    mode: Literal["live", "test"]
    livemode: bool = Field(description="Stripe's name for mode == live")
    sandbox_of: int | None
    legal_name: str
    trading_name: str | None
    email: str | None
    address: SettingsAddressOut
    country: str
    vat_registered: bool
    vat_id: str | None
    vat_rates: VatRatesOut
    tax_id: str | None
    tax_id_type: str | None = Field(description="kz_bin, bg_eik, us_ein, or null where unknown")
    default_currency: str
    locale: str
    timezone: str
    paper_size: PaperSize
    paper_size_from_country: bool
    payment_terms_days: int
    bank_accounts: list[BankAccountOut]
    footers: dict[str, str]
    logo: LogoOut | None
    subscription_document: str
    order_document: str
    auto_issue: bool
    tax_rounding: str
    facturx_enabled: bool
    cancel_issued_ahead: str
    number_series: list[SeriesOut]
    payment_settings_url: str = Field(description="payment settings have their own endpoint")
    created_at: datetime
    updated_at: datetime | None


class OrganizationListOut(Out):
    object: Literal["list"] = "list"
    data: list[OrganizationOut]
    has_more: bool
    url: str


class IssuedKeyOut(Out):
    id: int
    prefix: str
    secret: str = Field(description="shown once; only its hash is stored")


class OrganizationCreatedOut(OrganizationOut):
    api_key: IssuedKeyOut
