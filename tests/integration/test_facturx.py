"""Factur-X / EN 16931: the CII XML of issued invoices validates, obeys the calculation rules and states
the stored minor units exactly; embedded in a PDF/A-3b it comes back out unchanged."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path

import facturx  # type: ignore[import-untyped]
import pytest
import typst
from lxml import etree  # type: ignore[import-untyped]
from pypdf import PdfReader
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.documents.einvoice import _document_level, _whole_minor
from fiscus.documents.facturx import (
    NotEInvoiceableError,
    build_cii_xml,
    check_business_rules,
    embed_facturx,
)
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.domain.money import from_minor, to_minor
from fiscus.domain.tax import EN16931_CODES, TaxTreatment
from fiscus.queries.documents import DocumentFilters, DocumentView, load_documents, page_document_ids
from fiscus.queries.scope import Scope
from fiscus.services.billing_run import run_billing
from fiscus.services.catalog import create_price
from fiscus.services.documents import mark_paid
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.subscriptions import ItemSpec, change_subscription, create_subscription
from tests.builders import Tenant, make_customer, make_tenant

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
}
FONTS = "/usr/share/fonts/truetype/dejavu"
TEMPLATE = b"""
#let d = json(bytes(sys.inputs.doc))
#set document(title: d.number)
#set text(font: "DejaVu Sans", size: 10pt)
= #d.kind #d.number
#d.seller \\ #d.buyer
#table(columns: 3, ..d.lines.map(l => (l.description, l.quantity, l.amount)).flatten())
Total: #d.total #d.currency
"""


def _issued_invoices(db: Database, org_id: int) -> list[DocumentView]:
    scope = Scope(org_id)
    filters = DocumentFilters(type=DocumentType.INVOICE, issued_only=True)
    with db.read() as conn:
        ids = page_document_ids(conn, scope, filters, limit=1000).ids
        return load_documents(conn, scope, sorted(ids))


def _money(node: etree._Element, path: str) -> Decimal:
    found = node.findtext(path, namespaces=NS)
    assert found is not None, path
    return Decimal(found)


def _assert_states_minor_units(doc: DocumentView, xml: bytes) -> None:
    """Every amount of the XML is the view's minor units, digit for digit (to_minor refuses a residue)."""
    cur = doc.currency
    root = etree.fromstring(xml)
    sums = root.find(".//ram:SpecifiedTradeSettlementHeaderMonetarySummation", NS)
    assert sums is not None
    due = doc.total_minor - doc.amount_paid_minor - doc.amount_credited_minor
    whole = _document_level(doc)  # issue 17: whole-document discounts are BG-20, not on the lines
    expected = {
        "ram:LineTotalAmount": sum(line.amount_minor + _whole_minor(line, whole) for line in doc.lines),
        "ram:AllowanceTotalAmount": sum(_whole_minor(line, whole) for line in doc.lines),
        "ram:TaxBasisTotalAmount": doc.subtotal_minor,
        "ram:TaxTotalAmount": doc.tax_minor,
        "ram:GrandTotalAmount": doc.total_minor,
        "ram:TotalPrepaidAmount": doc.amount_paid_minor + doc.amount_credited_minor,
        "ram:DuePayableAmount": due,
    }
    for path, minor in expected.items():
        value = _money(sums, path)
        assert to_minor(value, cur) == minor, path
        assert value == from_minor(minor, cur)
    assert sums.find("ram:TaxTotalAmount", NS).get("currencyID") == cur.code
    breakdown = {
        (
            row.findtext("ram:CategoryCode", namespaces=NS),
            Decimal(row.findtext("ram:RateApplicablePercent", default="0", namespaces=NS)),
        ): (to_minor(_money(row, "ram:BasisAmount"), cur), to_minor(_money(row, "ram:CalculatedAmount"), cur))
        for row in root.findall(".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", NS)
    }
    assert breakdown == {
        (EN16931_CODES[TaxTreatment(tax.treatment)], tax.rate * 100): (tax.base_minor, tax.tax_minor)
        for tax in doc.taxes
    }
    lines = root.findall(".//ram:IncludedSupplyChainTradeLineItem", NS)
    assert [to_minor(_money(x, ".//ram:LineTotalAmount"), cur) for x in lines] == [
        line.amount_minor + _whole_minor(line, whole) for line in doc.lines
    ]
    assert root.findtext(".//rsm:ExchangedDocument/ram:ID", namespaces=NS) == doc.number


def _pdf_a3(doc: DocumentView, tmp_path: Path) -> bytes:
    data = {
        "kind": doc.type.value,
        "number": doc.number,
        "seller": doc.seller["country"],  # DejaVu has no CJK glyph for the JP legal name
        "buyer": doc.buyer["name"],
        "currency": doc.currency.code,
        "total": str(from_minor(doc.total_minor, doc.currency)),
        "lines": [
            {"description": x.description, "quantity": str(x.quantity), "amount": str(x.amount_minor)}
            for x in doc.lines
        ],
    }
    source = tmp_path / "tiny.typ"
    source.write_bytes(TEMPLATE)
    pdf = typst.compile(
        source,
        format="pdf",
        pdf_standards=["a-3b"],
        sys_inputs={"doc": json.dumps(data)},
        font_paths=[Path(FONTS)],
        ignore_system_fonts=True,
        timestamp=0,
    )
    assert isinstance(pdf, bytes)
    return pdf


def _assert_embeds(doc: DocumentView, xml: bytes, tmp_path: Path) -> None:
    pdf_a3 = _pdf_a3(doc, tmp_path)
    out = embed_facturx(pdf_a3, xml, at=doc.issued_at)
    assert embed_facturx(pdf_a3, xml, at=doc.issued_at) == out  # reproducible: no wall-clock dates
    filename, extracted = facturx.get_facturx_xml_from_pdf(out, check_xsd=True)
    assert filename == "factur-x.xml"
    assert extracted == xml
    path = tmp_path / f"{doc.id}.pdf"
    path.write_bytes(out)
    reader = PdfReader(path)
    assert "factur-x.xml" in reader.attachments
    assert doc.issued_at is not None
    assert reader.metadata is not None
    mod_date = reader.metadata["/ModDate"]
    assert isinstance(mod_date, str)  # a TextStringObject
    assert mod_date == doc.issued_at.astimezone(UTC).strftime("D:%Y%m%d%H%M%S+00'00'")
    assert doc.number is not None
    assert doc.number in reader.pages[0].extract_text()


def _check(doc: DocumentView, tmp_path: Path, *, embed: bool = True) -> bytes:
    xml = build_cii_xml(doc)
    facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert check_business_rules(doc) == [], doc.number
    _assert_states_minor_units(doc, xml)
    assert build_cii_xml(doc) == xml
    if embed:
        _assert_embeds(doc, xml, tmp_path)
    return xml


def _eu_tenant(db: Database, clock: FixedClock) -> tuple[Tenant, dict[str, int]]:
    """A Bulgarian issuer selling at 20% and 9%, in Bulgaria, to a German business and to the US."""
    tenant = make_tenant(db, clock, "bg")
    with db.read() as conn:
        variant = conn.execute(
            select(t.variants.c.id).where(t.variants.c.organization_id == tenant.org_id).limit(1)
        ).scalar_one()
    reduced = create_price(
        db, clock, tenant.org_id, variant, currency_code="EUR", unit_amount="7.35", tax_category="reduced"
    )
    customers = {
        "bg": make_customer(db, clock, tenant, 0, address_line1="бул. Витоша 1", city="София"),
        "de": make_customer(
            db, clock, tenant, 1, country="DE", vat_id="DE136695976", city="Berlin", postal_code="10115"
        ),
        "us": make_customer(db, clock, tenant, 2, country="US", city="Austin"),
    }
    for who in customers.values():
        order = create_order(
            db, clock, tenant.org_id, who, [ItemSpec(tenant.one_off, "3"), ItemSpec(reduced, "2.5")]
        )
        bill_order_now(db, clock, tenant.org_id, order)
    sub = create_subscription(db, clock, tenant.org_id, customers["bg"], [ItemSpec(tenant.monthly, "1")])
    run_billing(db, clock)
    clock.advance(timedelta(days=11))
    change_subscription(db, clock, tenant.org_id, sub, [ItemSpec(tenant.monthly_big, "2")])
    clock.advance(timedelta(days=25))
    run_billing(db, clock)
    return tenant, customers


def test_eu_invoices_are_valid_en16931(db: Database, clock: FixedClock, tmp_path: Path) -> None:
    tenant, _ = _eu_tenant(db, clock)
    docs = _issued_invoices(db, tenant.org_id)
    treatments = {line.tax_treatment for doc in docs for line in doc.lines}
    assert treatments == {"standard", "reduced", "reverse_charge", "not_subject"}
    assert any(len({line.tax_rate for line in doc.lines}) == 2 for doc in docs)
    assert any(line.kind == "proration" for doc in docs for line in doc.lines)
    mark_paid(db, clock, tenant.org_id, docs[0].id)
    docs = _issued_invoices(db, tenant.org_id)
    assert docs[0].status is DocumentStatus.PAID
    for doc in docs:
        xml = _check(doc, tmp_path)
        root = etree.fromstring(xml)
        codes = {x.text for x in root.findall(".//ram:ApplicableHeaderTradeSettlement//ram:CategoryCode", NS)}
        vat_ids = [x.text for x in root.findall(".//ram:ID[@schemeID='VA']", NS)]
        if "AE" in codes:
            assert vat_ids == ["BG175074752", "DE136695976"]
            assert root.findtext(".//ram:ExemptionReasonCode", namespaces=NS) == "VATEX-EU-AE"
        elif "O" in codes:
            assert vat_ids == []  # BR-O-02
            assert root.findtext(".//ram:ExemptionReasonCode", namespaces=NS) == "VATEX-EU-O"
        else:
            assert vat_ids == ["BG175074752"]
            assert root.find(".//ram:ExemptionReasonCode", NS) is None


@pytest.mark.parametrize(("kind", "code"), [("jp", "JPY"), ("bg", "EUR"), ("kw", "KWD")])
def test_minor_units_are_exact_in_every_exponent(
    db: Database, clock: FixedClock, tmp_path: Path, kind: str, code: str
) -> None:
    tenant = make_tenant(db, clock, kind)
    customer = make_customer(db, clock, tenant)
    order = create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, "7")])
    bill_order_now(db, clock, tenant.org_id, order)
    create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly_big, "3")])
    run_billing(db, clock)
    docs = _issued_invoices(db, tenant.org_id)
    assert len(docs) == 2
    for doc in docs:
        assert doc.currency.code == code
        if doc.currency.exponent > 2:  # EN 16931 states amounts with two decimals at most (BR-DEC-*)
            with pytest.raises(NotEInvoiceableError, match="at most 2 decimals"):
                build_cii_xml(doc)
            continue
        _check(doc, tmp_path)


def test_a_credit_note_is_381_and_references_the_invoice(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    tenant = make_tenant(db, clock, "bg")
    customer = make_customer(db, clock, tenant)
    bill_order_now(
        db,
        clock,
        tenant.org_id,
        create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, "2")]),
    )
    [invoice] = _issued_invoices(db, tenant.org_id)
    note = dataclasses.replace(
        invoice,
        type=DocumentType.CREDIT_NOTE,
        number="CN-0000000001",
        corrected_document_id=invoice.id,
        reason="Service outage in March",
    )
    xml = build_cii_xml(note, corrected_number=invoice.number)
    facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    root = etree.fromstring(xml)
    assert root.findtext(".//rsm:ExchangedDocument/ram:TypeCode", namespaces=NS) == "381"
    assert root.findtext(".//ram:InvoiceReferencedDocument/ram:IssuerAssignedID", namespaces=NS) == (
        invoice.number
    )
    assert "Service outage in March" in [x.text for x in root.findall(".//ram:IncludedNote/ram:Content", NS)]
    _assert_states_minor_units(note, xml)
    negative = dataclasses.replace(
        note,
        subtotal_minor=-note.subtotal_minor,
        tax_minor=-note.tax_minor,
        total_minor=-note.total_minor,
        lines=[  # a view storing a credit negative stores negative quantities (ADR 0006)
            dataclasses.replace(x, quantity=-x.quantity, amount_minor=-x.amount_minor, tax_minor=-x.tax_minor)
            for x in note.lines
        ],
        taxes=[dataclasses.replace(x, base_minor=-x.base_minor, tax_minor=-x.tax_minor) for x in note.taxes],
    )
    assert build_cii_xml(negative, corrected_number=invoice.number) == xml
    _assert_embeds(note, xml, tmp_path)


def test_a_proforma_is_not_e_invoiced(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg", order_document=DocumentType.PROFORMA)
    customer = make_customer(db, clock, tenant)
    order = create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, "1")])
    doc_id = bill_order_now(db, clock, tenant.org_id, order)
    with db.read() as conn:
        [proforma] = load_documents(conn, Scope(tenant.org_id), [doc_id])
    assert proforma.type is DocumentType.PROFORMA
    with pytest.raises(NotEInvoiceableError, match="proforma"):
        build_cii_xml(proforma)


def test_business_rules_name_what_is_broken(db: Database, clock: FixedClock) -> None:
    tenant, _ = _eu_tenant(db, clock)
    doc = next(d for d in _issued_invoices(db, tenant.org_id) if len(d.taxes) == 2)
    assert check_business_rules(doc) == []
    tax = doc.taxes[0]
    off_by_one = dataclasses.replace(
        doc, taxes=[dataclasses.replace(tax, tax_minor=tax.tax_minor + 1), *doc.taxes[1:]]
    )
    found = {p.split(":")[0] for p in check_business_rules(off_by_one)}
    assert found == {"BR-CO-14", "BR-S-09"}
    line = doc.lines[0]
    moved = dataclasses.replace(
        doc, lines=[dataclasses.replace(line, amount_minor=line.amount_minor + 1), *doc.lines[1:]]
    )
    found = {p.split(":")[0] for p in check_business_rules(moved)}
    assert found == {"BR-CO-10", "BR-CO-13", "BR-S-08"}


@pytest.mark.slow
@pytest.mark.xdist_group("demo")  # one worker seeds the demo once per database (demo_support)
def test_every_demo_invoice_of_the_eu_issuer_obeys_en16931(demo_db: Database, tmp_path: Path) -> None:
    db = demo_db  # the seeded demo
    with db.read() as conn:
        org_id = conn.execute(
            select(t.organizations.c.id).where(t.organizations.c.slug == "bg-vps-test")
        ).scalar_one()
    docs = _issued_invoices(db, org_id)
    assert len(docs) > 100
    violations = {doc.number: check_business_rules(doc) for doc in docs}
    assert {k: v for k, v in violations.items() if v} == {}
    for doc in docs:
        xml = build_cii_xml(doc)
        facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
        _assert_states_minor_units(doc, xml)
    _assert_embeds(docs[-1], build_cii_xml(docs[-1]), tmp_path)


def test_rendering_service_embeds_the_e_invoice_for_enabled_issuers(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    from facturx import get_facturx_xml_from_pdf, xml_check_xsd

    from fiscus.adapters.pdf.renderer import shared_renderer
    from fiscus.services.rendering import ensure_pdf

    tenant = make_tenant(db, clock, "bg", slug="fx-e2e")
    with db.write() as conn:
        conn.execute(
            t.organizations.update().where(t.organizations.c.id == tenant.org_id).values(facturx_enabled=True)
        )
    customer = make_customer(db, clock, tenant, 1, country="DE", vat_id="DE136695976")
    create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 2)])
    run_billing(db, clock)
    with db.read() as conn:
        doc_id = conn.execute(
            select(t.documents.c.id).where(t.documents.c.organization_id == tenant.org_id)
        ).scalar_one()
    path = ensure_pdf(db, clock, shared_renderer(), tmp_path, tenant.org_id, doc_id)
    name, xml = get_facturx_xml_from_pdf(path.read_bytes())
    assert name == "factur-x.xml"
    assert xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert b"<ram:CategoryCode>AE</ram:CategoryCode>" in xml
