"""The EN 16931 semantic invoice (the standard's business terms), built once from a `DocumentView`.

Both syntaxes Fiscus emits, UN/CEFACT CII (Factur-X, `facturx.py`) and UBL 2.1 (`ubl.py`), are
written from this one model, so they cannot disagree with each other, and its figures are the stored
minor units turned into decimals (`from_minor`), never recomputed: what the PDF prints, the API returns
and both XMLs state are equal by construction. Syntax-specific choices stay in the writers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, is_dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final
from zoneinfo import ZoneInfo

from fiscus.domain.documents import DocumentType
from fiscus.domain.errors import InvalidStateError
from fiscus.domain.money import from_minor, multiply
from fiscus.domain.tax import EN16931_CODES, TaxTreatment
from fiscus.queries.documents import DocumentView, LineView, TaxView

SPECIFICATION: Final = "urn:cen.eu:en16931:2017"
"""BT-24: the core EN 16931 specification, no CIUS (Peppol BIS and XRechnung add their own)."""

TYPE_CODES: Final = {DocumentType.INVOICE: "380", DocumentType.CREDIT_NOTE: "381"}

EXEMPTION_CODES: Final = {"AE": "VATEX-EU-AE", "O": "VATEX-EU-O"}
"""VATEX codes (BT-121) for the categories whose breakdown must say why no VAT is charged."""

UNIT_CODE: Final = "C62"
"""UN/ECE Rec. 20 "one": a subscription period or an item is counted in units."""

MAX_AMOUNT_DECIMALS: Final = 2
"""EN 16931 states amounts with at most two decimals (BR-DEC-*); a currency with more (KWD) cannot be
e-invoiced without rounding what was charged, which Fiscus refuses to do."""

_HUNDRED: Final = Decimal(100)

DISCOUNT_CODE: Final = "95"
"""UNTDID 5189 "Discount": the reason code of every allowance Fiscus states (BT-98, BT-140)."""


class NotEInvoiceableError(InvalidStateError):
    """A proforma, a draft, or a document EN 16931 cannot state exactly has no e-invoice."""

    code = "not_e_invoiceable"
    title = "The document cannot be e-invoiced"


@dataclass(frozen=True, slots=True)
class Party:
    name: str
    country: str
    vat_id: str | None
    legal_id: str | None
    tax_number: str | None
    """BT-32, the seller's tax registration without a country prefix (a Kazakh BIN): what BR-S-02
    asks for when there is no VAT identifier."""
    line_one: str | None
    line_two: str | None
    city: str | None
    postcode: str | None


@dataclass(frozen=True, slots=True)
class Line:
    id: str
    note: str | None
    name: str
    net_price: Decimal
    """BT-146, never negative (BR-27): a credit is a negative quantity (ADR 0006)."""
    quantity: Decimal
    category: str
    percent: Decimal | None
    """None for category O (BR-O-05)."""
    period: tuple[date, date] | None
    net_amount: Decimal
    allowances: tuple[Allowance, ...] = ()
    """BG-27: the discounts taken off this line before tax (issue 17); BT-131 is already net of them."""


@dataclass(frozen=True, slots=True)
class Allowance:
    """A line allowance (BG-27): its amount (BT-136), reason (BT-139) and UNTDID 5189 code (BT-140)."""

    amount: Decimal
    reason: str
    code: str = DISCOUNT_CODE


@dataclass(frozen=True, slots=True)
class Breakdown:
    category: str
    percent: Decimal | None
    base: Decimal
    tax: Decimal
    exemption_reason: str | None
    exemption_code: str | None


@dataclass(frozen=True, slots=True)
class EInvoice:
    number: str
    type: DocumentType
    type_code: str
    issue_date: date
    due_date: date | None
    notes: list[str]
    currency: str
    seller: Party
    buyer: Party
    period: tuple[date, date] | None
    corrected_number: str | None
    lines: list[Line]
    breakdown: list[Breakdown]
    line_total: Decimal
    tax_basis: Decimal
    tax_total: Decimal
    grand_total: Decimal
    prepaid: Decimal
    due: Decimal
    zero: Decimal
    """The allowance and charge totals: Fiscus states proration on lines, never at document level
    (ADR 0006)."""


def plain(value: Decimal) -> str:
    """Decimal text without exponent notation, which xs:decimal refuses."""
    return format(value, "f")


def _dec(value: Decimal) -> Decimal:
    return Decimal(plain(value))


def category(treatment: str) -> str:
    return EN16931_CODES[TaxTreatment(treatment)]


def percent(rate: Decimal) -> Decimal:
    return _dec((rate * _HUNDRED).normalize())


def _sign(doc: DocumentView) -> int:
    """EN 16931 states a credit note's amounts as positive; a view storing them negative is flipped."""
    return -1 if doc.type is DocumentType.CREDIT_NOTE and doc.total_minor < 0 else 1


def _local_date(instant: datetime, zone: str | None, *, end: bool = False) -> date:
    """A period bound as the issuer's calendar date; an exclusive end becomes the last day covered."""
    tz = ZoneInfo(zone) if zone else None
    local = instant.astimezone(tz) if tz else instant
    if end:
        local -= timedelta(microseconds=1)
    return local.date()


def _period(start: datetime | None, end: datetime | None, zone: str | None) -> tuple[date, date] | None:
    if start is None or end is None:
        return None
    return _local_date(start, zone), _local_date(end, zone, end=True)


def net_unit_price(line: LineView) -> Decimal:
    """The net price (BT-146) of one unit; a tax-inclusive price is taken out of its tax exactly."""
    if not line.tax_inclusive or line.tax_rate == 0:
        return _dec(line.unit_price)
    factor = Fraction(1) / (1 + Fraction(line.tax_rate))
    return _dec(multiply(line.unit_price, factor).normalize())


def _party(
    snap: dict[str, Any],
    name: str,
    *,
    vat_id: str | None,
    legal_id: str | None,
    tax_number: str | None = None,
) -> Party:
    return Party(
        name=name,
        country=str(snap["country"]),
        vat_id=vat_id or None,
        legal_id=legal_id or None,
        tax_number=tax_number or None,
        line_one=snap.get("address_line1") or None,
        line_two=snap.get("address_line2") or None,
        city=snap.get("city") or None,
        postcode=snap.get("postal_code") or None,
    )


def _vat_id(value: str | None) -> str | None:
    """A VAT identifier as EN 16931 states it (BT-31, BT-48): with its ISO 3166 prefix (BR-CO-09). A
    number without one (a Kazakh BIN) is not a VAT identifier in the standard's sense."""
    return value if value and value[:2].isalpha() and value[:2].isupper() else None


def _registration(vat_id: str | None, outside_scope: bool) -> str | None:
    """The party's tax number as its legal registration identifier (BT-30, BT-47) where it cannot be
    stated as a VAT identifier: a not-subject invoice (BR-O-02) or a number without a country prefix."""
    if not vat_id:
        return None
    return vat_id if outside_scope or _vat_id(vat_id) is None else None


def build_einvoice(doc: DocumentView, *, corrected_number: str | None = None) -> EInvoice:
    """The EN 16931 model of an issued invoice or credit note; anything else is NotEInvoiceableError.

    `corrected_number` is the printed number of the invoice a credit note corrects (BT-25); the view
    holds only its id, and the caller that loaded the credit note can load that number with it.
    """
    if doc.type not in TYPE_CODES:
        raise NotEInvoiceableError(
            f"a {doc.type.value} is not a tax document and has no e-invoice", type=doc.type.value
        )
    if doc.number is None or doc.issue_date is None:
        raise NotEInvoiceableError("a draft has no number yet and cannot be e-invoiced", id=doc.id)
    cur = doc.currency
    if cur.exponent > MAX_AMOUNT_DECIMALS:
        raise NotEInvoiceableError(
            f"EN 16931 states amounts with at most {MAX_AMOUNT_DECIMALS} decimals and {cur.code} has "
            f"{cur.exponent}",
            currency=cur.code,
        )
    sign = _sign(doc)

    def amount(minor: int) -> Decimal:
        return from_minor(sign * minor, cur)

    categories = {category(line.tax_treatment) for line in doc.lines} | {
        category(tax.treatment) for tax in doc.taxes
    }
    outside_scope = "O" in categories  # BR-O-02: no VAT identifiers on a not-subject invoice
    zone = doc.seller.get("timezone")
    seller, buyer = doc.seller, doc.buyer
    notes = [*doc.notes, *([doc.reason] if doc.reason else [])]
    prepaid = doc.amount_paid_minor + doc.amount_credited_minor
    einvoice = EInvoice(
        number=doc.number,
        type=doc.type,
        type_code=TYPE_CODES[doc.type],
        issue_date=doc.issue_date,
        due_date=doc.due_date,
        notes=notes,
        currency=cur.code,
        seller=_party(
            seller,
            seller["legal_name"],
            vat_id=None if outside_scope else _vat_id(seller.get("vat_id")),
            legal_id=seller.get("tax_id") or _registration(seller.get("vat_id"), outside_scope),
            tax_number=None if outside_scope else _registration(seller.get("vat_id"), outside_scope),
        ),
        buyer=_party(
            buyer,
            buyer["name"],
            vat_id=None if outside_scope else _vat_id(buyer.get("vat_id")),
            legal_id=_registration(buyer.get("vat_id"), outside_scope),
        ),
        period=_period(doc.period_start, doc.period_end, zone),
        corrected_number=corrected_number if doc.type is DocumentType.CREDIT_NOTE else None,
        lines=[_line(line, sign, amount, zone) for line in doc.lines],
        breakdown=[_breakdown(tax, amount) for tax in doc.taxes],
        line_total=amount(sum(line.amount_minor for line in doc.lines)),
        tax_basis=amount(doc.subtotal_minor),
        tax_total=amount(doc.tax_minor),
        grand_total=amount(doc.total_minor),
        prepaid=amount(prepaid),
        due=amount(doc.total_minor - prepaid),
        zero=from_minor(0, cur),
    )
    result: EInvoice = xml_safe(einvoice)
    return result


_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""What XML 1.0 cannot carry at all (control characters, lone surrogates, U+FFFE and U+FFFF)."""


def xml_safe(value: Any) -> Any:
    """`value` (the e-invoice model, its parties, lines, ...) with every character XML 1.0 forbids
    shown as "?": a name typed with one would otherwise make both the CII and the UBL unserialisable
    (the stored data keeps the text; the buyer's platform sees a "?" there)."""
    if type(value) is str:  # an enum member (a StrEnum) is a code, never text, and keeps its type
        return _NOT_XML.sub("?", value)
    if isinstance(value, list):
        return [xml_safe(v) for v in value]
    if isinstance(value, tuple):
        return tuple(xml_safe(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: xml_safe(getattr(value, f.name)) for f in fields(value)})
    return value


def _line(line: LineView, sign: int, amount: Any, zone: str | None) -> Line:
    cat = category(line.tax_treatment)
    note = None
    if line.ratio != 1:
        note = f"Prorated: {line.ratio.numerator}/{line.ratio.denominator} of the period"
    return Line(
        id=str(line.position),
        note=note,
        name=line.description,
        net_price=net_unit_price(line),
        quantity=_dec(sign * line.quantity),
        category=cat,
        percent=None if cat == "O" else percent(line.tax_rate),
        period=_period(line.period_start, line.period_end, zone),
        net_amount=amount(line.amount_minor),
        allowances=_line_allowances(line, amount),
    )


def _line_allowances(line: LineView, amount: Any) -> tuple[Allowance, ...]:
    """A line's discounts as BG-27. A tax-exclusive line states each as stored; a tax-inclusive one,
    whose discount came off its gross, states one allowance in net terms: quantity × net price − net."""
    if not line.allowances:
        return ()
    if not line.tax_inclusive or line.tax_rate == 0:
        return tuple(Allowance(amount(a.amount_minor), a.reason) for a in line.allowances)
    net = amount(line.amount_minor)
    gross_net = _dec(net_unit_price(line) * line.quantity).quantize(net)
    reason = "; ".join(a.reason for a in line.allowances)
    return (Allowance(gross_net - net, reason),) if gross_net > net else ()


def _breakdown(tax: TaxView, amount: Any) -> Breakdown:
    cat = category(tax.treatment)
    return Breakdown(
        category=cat,
        percent=None if cat == "O" else percent(tax.rate),
        base=amount(tax.base_minor),
        tax=amount(tax.tax_minor),
        exemption_reason=tax.note if cat not in ("S", "Z") and tax.note else None,
        exemption_code=EXEMPTION_CODES.get(cat),
    )
