"""Factur-X / ZUGFeRD: the EN 16931 invoice (UN/CEFACT CII, profile "en16931") inside an issued PDF.

The XML is written from the EN 16931 model (`fiscus.documents.einvoice`), itself built from the same
`DocumentView` every other presenter renders, so its figures are the stored minor units turned into
decimals, never recomputed: what the PDF prints, the API returns and the XML (CII or UBL) states are
equal by construction. `check_business_rules` re-checks the EN 16931
arithmetic rules on the view, so an engine rounding bug shows up as a named rule, not as a rejected
e-invoice at the buyer's end.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

from drafthorse.models.accounting import (  # type: ignore[import-untyped]
    ApplicableTradeTax,
    CategoryTradeTax,
    TradeAllowanceCharge,
)
from drafthorse.models.document import Document  # type: ignore[import-untyped]
from drafthorse.models.note import IncludedNote  # type: ignore[import-untyped]
from drafthorse.models.party import TaxRegistration  # type: ignore[import-untyped]
from drafthorse.models.payment import PaymentTerms  # type: ignore[import-untyped]
from drafthorse.models.tradelines import LineItem  # type: ignore[import-untyped]

from fiscus.documents.einvoice import (
    SPECIFICATION,
    TYPE_CODES,
    UNIT_CODE,
    Breakdown,
    Line,
    NotEInvoiceableError,
    Party,
    build_einvoice,
    category,
    percent,
)
from fiscus.domain.money import from_minor, round_minor, to_minor
from fiscus.queries.documents import DocumentView

__all__ = ["TYPE_CODES", "NotEInvoiceableError", "build_cii_xml", "check_business_rules", "embed_facturx"]

GUIDELINE: Final = SPECIFICATION
"""The Factur-X EN 16931 ("comfort") profile's specification identifier (BT-24)."""


def _party(party: Any, p: Party) -> None:
    party.name = p.name
    if p.legal_id:
        party.legal_organization.id = p.legal_id
    addr = party.address
    if p.postcode:
        addr.postcode = p.postcode
    if p.line_one:
        addr.line_one = p.line_one
    if p.line_two:
        addr.line_two = p.line_two
    if p.city:
        addr.city_name = p.city
    addr.country_id = p.country
    if p.vat_id:
        party.tax_registrations.add(TaxRegistration(id=("VA", p.vat_id)))
    if p.tax_number:
        party.tax_registrations.add(TaxRegistration(id=("FC", p.tax_number)))


def _billing_period(target: Any, period: tuple[date, date]) -> None:
    target.start, target.end = period


def build_cii_xml(doc: DocumentView, *, corrected_number: str | None = None) -> bytes:
    """The document as EN 16931 CII XML (Factur-X profile "en16931"), UTF-8, from the one EN 16931
    model (`einvoice.build_einvoice`) the UBL is written from too."""
    e = build_einvoice(doc, corrected_number=corrected_number)
    x = Document()
    x.context.guideline_parameter.id = GUIDELINE
    x.header.id = e.number
    x.header.type_code = e.type_code
    x.header.issue_date_time = e.issue_date
    for text in e.notes:
        note = IncludedNote()
        note.content = text
        x.header.notes.add(note)

    for line in e.lines:
        x.trade.items.add(_line_item(line))

    _party(x.trade.agreement.seller, e.seller)
    _party(x.trade.agreement.buyer, e.buyer)

    settlement = x.trade.settlement
    settlement.currency_code = e.currency
    settlement.payment_reference = e.number
    for row in e.breakdown:
        settlement.trade_tax.add(_breakdown(row))
    if e.period is not None:
        _billing_period(settlement.period, e.period)
    if e.due_date is not None:
        terms = PaymentTerms()
        terms.due = e.due_date
        settlement.terms.add(terms)
    if e.corrected_number:
        settlement.invoice_referenced_document.issuer_assigned_id = e.corrected_number
    for allowance in e.allowances:  # BG-20, issue 17: a discount on the whole document
        charge = TradeAllowanceCharge()
        charge.indicator = False
        charge.actual_amount = allowance.amount
        charge.reason_code = allowance.code
        charge.reason = allowance.reason
        tax = CategoryTradeTax()
        tax.type_code = "VAT"
        tax.category_code = allowance.category
        if allowance.percent is not None:
            tax.rate_applicable_percent = allowance.percent
        charge.trade_tax.add(tax)
        settlement.allowance_charge.add(charge)

    sums = settlement.monetary_summation
    sums.line_total = e.line_total
    sums.charge_total = e.zero
    sums.allowance_total = e.zero if e.allowance_total is None else e.allowance_total
    sums.tax_basis_total = e.tax_basis
    sums.tax_total = (e.tax_total, e.currency)
    sums.grand_total = e.grand_total
    sums.prepaid_total = e.prepaid
    sums.due_amount = e.due
    xml: bytes = x.serialize(schema="FACTUR-X_EN16931")
    return xml


def _line_item(line: Line) -> Any:
    item = LineItem()
    item.document.line_id = line.id
    if line.note:
        note = IncludedNote()
        note.content = line.note
        item.document.notes.add(note)
    item.product.name = line.name
    item.agreement.net.amount = line.net_price
    item.delivery.billed_quantity = (line.quantity, UNIT_CODE)
    item.settlement.trade_tax.type_code = "VAT"
    item.settlement.trade_tax.category_code = line.category
    if line.percent is not None:  # BR-O-05: a not-subject line states no rate
        item.settlement.trade_tax.rate_applicable_percent = line.percent
    if line.period is not None:
        _billing_period(item.settlement.period, line.period)
    for allowance in line.allowances:  # BG-27, issue 17
        charge = TradeAllowanceCharge()
        charge.indicator = False
        charge.actual_amount = allowance.amount
        charge.reason_code = allowance.code
        charge.reason = allowance.reason
        item.settlement.allowance_charge.add(charge)
    item.settlement.monetary_summation.total_amount = line.net_amount
    return item


def _breakdown(b: Breakdown) -> Any:
    row = ApplicableTradeTax()
    row.calculated_amount = b.tax
    row.type_code = "VAT"
    if b.exemption_reason:
        row.exemption_reason = b.exemption_reason
    row.basis_amount = b.base
    row.category_code = b.category
    if b.exemption_code:
        row.exemption_reason_code = b.exemption_code
    if b.percent is not None:  # BR-O-05 for the breakdown: a not-subject category states no rate
        row.rate_applicable_percent = b.percent
    return row


FIXED_INSTANT: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""The metadata date stamped when the caller gives none, so that embedding is reproducible."""

_STAMPING = threading.Lock()


def embed_facturx(pdf_a3_bytes: bytes, xml: bytes, *, at: datetime | None = None) -> bytes:
    """Attach the XML to a PDF/A-3b as `factur-x.xml` with the Factur-X XMP, after an XSD check.

    `factur-x` stamps the wall clock into the PDF's ModDate and XMP; those dates are pinned to `at`
    (pass the document's `issued_at`) so the same document always gives the same bytes.
    """
    import facturx  # type: ignore[import-untyped]  # here: pypdf and requests weigh on every server start

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
    import facturx

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
        nets[(category(line.tax_treatment), line.tax_rate)] += line.amount_minor
    seen: set[tuple[str, Decimal]] = set()
    for tax in doc.taxes:
        cat = category(tax.treatment)
        key = (cat, tax.rate)
        if key in seen:
            out.append(f"BR-CO-18: category {cat} at {percent(tax.rate)}% appears more than once")
        seen.add(key)
        if nets.get(key, 0) != tax.base_minor:
            out.append(
                f"BR-{cat}-08: category {cat} at {percent(tax.rate)}% basis {tax.base_minor}"
                f" ≠ Σ line nets {nets.get(key, 0)}"
            )
        expected = to_minor(round_minor(from_minor(tax.base_minor, cur) * tax.rate, cur), cur)
        if cat == "S" and expected != tax.tax_minor:
            out.append(
                f"BR-S-09: category S at {percent(tax.rate)}% tax {tax.tax_minor}"
                f" ≠ basis {tax.base_minor} × rate rounded {expected}"
            )
        if cat != "S" and tax.tax_minor != 0:
            out.append(f"BR-{cat}-09: category {cat} tax {tax.tax_minor} must be 0")
    for key in nets.keys() - seen:
        out.append(f"BR-{key[0]}-08: category {key[0]} at {percent(key[1])}% has lines but no breakdown")
    return out
