"""Checks on input that services share; each names the field at fault."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pycountry
from babel import Locale, UnknownLocaleError

from fiscus.domain.documents import MAX_QUANTITY, MAX_UNIT_AMOUNT
from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.money import to_decimal

WHITESPACE: Final = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
r"""Python's `\s` (what str.strip() removes) spelled out, so the same class means the same in an
OpenAPI (ECMA 262) pattern."""
EMAIL: Final = re.compile(rf"^[^@{WHITESPACE}]{{1,64}}@[^@{WHITESPACE}]+\.[^@{WHITESPACE}]+$")
MAX_DECIMALS: Final = 12


def text(field: str, value: str, *, max_len: int = 200, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidFieldError(field, "must be a string")
    value = value.strip()
    if not value and not allow_empty:
        raise InvalidFieldError(field, "must not be empty")
    if len(value) > max_len:
        raise InvalidFieldError(field, f"must be at most {max_len} characters")
    return value


def country(field: str, value: str) -> str:
    code = (value or "").strip().upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise InvalidFieldError(field, f"'{value}' is not an ISO 3166-1 alpha-2 country code")
    return code


def timezone(field: str, value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidFieldError(field, f"'{value}' is not an IANA time zone") from None
    return value


def locale(field: str, value: str) -> str:
    try:
        Locale.parse(value.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        raise InvalidFieldError(field, f"'{value}' is not a known locale") from None
    return value


def email(field: str, value: str) -> str:
    value = text(field, value, max_len=254)
    if not EMAIL.match(value):
        raise InvalidFieldError(field, f"'{value}' is not an email address")
    return value


def decimal(field: str, value: object, *, minimum: Decimal | None = None, exclusive: bool = False) -> Decimal:
    try:
        result = to_decimal(value, field)
    except TypeError as exc:
        raise InvalidFieldError(field, str(exc).split(": ", 1)[-1]) from None
    exponent = result.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMALS:
        raise InvalidFieldError(field, f"must have at most {MAX_DECIMALS} decimal places")
    if abs(result) >= Decimal(10) ** 18:
        raise InvalidFieldError(field, "is too large")
    if minimum is not None and (result <= minimum if exclusive else result < minimum):
        raise InvalidFieldError(field, f"must be {'greater than' if exclusive else 'at least'} {minimum}")
    return result


def positive_quantity(field: str, value: object) -> Decimal:
    """Units: above zero and below MAX_QUANTITY (a product with a price must never overflow)."""
    result = decimal(field, value, minimum=Decimal(0), exclusive=True)
    if result >= MAX_QUANTITY:
        raise InvalidFieldError(field, f"must be less than {MAX_QUANTITY:,}")
    return result


def unit_amount(field: str, value: object) -> Decimal:
    """A unit price: zero or more and below MAX_UNIT_AMOUNT."""
    result = decimal(field, value, minimum=Decimal(0))
    if result >= MAX_UNIT_AMOUNT:
        raise InvalidFieldError(field, f"must be less than {MAX_UNIT_AMOUNT:,}")
    return result
