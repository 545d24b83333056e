"""UBL 2.1 Invoice and CreditNote: the EN 16931 invoice in the syntax Peppol BIS and XRechnung build on.

Written from the same EN 16931 model as the Factur-X CII (`fiscus.documents.einvoice`), so both state
the same figures; CIUS-neutral (BT-24 is the core `urn:cen.eu:en16931:2017`, no Peppol or XRechnung
extras such as an endpoint id or a buyer reference). Elements follow the UBL 2.1 schemas' order.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Final

from lxml import etree  # type: ignore[import-untyped]

from fiscus.documents.einvoice import (
    SPECIFICATION,
    UNIT_CODE,
    Breakdown,
    EInvoice,
    Line,
    Party,
    build_einvoice,
    plain,
)
from fiscus.domain.documents import DocumentType
from fiscus.queries.documents import DocumentView

CAC: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
ROOTS: Final = {
    DocumentType.INVOICE: ("urn:oasis:names:specification:ubl:schema:xsd:Invoice-2", "Invoice"),
    DocumentType.CREDIT_NOTE: ("urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2", "CreditNote"),
}
MEDIA_TYPE: Final = "application/xml"


class _Writer:
    """Appends UBL elements under a parent; amounts carry the document's currency (`currencyID`)."""

    def __init__(self, currency: str) -> None:
        self.currency = currency

    def cbc(self, parent: etree._Element, name: str, text: str, **attrs: str) -> etree._Element:
        el = etree.SubElement(parent, f"{{{CBC}}}{name}", attrs)
        el.text = text
        return el

    def cac(self, parent: etree._Element, name: str) -> etree._Element:
        return etree.SubElement(parent, f"{{{CAC}}}{name}")

    def amount(self, parent: etree._Element, name: str, value: Decimal) -> None:
        self.cbc(parent, name, plain(value), currencyID=self.currency)

    def period(self, parent: etree._Element, period: tuple[date, date]) -> None:
        node = self.cac(parent, "InvoicePeriod")
        self.cbc(node, "StartDate", period[0].isoformat())
        self.cbc(node, "EndDate", period[1].isoformat())

    def party(self, parent: etree._Element, role: str, p: Party) -> None:
        party = self.cac(self.cac(parent, role), "Party")
        address = self.cac(party, "PostalAddress")
        for name, value in (
            ("StreetName", p.line_one),
            ("AdditionalStreetName", p.line_two),
            ("CityName", p.city),
            ("PostalZone", p.postcode),
        ):
            if value:
                self.cbc(address, name, value)
        self.cbc(self.cac(address, "Country"), "IdentificationCode", p.country)
        for number, scheme_id in ((p.vat_id, "VAT"), (p.tax_number, "FC")):  # BT-31/48, BT-32
            if number:
                scheme = self.cac(party, "PartyTaxScheme")
                self.cbc(scheme, "CompanyID", number)
                self.cbc(self.cac(scheme, "TaxScheme"), "ID", scheme_id)
        legal = self.cac(party, "PartyLegalEntity")
        self.cbc(legal, "RegistrationName", p.name)
        if p.legal_id:
            self.cbc(legal, "CompanyID", p.legal_id)

    def category(
        self,
        parent: etree._Element,
        name: str,
        code: str,
        percent: Decimal | None,
        reason_code: str | None = None,
        reason: str | None = None,
    ) -> None:
        node = self.cac(parent, name)
        self.cbc(node, "ID", code)
        if percent is not None:
            self.cbc(node, "Percent", plain(percent))
        if reason_code:
            self.cbc(node, "TaxExemptionReasonCode", reason_code)
        if reason:
            self.cbc(node, "TaxExemptionReason", reason)
        self.cbc(self.cac(node, "TaxScheme"), "ID", "VAT")

    def tax_total(self, parent: etree._Element, total: Decimal, rows: list[Breakdown]) -> None:
        node = self.cac(parent, "TaxTotal")
        self.amount(node, "TaxAmount", total)
        for row in rows:
            sub = self.cac(node, "TaxSubtotal")
            self.amount(sub, "TaxableAmount", row.base)
            self.amount(sub, "TaxAmount", row.tax)
            self.category(
                sub, "TaxCategory", row.category, row.percent, row.exemption_code, row.exemption_reason
            )

    def line(self, parent: etree._Element, e: EInvoice, line: Line) -> None:
        credit = e.type is DocumentType.CREDIT_NOTE
        node = self.cac(parent, "CreditNoteLine" if credit else "InvoiceLine")
        self.cbc(node, "ID", line.id)
        if line.note:
            self.cbc(node, "Note", line.note)
        quantity = "CreditedQuantity" if credit else "InvoicedQuantity"
        self.cbc(node, quantity, plain(line.quantity), unitCode=UNIT_CODE)
        self.amount(node, "LineExtensionAmount", line.net_amount)
        if line.period is not None:
            self.period(node, line.period)
        for allowance in line.allowances:  # BG-27, issue 17
            charge = self.cac(node, "AllowanceCharge")
            self.cbc(charge, "ChargeIndicator", "false")
            self.cbc(charge, "AllowanceChargeReasonCode", allowance.code)
            self.cbc(charge, "AllowanceChargeReason", allowance.reason)
            self.amount(charge, "Amount", allowance.amount)
        item = self.cac(node, "Item")
        self.cbc(item, "Name", line.name)
        self.category(item, "ClassifiedTaxCategory", line.category, line.percent)
        self.amount(self.cac(node, "Price"), "PriceAmount", line.net_price)


def build_ubl_xml(doc: DocumentView, *, corrected_number: str | None = None) -> bytes:
    """The issued invoice or credit note as a UBL 2.1 Invoice or CreditNote (UTF-8); a proforma or a
    draft is NotEInvoiceableError, as for the CII."""
    e = build_einvoice(doc, corrected_number=corrected_number)
    namespace, tag = ROOTS[e.type]
    root = etree.Element(f"{{{namespace}}}{tag}", nsmap={None: namespace, "cac": CAC, "cbc": CBC})
    w = _Writer(e.currency)
    credit = e.type is DocumentType.CREDIT_NOTE
    w.cbc(root, "CustomizationID", SPECIFICATION)
    w.cbc(root, "ID", e.number)
    w.cbc(root, "IssueDate", e.issue_date.isoformat())
    if e.due_date is not None and not credit:
        w.cbc(root, "DueDate", e.due_date.isoformat())
    w.cbc(root, "CreditNoteTypeCode" if credit else "InvoiceTypeCode", e.type_code)
    for text in e.notes:
        w.cbc(root, "Note", text)
    w.cbc(root, "DocumentCurrencyCode", e.currency)
    if e.period is not None:
        w.period(root, e.period)
    if e.corrected_number:
        reference = w.cac(w.cac(root, "BillingReference"), "InvoiceDocumentReference")
        w.cbc(reference, "ID", e.corrected_number)
    w.party(root, "AccountingSupplierParty", e.seller)
    w.party(root, "AccountingCustomerParty", e.buyer)
    if e.due_date is not None and credit:  # a CreditNote has no DueDate element: BT-9 goes here
        means = w.cac(root, "PaymentMeans")
        w.cbc(means, "PaymentMeansCode", "1")  # UNCL 4461 "instrument not defined"
        w.cbc(means, "PaymentDueDate", e.due_date.isoformat())
    for allowance in e.allowances:  # BG-20, issue 17: a discount on the whole document
        charge = w.cac(root, "AllowanceCharge")
        w.cbc(charge, "ChargeIndicator", "false")
        w.cbc(charge, "AllowanceChargeReasonCode", allowance.code)
        w.cbc(charge, "AllowanceChargeReason", allowance.reason)
        w.amount(charge, "Amount", allowance.amount)
        w.category(charge, "TaxCategory", allowance.category, allowance.percent)
    w.tax_total(root, e.tax_total, e.breakdown)
    sums = w.cac(root, "LegalMonetaryTotal")
    w.amount(sums, "LineExtensionAmount", e.line_total)
    w.amount(sums, "TaxExclusiveAmount", e.tax_basis)
    w.amount(sums, "TaxInclusiveAmount", e.grand_total)
    w.amount(sums, "AllowanceTotalAmount", e.zero if e.allowance_total is None else e.allowance_total)
    w.amount(sums, "ChargeTotalAmount", e.zero)
    w.amount(sums, "PrepaidAmount", e.prepaid)
    w.amount(sums, "PayableAmount", e.due)
    for line in e.lines:
        w.line(root, e, line)
    xml: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=True)
    return xml
