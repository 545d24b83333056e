"""VAT: which rate and treatment a line gets, and whether a buyer's VAT ID is valid.

The place-of-supply rules encoded here are the EU ones a seller of services applies:
- a seller not registered for VAT charges none (`NOT_SUBJECT`);
- an EU seller, buyer in another member state with a valid VAT ID: reverse charge (Art. 196);
- an EU seller, buyer outside the EU: outside the scope of EU VAT (Art. 44 / Art. 59);
- otherwise the seller's rate for the line's category, or the buyer's country rate when the
  organisation has rates for that country (EU B2C distance sales under the OSS scheme).
A non-EU seller (Kazakhstan, say) applies its own country's rates to every buyer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final, Protocol

from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as StdnumValidationError
from stdnum.util import get_cc_module

from fiscus.domain.errors import FieldConflictError, InvalidFieldError

EU_MEMBER_STATES: Final = frozenset(
    c.upper() for c in eu_vat.MEMBER_STATES if c != "xi"
)  # ISO 3166 codes; Greece's VAT prefix is EL but its country code is GR

REVERSE_CHARGE_NOTE: Final = (
    "Reverse charge: VAT to be accounted for by the recipient (Art. 196 Council Directive 2006/112/EC)"
)
OUTSIDE_EU_NOTE: Final = (
    "Outside the scope of EU VAT: place of supply outside the EU (Art. 44 Directive 2006/112/EC)"
)


class TaxCategory(StrEnum):
    """What a price says about its goods or service."""

    STANDARD = "standard"
    REDUCED = "reduced"
    ZERO = "zero"
    EXEMPT = "exempt"


class TaxTreatment(StrEnum):
    """What a line actually gets on a document, after the place-of-supply rules.

    The EN 16931 category code of each is in `EN16931_CODES`.
    """

    STANDARD = "standard"
    REDUCED = "reduced"
    ZERO = "zero"
    EXEMPT = "exempt"
    REVERSE_CHARGE = "reverse_charge"
    NOT_SUBJECT = "not_subject"


EN16931_CODES: Final = {
    TaxTreatment.STANDARD: "S",
    TaxTreatment.REDUCED: "S",
    TaxTreatment.ZERO: "Z",
    TaxTreatment.EXEMPT: "E",
    TaxTreatment.REVERSE_CHARGE: "AE",
    TaxTreatment.NOT_SUBJECT: "O",
}


class TaxRounding(StrEnum):
    """Where tax is rounded (ADR 0002).

    DOCUMENT: once per rate over the sum of the line bases, then split over the lines by largest
    remainder (what EN 16931 BR-S-09 checks). LINE: once per line; the breakdown sums the lines.
    """

    DOCUMENT = "document"
    LINE = "line"


@dataclass(frozen=True, slots=True)
class TaxRate:
    """An organisation's rate for one country and category, with the legal note for zero/exempt."""

    country: str
    category: TaxCategory
    rate: Decimal
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.rate, Decimal) or self.rate < 0 or self.rate >= 1:
            raise InvalidFieldError("rate", "must be a decimal fraction in [0, 1), e.g. 0.2 for 20%")


@dataclass(frozen=True, slots=True)
class LineTax:
    treatment: TaxTreatment
    rate: Decimal
    note: str


@dataclass(frozen=True, slots=True)
class TaxParty:
    """The tax-relevant facts of a seller or a buyer, frozen on the document at issue."""

    country: str
    vat_id: str | None = None
    vat_registered: bool = True


RateTable = Mapping[tuple[str, TaxCategory], TaxRate]


def line_tax(category: TaxCategory, seller: TaxParty, buyer: TaxParty, rates: RateTable) -> LineTax:
    """The treatment and rate for a line of `category` sold by `seller` to `buyer`."""
    if not seller.vat_registered:
        return LineTax(TaxTreatment.NOT_SUBJECT, Decimal(0), "")
    seller_in_eu = seller.country in EU_MEMBER_STATES
    if seller_in_eu and buyer.country != seller.country:
        if buyer.country in EU_MEMBER_STATES and buyer.vat_id:
            return LineTax(TaxTreatment.REVERSE_CHARGE, Decimal(0), REVERSE_CHARGE_NOTE)
        if buyer.country not in EU_MEMBER_STATES:
            return LineTax(TaxTreatment.NOT_SUBJECT, Decimal(0), OUTSIDE_EU_NOTE)
    country = seller.country
    if seller_in_eu and (buyer.country, category) in rates:
        country = buyer.country
    found = rates.get((country, category))
    if found is None:
        raise FieldConflictError(  # the stored rates and parties decide, not the request: 409
            "tax_category", f"the organisation has no '{category}' VAT rate for country {country}"
        )
    return LineTax(TaxTreatment(category.value), found.rate, found.note)


@dataclass(frozen=True, slots=True)
class VatCheck:
    """An online registry's answer: valid, invalid, or None when the registry could not be asked."""

    valid: bool | None
    name: str | None = None
    detail: str = ""


class VatRegistry(Protocol):
    """A port to a VAT registry (VIES for the EU). Reverse charge needs a valid VAT ID; where the
    registry is enabled, a number it says is not registered is refused at entry."""

    def check(self, vat_id: str) -> VatCheck: ...


def kz_bin_valid(number: str) -> bool:
    """Kazakhstan BIN/IIN: 12 digits, weighted mod-11 check digit with a second weight set."""
    if len(number) != 12 or not number.isdigit():
        return False
    digits = [int(c) for c in number]
    for weights in (range(1, 12), [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2]):
        check = sum(d * w for d, w in zip(digits[:11], weights, strict=True)) % 11
        if check != 10:
            return check == digits[11]
    return False


def normalize_vat_id(vat_id: str, country: str, field: str = "vat_id") -> str:
    """Check a VAT or tax ID's format and checksum offline and return it compacted.

    EU numbers are checked with python-stdnum and must belong to `country`; other countries use
    stdnum's national module where one exists, and Kazakhstan's BIN/IIN its own checksum. A country
    with no known format gets a plain sanity check. The online VIES check is a separate port.
    """
    raw = vat_id.strip()
    if not raw:
        raise InvalidFieldError(field, "must not be empty")
    if country in EU_MEMBER_STATES:
        try:
            compact = str(eu_vat.validate(raw))
        except StdnumValidationError as exc:
            raise InvalidFieldError(field, f"'{vat_id}' is not a valid EU VAT number ({exc})") from None
        prefix = compact[:2]
        expected = "EL" if country == "GR" else country
        if prefix != expected:
            raise InvalidFieldError(field, f"'{vat_id}' is not a VAT number of {country}")
        return compact
    if country == "KZ":
        compact = raw.replace(" ", "").removeprefix("KZ")
        if not kz_bin_valid(compact):
            raise InvalidFieldError(field, f"'{vat_id}' is not a valid Kazakhstan BIN/IIN")
        return compact
    module = get_cc_module(country.lower(), "vat")
    if module is not None:
        try:
            return str(module.validate(raw))
        except StdnumValidationError as exc:
            raise InvalidFieldError(field, f"'{vat_id}' is not a valid {country} tax ID ({exc})") from None
    cleaned = raw.replace(" ", "")
    if not (2 <= len(cleaned) <= 32) or not cleaned.replace("-", "").isalnum():
        raise InvalidFieldError(field, f"'{vat_id}' does not look like a tax ID")
    return cleaned
