"""Organisation settings that a document prints: national tax IDs, bank accounts, paper size, footers.

Pure checks (no database, no clock). Each failure names its field, so the API can point at it. Schemes
python-stdnum knows are checked with it; Kazakhstan's BIN uses the domain's own checksum (stdnum has
none); anything else gets a plain sanity check, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban
from stdnum.bg import vat as bg_vat
from stdnum.exceptions import ValidationError as StdnumValidationError
from stdnum.us import ein as us_ein
from stdnum.us import rtn as us_rtn

from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.money import currency
from fiscus.domain.tax import kz_bin_valid

LOCALES: Final = ("en", "bg", "ru", "kk")
"""The locales documents and pages are translated into."""

PAPER_SIZES: Final = ("a4", "letter")
LETTER_COUNTRIES: Final = frozenset({"US", "CA", "MX", "PH", "CL", "CO", "VE", "GT", "CR", "PR", "DO", "PA"})
"""Countries whose offices print on US Letter (ISO 216 A4 everywhere else)."""

MAX_BANK_ACCOUNTS: Final = 5
MAX_FOOTER_CHARS: Final = 1000
_LOCAL_ACCOUNT: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 \-/.]{2,39}$")

NATIONAL_ID_SCHEMES: Final = {"KZ": "kz_bin", "BG": "bg_eik", "US": "us_ein"}
"""The national ID each country's invoices carry, where we know its scheme."""


def default_paper_size(country: str) -> str:
    return "letter" if country in LETTER_COUNTRIES else "a4"


def paper_size(field: str, value: str) -> str:
    size = (value or "").strip().lower().replace(" ", "_")
    size = {"us_letter": "letter"}.get(size, size)
    if size not in PAPER_SIZES:
        raise InvalidFieldError(field, f"'{value}' is not a paper size; use a4 or letter")
    return size


def document_locale(field: str, value: str) -> str:
    code = (value or "").strip().lower()
    if code not in LOCALES:
        raise InvalidFieldError(field, f"'{value}' is not a document locale; use one of {', '.join(LOCALES)}")
    return code


def national_id_scheme(country: str) -> str | None:
    return NATIONAL_ID_SCHEMES.get(country)


def normalize_national_id(value: str, country: str, field: str = "tax_id") -> str:
    """A national company ID, checked by its country's scheme and returned compact.

    BIN (Kazakhstan, 12 digits, mod-11), EIK/BULSTAT (Bulgaria, 9 digits checked by stdnum; a 13-digit
    branch EIK must start with a valid 9-digit one), EIN (US, stdnum). Elsewhere: 2–32 letters or digits.
    """
    raw = (value or "").strip().replace(" ", "")
    if not raw:
        raise InvalidFieldError(field, "must not be empty")
    if country == "KZ":
        compact = raw.upper().removeprefix("KZ")
        if not kz_bin_valid(compact):
            raise InvalidFieldError(field, f"'{value}' is not a valid Kazakhstan BIN (12 digits, checksum)")
        return compact
    if country == "BG":
        compact = raw.upper().removeprefix("BG")
        head = compact[:9] if len(compact) == 13 and compact.isdigit() else compact
        try:
            bg_vat.validate(head)
        except StdnumValidationError as exc:
            raise InvalidFieldError(field, f"'{value}' is not a valid Bulgarian EIK ({exc})") from None
        if len(head) != 9:
            raise InvalidFieldError(field, f"'{value}' is not a Bulgarian EIK (9 or 13 digits)")
        return compact
    if country == "US":
        try:
            return str(us_ein.format(us_ein.validate(raw)))
        except StdnumValidationError as exc:
            raise InvalidFieldError(field, f"'{value}' is not a valid US EIN ({exc})") from None
    cleaned = raw.replace("-", "")
    if not (2 <= len(cleaned) <= 32) or not cleaned.isalnum():
        raise InvalidFieldError(field, f"'{value}' does not look like a company ID")
    return raw


@dataclass(frozen=True, slots=True)
class BankAccount:
    """One account printed for bank transfers: an IBAN (with BIC) or a local account number."""

    label: str = ""
    bank_name: str = ""
    iban: str | None = None
    bic: str | None = None
    account_number: str | None = None
    routing_number: str | None = None
    currency: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "bank_name": self.bank_name,
            "iban": self.iban,
            "bic": self.bic,
            "account_number": self.account_number,
            "routing_number": self.routing_number,
            "currency": self.currency,
        }


def _short(field: str, value: object, max_len: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidFieldError(field, "must be a string")
    text = value.strip()
    if len(text) > max_len:
        raise InvalidFieldError(field, f"must be at most {max_len} characters")
    return text


def bank_account(field: str, raw: dict[str, Any], country: str) -> BankAccount:
    """Validate one account. IBAN and BIC by stdnum; a US routing number by its ABA checksum."""
    label = _short(f"{field}.label", raw.get("label"), 100)
    bank_name = _short(f"{field}.bank_name", raw.get("bank_name"), 200)
    iban = _short(f"{field}.iban", raw.get("iban"), 42) or None
    bic = _short(f"{field}.bic", raw.get("bic"), 14) or None
    number = _short(f"{field}.account_number", raw.get("account_number"), 40) or None
    routing = _short(f"{field}.routing_number", raw.get("routing_number"), 20) or None
    code = _short(f"{field}.currency", raw.get("currency"), 3) or None
    if code is not None:
        currency(code, f"{field}.currency")
    if iban is not None and number is not None:
        raise InvalidFieldError(field, "give either iban or account_number, not both")
    if iban is None and number is None:
        raise InvalidFieldError(field, "needs an iban or an account_number")
    if iban is not None:
        try:
            iban = str(stdnum_iban.compact(stdnum_iban.validate(iban)))
        except StdnumValidationError as exc:
            raise InvalidFieldError(
                f"{field}.iban", f"'{raw.get('iban')}' is not a valid IBAN ({exc})"
            ) from None
    if bic is not None:
        try:
            bic = str(stdnum_bic.validate(bic))
        except StdnumValidationError as exc:
            raise InvalidFieldError(
                f"{field}.bic", f"'{raw.get('bic')}' is not a valid BIC ({exc})"
            ) from None
        if iban is not None and bic[4:6] != iban[:2]:
            raise InvalidFieldError(f"{field}.bic", f"BIC {bic} is not of the IBAN's country {iban[:2]}")
    if number is not None and not _LOCAL_ACCOUNT.match(number):
        raise InvalidFieldError(f"{field}.account_number", "must be 3 to 40 letters, digits, spaces, - / .")
    if routing is not None:
        if country != "US":
            raise InvalidFieldError(f"{field}.routing_number", "is for US accounts (ABA routing number)")
        try:
            routing = str(us_rtn.validate(routing))
        except StdnumValidationError as exc:
            raise InvalidFieldError(
                f"{field}.routing_number", f"is not a valid ABA routing number ({exc})"
            ) from None
    return BankAccount(label, bank_name, iban, bic, number, routing, code)


def bank_accounts(field: str, raws: list[dict[str, Any]], country: str) -> list[BankAccount]:
    if len(raws) > MAX_BANK_ACCOUNTS:
        raise InvalidFieldError(field, f"at most {MAX_BANK_ACCOUNTS} bank accounts")
    return [bank_account(f"{field}.{i}", raw, country) for i, raw in enumerate(raws)]


def footers(field: str, raw: dict[str, str]) -> dict[str, str]:
    """Footer or legal text per document locale; an empty text removes that locale's footer."""
    result: dict[str, str] = {}
    for key, value in raw.items():
        loc = document_locale(f"{field}.{key}", key)
        text = _short(f"{field}.{key}", value, MAX_FOOTER_CHARS)
        if "\x00" in text:
            raise InvalidFieldError(f"{field}.{key}", "must not contain NUL")
        if text:
            result[loc] = text
    return dict(sorted(result.items()))
