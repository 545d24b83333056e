"""The closed sets of codes the services accept, as enums for the OpenAPI document: a generated client
knows every valid country, currency, locale and time zone, and the edge refuses the rest with 422."""

from __future__ import annotations

from typing import Final
from zoneinfo import available_timezones

import iso4217
import pycountry
from babel.localedata import locale_identifiers

COUNTRIES: Final = frozenset(str(c.alpha_2) for c in pycountry.countries)
"""ISO 3166-1 alpha-2, upper case (what `services.validation.country` stores)."""
CURRENCIES: Final = frozenset(c.code for c in iso4217.Currency if c.exponent is not None)
"""ISO 4217 codes with a minor unit (`domain.money.currency` refuses funds without one)."""
LOCALES: Final = frozenset(
    form for ident in locale_identifiers() for form in (ident, ident.replace("_", "-"))
)
"""CLDR locale identifiers Babel knows, written with `_` or `-` (`services.validation.locale`)."""
TIME_ZONES: Final = frozenset(available_timezones())
"""IANA time zones of this system's tz database (`services.validation.timezone`)."""
