"""Setting up an instance: the first organisation (`fiscus init`) and further ones (platform admin API).

`fiscus init` makes a live organisation and, beside it, a test-mode sandbox of the same settings
(`sandbox_of` points at the live one) with one key each: test keys reach only test-mode organisations
(services/access.py), so test data stays apart from the first minute. Defaults come from the country
(currency, time zone, locale, paper size, VAT rate) so that a name and a country are enough.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final

from babel.core import get_global
from babel.numbers import get_territory_currencies
from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.errors import InvalidFieldError, InvalidStateError
from fiscus.domain.money import currency
from fiscus.domain.tax import EU_MEMBER_STATES
from fiscus.services import org_settings
from fiscus.services import validation as v
from fiscus.services.access import IssuedSecret, insert_api_key
from fiscus.services.organizations import OrganizationSpec, insert_organization, standard_rates

MAIN_ZONES: Final = {
    "US": "America/New_York",
    "CA": "America/Toronto",
    "KZ": "Asia/Almaty",
    "RU": "Europe/Moscow",
    "AU": "Australia/Sydney",
    "BR": "America/Sao_Paulo",
    "MX": "America/Mexico_City",
    "ES": "Europe/Madrid",
    "PT": "Europe/Lisbon",
    "DE": "Europe/Berlin",
}
"""Where a country has several zones, the one of its capital or largest business centre."""

STANDARD_VAT: Final = {
    "BG": ("0.20", "0.09"),
    "KZ": ("0.16", None),
    "DE": ("0.19", "0.07"),
    "FR": ("0.20", "0.055"),
    "NL": ("0.21", "0.09"),
    "AT": ("0.20", "0.10"),
    "IT": ("0.22", "0.10"),
    "ES": ("0.21", "0.10"),
    "GB": ("0.20", "0.05"),
    "RU": ("0.20", "0.10"),
}
"""Standard (and reduced) VAT rates offered as defaults; anything else is asked for."""

LOCALE_OF: Final = {"BG": "bg", "KZ": "kk", "RU": "ru"}


CURRENCY_OF: Final = {"BG": "EUR"}
"""Where babel's territory data lags (Bulgaria adopted the euro on 1 January 2026)."""


def default_currency(country: str) -> str:
    """The country's currency, among those the domain can bill (ISO 4217 with minor units)."""
    if country in CURRENCY_OF:
        return CURRENCY_OF[country]
    for code in get_territory_currencies(country):
        try:
            return currency(str(code)).code
        except InvalidFieldError:
            continue
    return "EUR"


def default_timezone(country: str) -> str:
    if country in MAIN_ZONES:
        return MAIN_ZONES[country]
    zones = sorted(z for z, c in get_global("zone_territories").items() if c == country)
    return zones[0] if zones else "UTC"


def default_locale(country: str) -> str:
    return LOCALE_OF.get(country, "en")


def default_vat_registered(country: str) -> bool:
    """US sellers charge sales tax, not VAT; everywhere else a business is usually VAT-registered."""
    return country != "US"


def default_vat_rates(country: str) -> tuple[Decimal, Decimal | None] | None:
    found = STANDARD_VAT.get(country)
    if found is None:
        return None
    return Decimal(found[0]), Decimal(found[1]) if found[1] else None


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48]
    return slug or "org"


@dataclass(frozen=True, slots=True)
class NewOrganization:
    """What `fiscus init` or the admin API is told; everything else defaults from the country."""

    legal_name: str
    country: str
    slug: str | None = None
    default_currency: str | None = None
    timezone: str | None = None
    locale: str | None = None
    vat_registered: bool | None = None
    vat_rate: Decimal | None = None
    reduced_vat_rate: Decimal | None = None
    vat_id: str | None = None
    tax_id: str | None = None
    email: str | None = None
    mode: str = "live"
    settings: dict[str, Any] | None = None
    """Further settings in the API's shape (address, bank_accounts, footers, …), applied at creation."""


def spec_of(new: NewOrganization) -> OrganizationSpec:
    country = v.country("country", new.country)
    registered = default_vat_registered(country) if new.vat_registered is None else new.vat_registered
    rates = None
    if registered:
        standard = new.vat_rate
        reduced = new.reduced_vat_rate
        if standard is None:
            found = default_vat_rates(country)
            if found is None:
                raise InvalidFieldError(
                    "vat_rate", f"no default VAT rate for {country}; give the standard rate"
                )
            standard, reduced = found
        for name, rate in (("vat_rate", standard), ("reduced_vat_rate", reduced)):
            if rate is not None and not Decimal(0) <= rate < Decimal(1):
                raise InvalidFieldError(name, "is a fraction between 0 and 1 (0.20 for 20 %)")
        rates = standard_rates(country, standard, reduced)
    if registered and country in EU_MEMBER_STATES and not new.vat_id:
        raise InvalidFieldError("vat_id", "a VAT-registered EU organisation must print its VAT ID")
    return OrganizationSpec(
        slug=new.slug or slugify(new.legal_name),
        legal_name=new.legal_name,
        country=country,
        timezone=new.timezone or default_timezone(country),
        default_currency=(new.default_currency or default_currency(country)).upper(),
        vat_registered=registered,
        vat_id=new.vat_id or None,
        tax_id=new.tax_id or None,
        email=new.email or None,
        locale=new.locale or default_locale(country),
        tax_rates=rates or (),
        mode=new.mode,
    )


@dataclass(frozen=True, slots=True)
class Created:
    organization_id: int
    key: IssuedSecret
    sandbox_id: int | None = None
    test_key: IssuedSecret | None = None


def _apply_settings(
    conn: Any, clock: Clock, org_id: int, settings: dict[str, Any] | None, actor: str
) -> None:
    if not settings:
        return
    row = dict(conn.execute(select(t.organizations).where(t.organizations.c.id == org_id)).mappings().one())
    values = org_settings.validate_changes(row, settings)
    rates = values.pop("vat_rates", None)
    if values:
        conn.execute(t.organizations.update().where(t.organizations.c.id == org_id).values(**values))
    if rates is not None:
        org_settings.store_rates(conn, org_id, str(row["country"]), rates)


def create_organization(db: Database, clock: Clock, new: NewOrganization, *, actor: str) -> Created:
    """One organisation (of `new.mode`) and a first API key for it, in one transaction."""
    spec = spec_of(new)
    with db.write() as conn:
        org_id = insert_organization(conn, clock, spec, actor=actor)
        _apply_settings(conn, clock, org_id, new.settings, actor)
        key = insert_api_key(conn, clock, org_id, name="initial", actor=actor)
    return Created(org_id, key)


def initialize(db: Database, clock: Clock, new: NewOrganization, *, actor: str = "cli:init") -> Created:
    """The instance's first organisation, live, with its test-mode sandbox and a key for each."""
    spec = spec_of(new)
    with db.write() as conn:
        existing = conn.execute(select(func.count()).select_from(t.organizations)).scalar_one()
        if existing:
            raise InvalidStateError(
                f"this instance already has {existing} organisation(s); add more with an admin key "
                "(fiscus admin-keys create, then POST /api/v1/organizations)"
            )
        live_id = insert_organization(conn, clock, replace(spec, mode="live"), actor=actor)
        sandbox_id = insert_organization(
            conn,
            clock,
            replace(spec, mode="test", slug=sandbox_slug(spec.slug), sandbox_of=live_id),
            actor=actor,
        )
        for org_id in (live_id, sandbox_id):
            _apply_settings(conn, clock, org_id, new.settings, actor)
        live_key = insert_api_key(conn, clock, live_id, name="init", actor=actor)
        test_key = insert_api_key(conn, clock, sandbox_id, name="init", actor=actor)
    return Created(live_id, live_key, sandbox_id, test_key)


def sandbox_slug(slug: str) -> str:
    """The slug of an organisation's test-mode sandbox (slugs are at most 64 characters)."""
    return f"{slug[:59]}-test"


def create_with_sandbox(db: Database, clock: Clock, spec: OrganizationSpec, *, actor: str) -> tuple[int, int]:
    """A live organisation from `spec` and its test-mode sandbox, in one transaction, without keys:
    (live id, sandbox id). The demo seeds its data into the sandbox, so it all shows TEST."""
    with db.write() as conn:
        live_id = insert_organization(conn, clock, replace(spec, mode="live", sandbox_of=None), actor=actor)
        sandbox_id = insert_organization(
            conn,
            clock,
            replace(spec, mode="test", slug=sandbox_slug(spec.slug), sandbox_of=live_id),
            actor=actor,
        )
    return live_id, sandbox_id
