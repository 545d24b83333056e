"""The one view model of a document: what the PDF and the hosted page print, already formatted in
the customer's language, plus the raw minor units so a machine can check the figures against the API.

Everything the templates need is here as plain JSON values (strings, ints, lists, dicts), so a
template never formats money or dates itself and the two renderings cannot disagree.
"""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any, Final
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import NumberPattern, format_decimal, format_percent, parse_pattern

from fiscus.documents.labels import labels_for
from fiscus.documents.presentation import (
    address_lines,
    logo_data_uri,
    payment_reference,
    qr_for,
    tax_id_label,
)
from fiscus.domain.documents import DocumentType
from fiscus.domain.money import Currency, from_minor
from fiscus.domain.periods import local_date
from fiscus.queries.documents import DocumentView

TEMPLATE_VERSION: Final = "3"
"""Bumped whenever the printed layout or the model changes, and recorded with each stored file."""

_PERCENT = "#,##0.###%"


@cache
def _locale(tag: str) -> Locale:
    try:
        return Locale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


@cache
def _money_pattern(locale: Locale, digits: int) -> NumberPattern:
    """The locale's currency pattern with exactly `digits` decimals: the ISO 4217 minor unit (the
    engine's source of truth), not CLDR's own idea of the currency's digits."""
    pattern = copy.copy(parse_pattern(locale.currency_formats["standard"]))  # babel shares the original
    pattern.frac_prec = (digits, digits)
    return pattern


def format_money(amount: Decimal, cur: Currency, locale: Locale) -> str:
    """A settled or unit amount with the currency's sign; extra digits of a unit price are kept."""
    digits = max(cur.exponent, -min(0, amount.normalize().as_tuple().exponent))  # type: ignore[operator]
    return str(_money_pattern(locale, digits).apply(amount, locale, currency=cur.code, currency_digits=False))


def format_minor(minor: int, cur: Currency, locale: Locale) -> str:
    return format_money(from_minor(minor, cur), cur, locale)


def _date(day: date | None, locale: Locale) -> str:
    return "" if day is None else format_date(day, format="medium", locale=locale)


def _period(start: datetime | None, end: datetime | None, tz: ZoneInfo, locale: Locale) -> str:
    """A period as the customer's calendar sees it; the stored end is exclusive, the printed one not."""
    if start is None or end is None:
        return ""
    last = local_date(end - timedelta(microseconds=1), tz)
    return f"{_date(local_date(start, tz), locale)} – {_date(last, locale)}"


def _party(party: dict[str, Any], *, name_key: str, language: str) -> dict[str, Any]:
    """A party as printed: its address in its country's postal order and its tax IDs under the
    labels of its own country (a Kazakh BIN, a Bulgarian EIK, a US EIN)."""
    country = str(party.get("country") or "")
    tax_ids = [
        {"label": tax_id_label(country, kind, language), "value": str(party[kind])}
        for kind in ("vat_id", "tax_id")
        if party.get(kind)
    ]
    return {
        "name": str(party.get(name_key) or ""),
        "address": address_lines(party, language),
        "email": str(party.get("email") or ""),
        "vat_id": str(party.get("vat_id") or ""),
        "tax_id": str(party.get("tax_id") or ""),
        "tax_ids": tax_ids,
    }


def _bank_accounts(seller: dict[str, Any], labels: dict[str, str]) -> list[dict[str, Any]]:
    """The frozen bank accounts as label/value rows, IBAN grouped by four as banks print it."""
    out = []
    for acc in seller.get("bank_accounts") or []:
        rows: list[list[str]] = []
        if acc.get("bank_name"):
            rows.append([labels["bank"], str(acc["bank_name"])])
        if acc.get("iban"):
            iban = str(acc["iban"])
            rows.append([labels["iban"], " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))])
        if acc.get("bic"):
            rows.append([labels["bic"], str(acc["bic"])])
        if acc.get("account_number"):
            rows.append([labels["account_number"], str(acc["account_number"])])
        if acc.get("routing_number"):
            rows.append([labels["routing_number"], str(acc["routing_number"])])
        out.append({"label": str(acc.get("label") or ""), "rows": rows})
    return out


def _logo(logo: tuple[str, bytes] | None) -> dict[str, Any] | None:
    """The logo the document froze, for both renderings: SVG as text and PNG as a byte list for
    Typst (which reads no base64), and a data URI for the page (no request to fetch it)."""
    if logo is None:
        return None
    content_type, data = logo
    svg = content_type == "image/svg+xml"
    return {
        "format": "svg" if svg else "png",
        "text": data.decode("utf-8") if svg else "",
        "bytes": [] if svg else list(data),
        "data_uri": logo_data_uri(content_type, data),
    }


def _tz(seller: dict[str, Any]) -> ZoneInfo:
    try:
        return ZoneInfo(str(seller.get("timezone") or "UTC"))
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _fixed_date(doc: DocumentView) -> date:
    """The PDF's metadata date: the issue date (creation day for a draft), never the rendering time,
    so rendering the same document again gives the same bytes."""
    return doc.issue_date or doc.created_at.date()


def build_view_model(
    doc: DocumentView,
    *,
    locale: str | None = None,
    converted_from_number: str | None = None,
    corrected_number: str | None = None,
    payment_instructions: str | None = None,
    hosted_url: str | None = None,
    logo: tuple[str, bytes] | None = None,
) -> dict[str, Any]:
    """The JSON-ready model of `doc` in `locale` (default: the buyer's frozen locale).

    The numbers of related documents (the proforma an invoice was issued for, the invoice a credit
    note corrects), the hosted page's link and the frozen logo's bytes (content type, data) are
    passed in because the view of one document does not carry them.
    """
    loc = _locale(locale or str(doc.buyer.get("locale") or "en"))
    labels = labels_for(loc.language)
    cur = doc.currency
    tz = _tz(doc.seller)
    number = doc.number or ""
    due_minor = doc.amount_due_minor

    def money(minor: int) -> str:
        return format_minor(minor, cur, loc)

    def rate(value: Decimal) -> str:
        return format_percent(value, format=_PERCENT, locale=loc)

    lines = [
        {
            "position": ln.position,
            "description": ln.description,
            "period": _period(ln.period_start, ln.period_end, tz, loc),
            "quantity": format_decimal(ln.quantity.normalize(), locale=loc, decimal_quantization=False),
            "unit_price": format_money(ln.unit_price, cur, loc),
            "tax_rate": rate(ln.tax_rate),
            "amount": money(ln.amount_minor),
            # issue 17: each discount on the line, so it reads quantity × price − discounts = amount
            "discounts": [f"{a.reason}: −{money(a.amount_minor)}" for a in ln.allowances],
        }
        for ln in doc.lines
    ]
    taxes = [
        {
            "label": labels.get(f"treatment_{x.treatment}", x.treatment),
            "rate": rate(x.rate),
            "base": money(x.base_minor),
            "tax": money(x.tax_minor),
            "note": x.note,
        }
        for x in doc.taxes
    ]
    if doc.type is DocumentType.CREDIT_NOTE or due_minor == 0:
        instructions = labels["nothing_due"]
    else:
        instructions = payment_instructions or labels["pay_instructions"].format(
            amount=money(due_minor), date=_date(doc.due_date, loc), number=number
        )
    notes = list(dict.fromkeys([*doc.notes, *(x.note for x in doc.taxes if x.note)]))
    vat_registered = bool(doc.seller.get("vat_registered", True))
    payable = doc.type is not DocumentType.CREDIT_NOTE and due_minor > 0
    reference = payment_reference(number) if payable else ""
    url = hosted_url if payable else None
    qr = (
        qr_for(seller=doc.seller, cur=cur, amount_minor=due_minor, reference=reference, hosted_url=url)
        if payable
        else None
    )
    return {
        "template_version": TEMPLATE_VERSION,
        "locale": str(loc),
        "language": loc.language,
        "labels": labels,
        "test_mode": not doc.livemode,
        "document": {
            "id": doc.id,
            "type": doc.type.value,
            "title": labels[doc.type.value],
            "number": number,
            "status": labels.get(f"status_{doc.status.value}", doc.status.value),
            "issue_date": _date(doc.issue_date, loc),
            "due_date": "" if doc.type is DocumentType.CREDIT_NOTE else _date(doc.due_date, loc),
            "period": _period(doc.period_start, doc.period_end, tz, loc),
            "converted_from": (
                labels["converted_from"].format(number=converted_from_number) if converted_from_number else ""
            ),
            "corrects": labels["corrects"].format(number=corrected_number) if corrected_number else "",
            "reason": doc.reason or "",
            "currency": cur.code,
            "date": list(_fixed_date(doc).timetuple()[:3]),
        },
        "seller": _party(doc.seller, name_key="legal_name", language=loc.language),
        "buyer": _party(doc.buyer, name_key="name", language=loc.language),
        "logo": _logo(logo),
        "paper": "us-letter" if doc.seller.get("paper_size") == "letter" else "a4",
        "vat_registered": vat_registered,
        "vat_note": "" if vat_registered else labels["not_vat_registered"],
        "footer": str((doc.seller.get("footers") or {}).get(loc.language) or ""),
        "lines": lines,
        "taxes": taxes,
        "totals": {
            "subtotal": money(doc.subtotal_minor),
            "discount": money(doc.discount_minor) if doc.discount_minor else "",
            "tax": money(doc.tax_minor),
            "total": money(doc.total_minor),
            "amount_paid": money(doc.amount_paid_minor) if doc.amount_paid_minor else "",
            "amount_credited": money(doc.amount_credited_minor) if doc.amount_credited_minor else "",
            "amount_due": money(due_minor),
        },
        "payment": {
            "status": labels.get(f"status_{doc.status.value}", ""),
            "instructions": instructions,
            "reference": reference,
            "url": url or "",
            "bank_accounts": _bank_accounts(doc.seller, labels) if payable else [],
            "qr": qr,
        },
        "notes": notes,
        "raw": {
            "currency": cur.code,
            "exponent": cur.exponent,
            "subtotal_minor": doc.subtotal_minor,
            "discount_minor": doc.discount_minor,
            "tax_minor": doc.tax_minor,
            "total_minor": doc.total_minor,
            "amount_paid_minor": doc.amount_paid_minor,
            "amount_credited_minor": doc.amount_credited_minor,
            "amount_due_minor": due_minor,
            "lines": [
                {
                    "amount_minor": ln.amount_minor,
                    "tax_minor": ln.tax_minor,
                    "discount_minor": ln.discount_minor,
                }
                for ln in doc.lines
            ],
            "taxes": [
                {
                    "treatment": x.treatment,
                    "rate": str(x.rate),
                    "base_minor": x.base_minor,
                    "tax_minor": x.tax_minor,
                }
                for x in doc.taxes
            ],
        },
    }
