"""Factur-X / ZUGFeRD: the EN 16931 invoice (UN/CEFACT CII, profile "en16931") inside an issued PDF.

The XML is built from the same `DocumentView` every other presenter renders, so its figures are the
stored minor units turned into decimals (`from_minor`), never recomputed: what the PDF prints, the
API returns and the XML states are equal by construction. `check_business_rules` re-checks the EN 16931
arithmetic rules on the view, so an engine rounding bug shows up as a named rule, not as a rejected
e-invoice at the buyer's end.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final
from zoneinfo import ZoneInfo

import facturx  # type: ignore[import-untyped]
from drafthorse.models.accounting import ApplicableTradeTax  # type: ignore[import-untyped]
from drafthorse.models.document import Document  # type: ignore[import-untyped]
from drafthorse.models.note import IncludedNote  # type: ignore[import-untyped]
from drafthorse.models.party import TaxRegistration  # type: ignore[import-untyped]
from drafthorse.models.payment import PaymentTerms  # type: ignore[import-untyped]
from drafthorse.models.tradelines import LineItem  # type: ignore[import-untyped]

from fiscus.domain.documents import DocumentType
from fiscus.domain.errors import InvalidStateError
from fiscus.domain.money import Currency, from_minor, multiply, round_minor, to_minor
from fiscus.domain.tax import EN16931_CODES, TaxTreatment
from fiscus.queries.documents import DocumentView, LineView, TaxView

GUIDELINE: Final = "urn:cen.eu:en16931:2017"
"""The Factur-X EN 16931 ("comfort") profile's specification identifier (BT-24)."""

TYPE_CODES: Final = {DocumentType.INVOICE: "380", DocumentType.CREDIT_NOTE: "381"}

EXEMPTION_CODES: Final = {"AE": "VATEX-EU-AE", "O": "VATEX-EU-O"}
"""VATEX codes (BT-121) for the categories whose breakdown must say why no VAT is charged."""

UNIT_CODE: Final = "C62"
"""UN/ECE Rec. 20 "one": a subscription period or an item is counted in units."""

_HUNDRED: Final = Decimal(100)


class NotEInvoiceableError(InvalidStateError):
    """A proforma (or a draft) is not a tax document, so it has no EN 16931 form."""

    code = "not_e_invoiceable"
    title = "The document cannot be e-invoiced"


def _plain(value: Decimal) -> str:
    """Decimal text without exponent notation, which the XSD's xs:decimal refuses."""
    return format(value, "f")


def _dec(value: Decimal) -> Decimal:
    return Decimal(_plain(value))


def _category(treatment: str) -> str:
    return EN16931_CODES[TaxTreatment(treatment)]


def _percent(rate: Decimal) -> Decimal:
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


def _net_unit_price(line: LineView) -> Decimal:
    """The net price (BT-146) of one unit; a tax-inclusive price is taken out of its tax exactly."""
    if not line.tax_inclusive or line.tax_rate == 0:
        return _dec(line.unit_price)
    factor = Fraction(1) / (1 + Fraction(line.tax_rate))
    return _dec(multiply(line.unit_price, factor).normalize())


def _party(party: Any, snap: dict[str, Any], name: str, *, vat_id: str | None, legal_id: str | None) -> None:
    party.name = name
    if legal_id:
        party.legal_organization.id = legal_id
    addr = party.address
    if snap.get("postal_code"):
        addr.postcode = snap["postal_code"]
    if snap.get("address_line1"):
        addr.line_one = snap["address_line1"]
    if snap.get("address_line2"):
        addr.line_two = snap["address_line2"]
    if snap.get("city"):
        addr.city_name = snap["city"]
    addr.country_id = snap["country"]
    if vat_id:
        party.tax_registrations.add(TaxRegistration(id=("VA", vat_id)))


def _billing_period(target: Any, start: datetime, end: datetime, zone: str | None) -> None:
    target.start = _local_date(start, zone)
    target.end = _local_date(end, zone, end=True)


def build_cii_xml(doc: DocumentView, *, corrected_number: str | None = None) -> bytes:
    """The document as EN 16931 CII XML (Factur-X profile "en16931"), UTF-8.

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
    sign = _sign(doc)

    def amount(minor: int) -> Decimal:
        return from_minor(sign * minor, cur)

    categories = {_category(line.tax_treatment) for line in doc.lines} | {
        _category(tax.treatment) for tax in doc.taxes
    }
    outside_scope = "O" in categories  # BR-O-02: no VAT identifiers on a not-subject invoice
    zone = doc.seller.get("timezone")

    x = Document()
    x.context.guideline_parameter.id = GUIDELINE
    x.header.id = doc.number
    x.header.type_code = TYPE_CODES[doc.type]
    x.header.issue_date_time = doc.issue_date
    texts = [*doc.notes]
    if doc.reason:
        texts.append(doc.reason)
    for text in texts:
        note = IncludedNote()
        note.content = text
        x.header.notes.add(note)

    for line in doc.lines:
        x.trade.items.add(_line_item(line, cur, sign, zone))

    seller, buyer = doc.seller, doc.buyer
    _party(
        x.trade.agreement.seller,
        seller,
        seller["legal_name"],
        vat_id=None if outside_scope else seller.get("vat_id"),
        legal_id=seller.get("tax_id") or (seller.get("vat_id") if outside_scope else None),
    )
    _party(
        x.trade.agreement.buyer,
        buyer,
        buyer["name"],
        vat_id=None if outside_scope else buyer.get("vat_id"),
        legal_id=None,
    )

    settlement = x.trade.settlement
    settlement.currency_code = cur.code
    settlement.payment_reference = doc.number
    for tax in doc.taxes:
        settlement.trade_tax.add(_breakdown(tax, amount))
    if doc.period_start is not None and doc.period_end is not None:
        _billing_period(settlement.period, doc.period_start, doc.period_end, zone)
    if doc.due_date is not None:
        terms = PaymentTerms()
        terms.due = doc.due_date
        settlement.terms.add(terms)
    if doc.type is DocumentType.CREDIT_NOTE and corrected_number:
        settlement.invoice_referenced_document.issuer_assigned_id = corrected_number

    line_total = sum(line.amount_minor for line in doc.lines)
    prepaid = doc.amount_paid_minor + doc.amount_credited_minor
    sums = settlement.monetary_summation
    sums.line_total = amount(line_total)
    sums.charge_total = amount(0)
    sums.allowance_total = amount(0)
    sums.tax_basis_total = amount(doc.subtotal_minor)
    sums.tax_total = (amount(doc.tax_minor), cur.code)
    sums.grand_total = amount(doc.total_minor)
    sums.prepaid_total = amount(prepaid)
    sums.due_amount = amount(doc.total_minor - prepaid)
    xml: bytes = x.serialize(schema="FACTUR-X_EN16931")
    return xml


def _line_item(line: LineView, cur: Currency, sign: int, zone: str | None) -> Any:
    item = LineItem()
    item.document.line_id = str(line.position)
    if line.ratio != 1:
        note = IncludedNote()
        note.content = f"Prorated: {line.ratio.numerator}/{line.ratio.denominator} of the period"
        item.document.notes.add(note)
    item.product.name = line.description
    item.agreement.net.amount = _net_unit_price(line)
    item.delivery.billed_quantity = (_dec(line.quantity), UNIT_CODE)
    category = _category(line.tax_treatment)
    item.settlement.trade_tax.type_code = "VAT"
    item.settlement.trade_tax.category_code = category
    if category != "O":  # BR-O-05: a not-subject line states no rate
        item.settlement.trade_tax.rate_applicable_percent = _percent(line.tax_rate)
    if line.period_start is not None and line.period_end is not None:
        _billing_period(item.settlement.period, line.period_start, line.period_end, zone)
    item.settlement.monetary_summation.total_amount = from_minor(sign * line.amount_minor, cur)
    return item


def _breakdown(tax: TaxView, amount: Callable[[int], Decimal]) -> Any:
    category = _category(tax.treatment)
    row = ApplicableTradeTax()
    row.calculated_amount = amount(tax.tax_minor)
    row.type_code = "VAT"
    if category not in ("S", "Z") and tax.note:
        row.exemption_reason = tax.note
    row.basis_amount = amount(tax.base_minor)
    row.category_code = category
    if category in EXEMPTION_CODES:
        row.exemption_reason_code = EXEMPTION_CODES[category]
    if category != "O":  # BR-O-05 for the breakdown: a not-subject category states no rate
        row.rate_applicable_percent = _percent(tax.rate)
    return row


FIXED_INSTANT: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""The metadata date stamped when the caller gives none, so that embedding is reproducible."""

_STAMPING = threading.Lock()


def embed_facturx(pdf_a3_bytes: bytes, xml: bytes, *, at: datetime | None = None) -> bytes:
    """Attach the XML to a PDF/A-3b as `factur-x.xml` with the Factur-X XMP, after an XSD check.

    `factur-x` stamps the wall clock into the PDF's ModDate and XMP; those dates are pinned to `at`
    (pass the document's `issued_at`) so the same document always gives the same bytes.
    """
    when = (at or FIXED_INSTANT).astimezone(UTC)
    module = facturx.facturx
    with _STAMPING:
        saved = module._get_pdf_timestamp, module._get_metadata_timestamp
        module._get_pdf_timestamp = lambda date=None: saved[0](date or when)
        module._get_metadata_timestamp = lambda: when.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        try:
            out: bytes = facturx.generate_from_binary(
                pdf_a3_bytes, xml, flavor="factur-x", level="en16931", check_xsd=True
            )
        finally:
            module._get_pdf_timestamp, module._get_metadata_timestamp = saved
    return out


def check_xsd(xml: bytes) -> None:
    """Raise when the XML does not validate against the Factur-X EN 16931 XSD."""
    facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")


def check_business_rules(doc: DocumentView) -> list[str]:
    """The EN 16931 calculation rules the view breaks (an empty list when it is clean).

    Checked on the stored minor units: BR-CO-10, -13, -14, -15, -16; per category the basis
    (BR-S-08, BR-AE-08, BR-E-08, BR-O-08, BR-Z-08) and, for standard rate, the tax (BR-S-09).
    Fiscus has no document-level allowances or charges, so those totals are zero.
    """
    cur = doc.currency
    out: list[str] = []
    line_total = sum(line.amount_minor for line in doc.lines)
    if line_total != doc.subtotal_minor:
        out.append(f"BR-CO-10: Σ line net amounts {line_total} ≠ line total {doc.subtotal_minor}")
    basis = doc.subtotal_minor
    if basis != line_total:
        out.append(f"BR-CO-13: tax basis total {basis} ≠ line total {line_total} − 0 + 0")
    category_tax = sum(tax.tax_minor for tax in doc.taxes)
    if category_tax != doc.tax_minor:
        out.append(f"BR-CO-14: tax total {doc.tax_minor} ≠ Σ category tax {category_tax}")
    if doc.total_minor != basis + doc.tax_minor:
        out.append(f"BR-CO-15: grand total {doc.total_minor} ≠ basis {basis} + tax {doc.tax_minor}")
    prepaid = doc.amount_paid_minor + doc.amount_credited_minor
    due = doc.total_minor - prepaid
    if doc.amount_due_minor not in (0, due):
        out.append(f"BR-CO-16: amount due {doc.amount_due_minor} ≠ grand total − paid {due}")

    nets: dict[tuple[str, Decimal], int] = defaultdict(int)
    for line in doc.lines:
        nets[(_category(line.tax_treatment), line.tax_rate)] += line.amount_minor
    seen: set[tuple[str, Decimal]] = set()
    for tax in doc.taxes:
        category = _category(tax.treatment)
        key = (category, tax.rate)
        if key in seen:
            out.append(f"BR-CO-18: category {category} at {_percent(tax.rate)}% appears more than once")
        seen.add(key)
        if nets.get(key, 0) != tax.base_minor:
            out.append(
                f"BR-{category}-08: category {category} at {_percent(tax.rate)}% basis {tax.base_minor}"
                f" ≠ Σ line nets {nets.get(key, 0)}"
            )
        expected = to_minor(round_minor(from_minor(tax.base_minor, cur) * tax.rate, cur), cur)
        if category == "S" and expected != tax.tax_minor:
            out.append(
                f"BR-S-09: category S at {_percent(tax.rate)}% tax {tax.tax_minor}"
                f" ≠ basis {tax.base_minor} × rate rounded {expected}"
            )
        if category != "S" and tax.tax_minor != 0:
            out.append(f"BR-{category}-09: category {category} tax {tax.tax_minor} must be 0")
    for key in nets.keys() - seen:
        out.append(f"BR-{key[0]}-08: category {key[0]} at {_percent(key[1])}% has lines but no breakdown")
    return out
