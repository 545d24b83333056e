"""Request and response shapes of organisations and their settings (`/api/v1/organization[s]`).

Kept apart from schemas.py (which other resources share). Updates are partial: a field left out is
unchanged, a null clears an optional one. Field checks that need a country or a checksum (VAT number,
national ID, IBAN/BIC) are the service's, and come back as the same RFC 9457 problems naming the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import MISSING, Field

from fiscus.api.fields import Email, Text, TimeZone
from fiscus.api.schemas import Country, Currency, In, Out, Quantity
from fiscus.domain.organization import MAX_FOOTER_CHARS

DocumentKind = Literal["invoice", "proforma"]
Locale = Literal["en", "bg", "ru", "kk"]
PaperSize = Literal["a4", "letter"]
RATE_PATTERN: Final = r"^0(\.[0-9]{1,12})?$"
Rate = Annotated[str, Field(pattern=RATE_PATTERN, examples=["0.20"])]
"""A VAT rate as a fraction in [0, 1) with at most 12 decimals: "0.20" for 20 %."""
SERIES_PATTERN: Final = r"^[A-Za-z0-9_-]{1,32}$"
_PLAIN: Final = r"(?:[^{}]|\{(?:YYYY|YY|MM)\})*"
FORMAT_PATTERN: Final = rf"^{_PLAIN}\{{seq(?::0[0-9]{{1,2}})?\}}{_PLAIN}$"
"""A number format as the service checks it: exactly one {seq} or {seq:0N}, other braces only around
{YYYY}, {YY} or {MM}."""
ClearableEmail = Email | Literal[""]
"""An email address, or "" (like null) to clear it."""
FooterText = Annotated[str, Field(max_length=MAX_FOOTER_CHARS)]
"""Footer text per locale (stored stripped); "" removes that locale's footer."""


class SettingsAddressIn(In):
    lines: list[Annotated[str, Field(max_length=200)]] | MISSING = Field(
        MISSING, max_length=2, description="up to two street lines; the list replaces both"
    )
    city: str | None = Field(None, max_length=100, description='null or "": cleared')
    postal_code: str | None = Field(None, max_length=20)
    region: str | None = Field(None, max_length=100, description="state, province or oblast")


class BankAccountIn(In):
    """Exactly one of `iban` and `account_number`; the checksums are the service's (python-stdnum)."""

    label: str | None = Field(None, max_length=100)
    bank_name: str | None = Field(None, max_length=200)
    iban: str | None = Field(None, max_length=42, description="checked by python-stdnum")
    bic: str | None = Field(None, max_length=14, description="must match the IBAN's country")
    account_number: str | None = Field(None, max_length=40, description="a local account, instead of an IBAN")
    routing_number: str | None = Field(
        None, max_length=20, description="US ABA routing number, for an organisation in the US only"
    )
    currency: Currency | None = None


class VatRatesIn(In):
    standard: Rate | None = Field(
        None, description='standard rate as a fraction, e.g. "0.20"; left out or null: unchanged'
    )
    reduced: Rate | None = Field(None, description='e.g. "0.09"; left out or null: unchanged')


class VatRatesOut(Out):
    standard: str | None
    reduced: str | None


class OrganizationPatchIn(In):
    """Every field may be left out (unchanged); only the fields typed nullable clear with null.

    A change that contradicts the organisation's other settings (VAT-registered in the EU without a
    VAT ID, Factur-X with tax rounded per line, no standard rate while VAT-registered) is a 409
    `field_conflict` naming the field: the same change may be fine for another organisation."""

    legal_name: Text | MISSING = Field(MISSING, min_length=1, max_length=200)
    trading_name: str | None = Field(None, max_length=200, description='null or "": cleared')
    email: ClearableEmail | None = Field(None, description='null or "": cleared')
    address: SettingsAddressIn | MISSING = MISSING
    country: Country | MISSING = MISSING
    vat_registered: bool | MISSING = MISSING
    vat_id: str | None = Field(
        None, max_length=32, description='VAT number, checked for the country; null or "": cleared'
    )
    vat_rates: VatRatesIn | MISSING = Field(MISSING, description="the country's rates for the next documents")
    tax_id: str | None = Field(
        None,
        max_length=32,
        description="national company ID, checked for the country: BIN (KZ), EIK (BG), EIN (US), else 2-32 "
        'letters or digits; null or "": cleared',
    )
    default_currency: Currency | MISSING = MISSING
    locale: Locale | MISSING = MISSING
    timezone: TimeZone | MISSING = Field(MISSING, description="IANA time zone")
    paper_size: PaperSize | None = Field(None, description="null: follow the country (Letter in the US…)")
    payment_terms_days: int | MISSING = Field(MISSING, ge=0, le=365)
    bank_accounts: list[BankAccountIn] | None = Field(
        None, max_length=5, description="replaces the list; null: no accounts"
    )
    footers: dict[Locale, FooterText] | None = Field(
        None, description='footer/legal text per locale, merged; "" removes one, null all: {"bg": "…"}'
    )
    subscription_document: DocumentKind | MISSING = MISSING
    order_document: DocumentKind | MISSING = MISSING
    auto_issue: bool | MISSING = MISSING
    tax_rounding: Literal["document", "line"] | MISSING = MISSING
    facturx_enabled: bool | MISSING = MISSING
    cancel_issued_ahead: Literal["void", "credit_note"] | MISSING = Field(
        MISSING,
        description="cancelling a subscription now: void a document already issued for a later period "
        "(only while nothing was paid and no card payment is in flight), else a full credit note",
    )
    customer_promotion_codes: bool | MISSING = Field(
        MISSING,
        description="customers may enter a promotion code in the portal (for their subscription's next "
        "invoices) and on the hosted page of an open proforma (reissued with the discount); "
        "default false",
    )


class OrganizationCreateIn(In):
    legal_name: Text = Field(min_length=1, max_length=200)
    country: Country
    slug: str | None = Field(None, min_length=1, max_length=64)
    mode: Literal["live", "test"] = "live"
    default_currency: Currency | None = None
    timezone: TimeZone | None = None
    locale: Locale | None = None
    vat_registered: bool | None = Field(None, description="default: false in the US, true elsewhere")
    vat_rate: Quantity | None = Field(None, description='standard VAT rate as a decimal string, e.g. "0.20"')
    reduced_vat_rate: Quantity | None = Field(None, description='e.g. "0.09"')
    vat_id: str | None = Field(None, max_length=32)
    tax_id: str | None = Field(None, max_length=32)
    email: str | None = Field(None, max_length=254)
    settings: OrganizationPatchIn | None = Field(None, description="any further settings, as in an update")


class SeriesIn(In):
    format: Annotated[str, Field(min_length=1, max_length=64, pattern=FORMAT_PATTERN)] | None = Field(
        None,
        description="e.g. INV-{YYYY}-{seq:06}: exactly one {seq} or {seq:0N}, and {YYYY}, {YY}, {MM}; "
        "issued numbers never change. Required to create a series (else 409); null: unchanged",
    )
    next_value: int | None = Field(
        None, ge=1, le=10**15, description="move the counter forward (never back: 409); null: unchanged"
    )


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
    customer_promotion_codes: bool
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
