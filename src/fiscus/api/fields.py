"""The request field types of the native API, each validated exactly as the OpenAPI document states
it (pattern, bounds, enum), so a generated client and the server agree on what is valid; and `In`,
the base of every request body."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from fiscus.api.errors import FieldValueError
from fiscus.api.vocabularies import COUNTRIES, CURRENCIES, LOCALES, TIME_ZONES
from fiscus.domain.documents import MAX_QUANTITY, MAX_UNIT_AMOUNT
from fiscus.domain.money import currency
from fiscus.services.validation import EMAIL, WHITESPACE

DECIMAL_PATTERN = r"^-?[0-9]{1,18}(\.[0-9]{1,12})?$"
"""Decimal strings in and out: ASCII digits, at most 18 before the point and 12 after, no exponent."""
NON_NEGATIVE_DECIMAL: Final = r"^[0-9]{1,18}(\.[0-9]{1,12})?$"
POSITIVE_DECIMAL: Final = r"^(?![0.]*$)[0-9]{1,18}(\.[0-9]{1,12})?$"
POSITIVE_QUANTITY: Final = r"^(?![0.]*$)[0-9]{1,9}(\.[0-9]{1,12})?$"
"""Below MAX_QUANTITY (10⁹): at most nine digits before the point."""
UNIT_AMOUNT_PATTERN: Final = r"^[0-9]{1,12}(\.[0-9]{1,12})?$"
"""Below MAX_UNIT_AMOUNT (10¹²): at most twelve digits before the point."""
NOT_BLANK: Final = f"[^{WHITESPACE}]"
EMPTY_OR_TEXT: Final = f"^$|{NOT_BLANK}"
RFC3339: Final = re.compile(
    r"^(19|2[0-9])[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,6})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
"""RFC 3339 date-times as the server takes them: years 1900 to 2999, an offset, no leap second, at
most microseconds (a day that does not exist in its month is refused too)."""


MAX_JSON_INTEGER: Final = 2**53 - 1
"""The largest integer every JSON parser (and JavaScript) holds exactly: the bound of ids and counts."""


def _known(values: frozenset[str], what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in values:
            raise ValueError(f"'{value}' is not {what}")
        return value

    return check


def _decimal_string(value: Any) -> Any:
    """A decimal string as DECIMAL_PATTERN spells it (no exponent, no spaces, ASCII digits), or an int."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError('must be a decimal string such as "12.50" (JSON numbers lose cents)')
    if isinstance(value, int):
        if abs(value) > MAX_JSON_INTEGER:
            raise ValueError(f"whole numbers above {MAX_JSON_INTEGER} go as decimal strings")
        return Decimal(value)
    if not re.match(DECIMAL_PATTERN, value):
        raise ValueError(f"'{value}' is not a decimal string such as \"12.50\"")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ValueError(f"'{value}' is not a decimal number") from None


def _no_float_amount(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError('amounts must be decimal strings such as "12.50"; JSON numbers are refused')
    return _decimal_string(value)


def _bounded(value: Decimal) -> Decimal:
    if abs(value) >= Decimal(10) ** 18:
        raise ValueError("is too large")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -12:
        raise ValueError("has more than 12 decimal places")
    return value


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


def _below(limit: Decimal) -> Callable[[Decimal], Decimal]:
    def check(value: Decimal) -> Decimal:
        if value >= limit:
            raise ValueError(f"must be less than {limit:,}")
        return value

    return check


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    return value


Amount = Annotated[
    Decimal,
    BeforeValidator(_no_float_amount),
    AfterValidator(_bounded),
    AfterValidator(_positive),
    WithJsonSchema({"type": "string", "pattern": POSITIVE_DECIMAL, "examples": ["12.50"]}),
]
"""Money in (captures, refunds, credits): a decimal string greater than zero, never a JSON number."""
NonNegativeAmount = Annotated[
    Decimal,
    BeforeValidator(_no_float_amount),
    AfterValidator(_bounded),
    AfterValidator(_non_negative),
    WithJsonSchema({"type": "string", "pattern": NON_NEGATIVE_DECIMAL, "examples": ["12.50"]}),
]
"""A price: a decimal string, zero or more."""
Quantity = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    AfterValidator(_bounded),
    AfterValidator(_positive),
    AfterValidator(_below(MAX_QUANTITY)),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": POSITIVE_QUANTITY},
                {"type": "integer", "minimum": 1, "maximum": int(MAX_QUANTITY) - 1},
            ],
            "examples": ["1", 3],
        }
    ),
]
"""Units: greater than zero and below a billion (MAX_QUANTITY: times a unit price, never an overflow),
as a decimal string (`"0.5"`) or a whole JSON number."""
UnitAmount = Annotated[
    Decimal,
    BeforeValidator(_no_float_amount),
    AfterValidator(_bounded),
    AfterValidator(_non_negative),
    AfterValidator(_below(MAX_UNIT_AMOUNT)),
    WithJsonSchema({"type": "string", "pattern": UNIT_AMOUNT_PATTERN, "examples": ["12.50"]}),
]
"""A unit price: a decimal string, zero or more, below a trillion (MAX_UNIT_AMOUNT)."""


def minor_unit_pattern(exponent: int) -> str:
    """An amount greater than zero that is whole in minor units of a currency with `exponent`
    decimals: further decimals, if written, are zeros (`"5.000"` EUR is 5.00; `"5.001"` is not); below
    10¹⁵ minor units (`domain.documents.check_money_size`)."""
    fraction = r"\.0{1,12}" if exponent == 0 else rf"\.[0-9]{{1,{exponent}}}0{{0,{12 - exponent}}}"
    return rf"^(?![0.]*$)[0-9]{{1,{15 - exponent}}}({fraction})?$"


def currencies_by_exponent() -> dict[int, list[str]]:
    """The request currencies grouped by their minor-unit exponent (for `minor_unit_pattern`)."""
    groups: dict[int, list[str]] = {}
    for code in sorted(CURRENCIES):
        groups.setdefault(currency(code).exponent, []).append(code)
    return groups


def amount_in_currency(
    currency_field: str, *amount_fields: str, nullable: tuple[str, ...] = ()
) -> dict[str, Any]:
    """JSON Schema for a body whose amounts must be whole minor units of the currency it names (as the
    services check): one branch per exponent, the currency's enum with the amounts' pattern."""
    branches = []
    for exponent, codes in currencies_by_exponent().items():
        pattern: dict[str, Any] = {"type": "string", "pattern": minor_unit_pattern(exponent)}
        props: dict[str, Any] = {currency_field: {"enum": codes}}
        for name in amount_fields:
            props[name] = {"anyOf": [pattern, {"type": "null"}]} if name in nullable else pattern
        branches.append({"properties": props})
    return {"anyOf": branches}


MoneyOut = Annotated[str, Field(pattern=DECIMAL_PATTERN, examples=["12.50"])]
Currency = Annotated[
    str,
    AfterValidator(_known(CURRENCIES, "an ISO 4217 currency with minor units")),
    WithJsonSchema({"type": "string", "enum": sorted(CURRENCIES), "examples": ["EUR"]}),
]
Country = Annotated[
    str,
    AfterValidator(_known(COUNTRIES, "an ISO 3166-1 alpha-2 country code")),
    WithJsonSchema({"type": "string", "enum": sorted(COUNTRIES), "examples": ["BG"]}),
]
Locale = Annotated[
    str,
    AfterValidator(_known(LOCALES, "a known locale (CLDR identifier, `_` or `-`)")),
    WithJsonSchema({"type": "string", "enum": sorted(LOCALES), "examples": ["en_US"]}),
]
TimeZone = Annotated[
    str,
    AfterValidator(_known(TIME_ZONES, "an IANA time zone")),
    WithJsonSchema({"type": "string", "enum": sorted(TIME_ZONES), "examples": ["Europe/Sofia"]}),
]
Id = Annotated[int, Field(ge=1, le=MAX_JSON_INTEGER)]
ExternalId = Annotated[str, Field(pattern=r"^[!-~]{1,128}$", examples=["cus_8812"])]
"""An id in the organisation's own system (a customer's): printable ASCII, no spaces."""
EMAIL_PATTERN: Final = EMAIL.pattern
Email = Annotated[
    str, Field(min_length=3, max_length=254, pattern=EMAIL_PATTERN, examples=["ada@example.com"])
]
Text = Annotated[str, Field(pattern=NOT_BLANK)]
"""Required text: at least one character that is not white space (it is stored stripped)."""


def _rfc3339(value: Any) -> Any:
    """Instants come in as RFC 3339 strings with an offset only: numbers are refused, not taken as
    Unix time; years outside 1..9999 cannot be held."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string with an offset, e.g. 2026-12-01T00:00:00Z")
    if not RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-12-01T00:00:00Z")
    return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))


Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": RFC3339.pattern,
            "examples": ["2026-12-01T00:00:00Z"],
        }
    ),
]
"""An instant in: an RFC 3339 string with an offset; numbers and naive times are refused."""
QueryInstant = Instant


def _no_nul(value: Any, at: tuple[str | int, ...] = ()) -> Any:
    """NUL characters are refused everywhere: PostgreSQL cannot store them in text. The error names
    the field (`FieldValueError.loc`, which the problem's pointer carries)."""
    if isinstance(value, str) and "\x00" in value:
        raise FieldValueError("must not contain NUL characters", at)
    if isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key, at)
            _no_nul(item, (*at, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _no_nul(item, (*at, index))
    return value


def _whole_numbers(value: Any) -> Any:
    """JSON Schema's `integer` includes `2.0`: such floats become ints before strict validation, other
    floats stay floats (and are refused wherever an integer or a decimal string is expected)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


class In(BaseModel):
    """Request bodies: strict (no `true` for 1, no `"1"` for 1), unknown fields refused, strings taken
    as sent (services strip them), so the OpenAPI document states exactly what passes."""

    model_config = ConfigDict(extra="forbid", strict=True, regex_engine="python-re")

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        return _whole_numbers(_no_nul(data))
