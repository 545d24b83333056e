"""Every Factur-X document the suite produces passes the European Commission's EN 16931 Schematron, in
CII and in UBL 2.1: 0 fatal asserts; warnings are printed (run with `-rA` or `-s` to see them).

The documents come from the real services: a representative Bulgarian issuer (several rates, exempt,
reverse charge, outside the EU, proration up and down, credit notes full, by lines and by amount, a
proforma paid into an invoice, tax-inclusive prices) on both databases, and the whole demo on SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree  # type: ignore[import-untyped]
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.documents.einvoice import _document_level, _whole_minor
from fiscus.documents.facturx import build_cii_xml
from fiscus.documents.ubl import build_ubl_xml
from fiscus.documents.view_model import build_view_model
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.domain.money import round_minor, to_minor
from fiscus.queries.documents import DocumentFilters, DocumentView, load_documents, page_document_ids
from fiscus.queries.scope import Scope
from fiscus.services.billing_run import run_billing
from fiscus.services.catalog import create_price
from fiscus.services.credit_notes import issue_credit_note
from fiscus.services.documents import mark_paid
from fiscus.services.einvoices import Syntax, einvoice_xml
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.reconcile import reconcile
from fiscus.services.subscriptions import ItemSpec, change_subscription, create_subscription
from tests.builders import Tenant, make_customer, make_tenant
from tests.demo_support import demo_database_url
from tests.en16931 import Schematron

CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
UBL = {"cac": CAC, "cbc": CBC}


@dataclass
class Findings:
    """Failed asserts by document number and syntax, and how many documents were checked."""

    fatal: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: int = 0


def _e_invoiced(db: Database, org_id: int) -> list[DocumentView]:
    scope = Scope(org_id)
    with db.read() as conn:
        ids = page_document_ids(conn, scope, DocumentFilters(issued_only=True), limit=10_000).ids
        docs = load_documents(conn, scope, sorted(ids))
    return [d for d in docs if d.type is not DocumentType.PROFORMA]


def _validate(
    db: Database, org_id: int, validators: tuple[Schematron, Schematron], *, direct: bool = False
) -> Findings:
    """Both syntaxes of every issued invoice and credit note of the organisation, through the service
    the HTTP routes use (`direct`: the writers themselves, for an organisation that does not e-invoice);
    each UBL also states the view's minor units exactly."""
    cii, ubl = validators
    found = Findings()
    for doc in _e_invoiced(db, org_id):
        for syntax, schematron in ((Syntax.CII, cii), (Syntax.UBL, ubl)):
            if direct:
                xml = (build_ubl_xml if syntax is Syntax.UBL else build_cii_xml)(doc)
            else:
                xml = einvoice_xml(db, Scope(org_id), doc.id, syntax)
            for a in schematron.check(xml):
                entry = f"{doc.type.value} {doc.number} ({syntax.value}): {a}"
                (found.fatal if a.flag == "fatal" else found.warnings).append(entry)
            if syntax is Syntax.UBL:
                _assert_ubl_states_the_view(doc, xml)
        found.checked += 1
    for warning in found.warnings:
        print("EN 16931 warning:", warning)
    print(f"EN 16931: {found.checked} documents × CII and UBL, {len(found.warnings)} warnings")
    return found


def _assert_ubl_states_the_view(doc: DocumentView, xml: bytes) -> None:
    """Totals and every line of the UBL are the stored minor units (API = PDF = XML), and every line
    reads quantity × price = amount with a non-negative price."""
    cur = doc.currency
    root = etree.fromstring(xml)
    credit = doc.type is DocumentType.CREDIT_NOTE
    assert etree.QName(root).localname == ("CreditNote" if credit else "Invoice")
    sums = root.find("cac:LegalMonetaryTotal", UBL)
    assert to_minor(Decimal(sums.findtext("cbc:TaxInclusiveAmount", namespaces=UBL)), cur) == doc.total_minor
    assert (
        to_minor(Decimal(sums.findtext("cbc:TaxExclusiveAmount", namespaces=UBL)), cur) == doc.subtotal_minor
    )
    whole = _document_level(doc)  # issue 17: whole-document discounts stated once as BG-20
    stated = to_minor(Decimal(sums.findtext("cbc:AllowanceTotalAmount", namespaces=UBL)), cur)
    assert stated == sum(_whole_minor(line, whole) for line in doc.lines)
    bg20 = root.xpath("cac:AllowanceCharge/cbc:Amount/text()", namespaces=UBL)
    assert to_minor(sum((Decimal(a) for a in bg20), Decimal(0)), cur) == stated
    vm = build_view_model(doc)
    lines = root.findall("cac:CreditNoteLine" if credit else "cac:InvoiceLine", UBL)
    assert len(lines) == len(doc.lines) == len(vm["raw"]["lines"])
    for node, line, raw in zip(lines, doc.lines, vm["raw"]["lines"], strict=True):
        quantity = Decimal(
            node.findtext("cbc:CreditedQuantity" if credit else "cbc:InvoicedQuantity", namespaces=UBL)
        )
        price = Decimal(node.findtext("cac:Price/cbc:PriceAmount", namespaces=UBL))
        amount = to_minor(Decimal(node.findtext("cbc:LineExtensionAmount", namespaces=UBL)), cur)
        back = _whole_minor(line, whole)
        assert amount - back == line.amount_minor == raw["amount_minor"]
        assert quantity == line.quantity
        assert price >= 0
        allowances = [Decimal(a) for a in node.xpath("cac:AllowanceCharge/cbc:Amount/text()", namespaces=UBL)]
        if not line.tax_inclusive:
            assert price == line.unit_price
            off = to_minor(sum(allowances, Decimal(0)), cur)  # BG-27, issue 17
            assert off + back == line.discount_minor
            assert to_minor(round_minor(quantity * price, cur), cur) == amount + off  # the one rounding rule


def _prices(db: Database, clock: FixedClock, tenant: Tenant) -> dict[str, int]:
    with db.read() as conn:
        variant = conn.execute(
            select(t.prices.c.variant_id).where(t.prices.c.id == tenant.one_off)
        ).scalar_one()
    return {
        category: create_price(
            db, clock, tenant.org_id, variant, currency_code="EUR", unit_amount=amount, tax_category=category
        )
        for category, amount in (("reduced", "7.35"), ("exempt", "12.00"), ("zero", "3.10"))
    }


def _issuer(db: Database, clock: FixedClock) -> Tenant:
    """A Bulgarian e-invoicing issuer with every case the EN 16931 rules distinguish."""
    tenant = make_tenant(db, clock, "bg", slug="bg-einvoice", facturx=True)
    extra = _prices(db, clock, tenant)
    bg = make_customer(db, clock, tenant, 0, address_line1="бул. Витоша 1", city="София")
    de = make_customer(db, clock, tenant, 1, country="DE", vat_id="DE136695976", city="Berlin")
    us = make_customer(db, clock, tenant, 2, country="US", city="Austin")
    several = [
        ItemSpec(tenant.one_off, "3"),
        ItemSpec(extra["reduced"], "2.5"),
        ItemSpec(extra["exempt"], "1"),
    ]
    orders = {
        who: bill_order_now(db, clock, tenant.org_id, create_order(db, clock, tenant.org_id, customer, items))
        for who, customer, items in (
            ("bg", bg, [*several, ItemSpec(extra["zero"], "2")]),
            ("de", de, [ItemSpec(tenant.one_off, "3")]),
            ("us", us, [ItemSpec(tenant.one_off, "2")]),
        )
    }
    up = create_subscription(db, clock, tenant.org_id, bg, [ItemSpec(tenant.monthly, "1")])
    down_customer = make_customer(db, clock, tenant, 3)
    down = create_subscription(db, clock, tenant.org_id, down_customer, [ItemSpec(tenant.monthly_big, "2")])
    run_billing(db, clock)
    mark_paid(db, clock, tenant.org_id, _latest(db, down))
    clock.advance(timedelta(days=11))
    change_subscription(db, clock, tenant.org_id, up, [ItemSpec(tenant.monthly_big, "2")])  # proration up
    change_subscription(db, clock, tenant.org_id, down, [ItemSpec(tenant.monthly, "1")])  # and down
    clock.advance(timedelta(days=25))
    run_billing(db, clock)
    prorated = _latest(db, up)
    org = tenant.org_id
    for invoice, mode, lines, amount in (
        (prorated, "lines", [(3, Decimal("0.5"))], None),  # part of the prorated charge
        (prorated, "full", None, None),  # the rest, the negative proration line included
        (orders["bg"], "amount", None, Decimal("10.00")),  # split over three rates
        (orders["bg"], "lines", [(2, None)], None),
        (orders["de"], "full", None, None),
    ):
        issue_credit_note(
            db,
            clock,
            org,
            invoice,
            mode=mode,
            lines=lines,
            amount=amount,
            reason="Fix",
            disposition="reduce_due",
        )
    return tenant


def _latest(db: Database, subscription_id: int) -> int:
    d = t.documents.c
    with db.read() as conn:
        return int(
            conn.execute(
                select(d.id).where(d.subscription_id == subscription_id).order_by(d.id.desc()).limit(1)
            ).scalar_one()
        )


def _proforma_issuer(db: Database, clock: FixedClock) -> Tenant:
    """Proformas first, paid into final invoices; tax-inclusive prices prorated up."""
    tenant = make_tenant(
        db,
        clock,
        "bg",
        slug="bg-proforma",
        order_document=DocumentType.PROFORMA,
        facturx=True,
        tax_inclusive=True,
    )
    customer = make_customer(db, clock, tenant, 5)
    proforma = bill_order_now(
        db,
        clock,
        tenant.org_id,
        create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, "2")]),
    )
    mark_paid(db, clock, tenant.org_id, proforma)  # becomes a final invoice
    sub = create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, "1")])
    run_billing(db, clock)
    clock.advance(timedelta(days=9))
    change_subscription(db, clock, tenant.org_id, sub, [ItemSpec(tenant.monthly_big, "1")])
    clock.advance(timedelta(days=25))
    run_billing(db, clock)
    return tenant


def test_every_document_of_the_representative_issuers_passes_en16931(
    db: Database, clock: FixedClock, en16931: tuple[Schematron, Schematron]
) -> None:
    tenants = [_issuer(db, clock), _proforma_issuer(db, clock)]
    docs = [d for tenant in tenants for d in _e_invoiced(db, tenant.org_id)]
    # the cases are really there
    lines = [line for d in docs for line in d.lines]
    assert {line.tax_treatment for line in lines} >= {
        "standard",
        "reduced",
        "exempt",
        "zero",
        "reverse_charge",
        "not_subject",
    }
    assert any(line.kind == "proration" and line.quantity < 0 for line in lines)  # up
    assert any(
        d.type is DocumentType.CREDIT_NOTE and d.reason == "Unused time after a change of plan" for d in docs
    )
    assert sum(d.type is DocumentType.CREDIT_NOTE for d in docs) >= 6
    assert any(d.converted_from_id is not None for d in docs)
    assert any(line.tax_inclusive and line.kind == "proration" for line in lines)
    assert all(line.unit_price >= 0 for line in lines)
    for tenant in tenants:
        found = _validate(db, tenant.org_id, en16931)
        assert found.fatal == []
    report = reconcile(db)
    assert {k: [v.row for v in rows] for k, rows in report.items() if rows} == {}


@pytest.mark.slow
@pytest.mark.xdist_group("demo")  # one worker seeds the demo once per database (demo_support)
def test_every_demo_document_passes_en16931(
    tmp_path: Path, request: pytest.FixtureRequest, en16931: tuple[Schematron, Schematron]
) -> None:
    """The demo's whole year (SQLite only: the documents are the same on both databases, and the
    validators read only their XML)."""
    db = Database(demo_database_url("sqlite", request, tmp_path))
    try:
        with db.read() as conn:
            orgs = conn.execute(
                select(t.organizations.c.id, t.organizations.c.slug).where(
                    t.organizations.c.facturx_enabled, t.organizations.c.mode == "test"
                )
            ).all()
        assert [slug for _id, slug in orgs] == ["bg-vps-test"]
        found = _validate(db, orgs[0].id, en16931)
        assert found.checked > 150
        assert found.fatal == []
        docs = _e_invoiced(db, orgs[0].id)
        assert any(line.kind == "proration" and line.quantity < 0 for d in docs for line in d.lines)
        with db.read() as conn:
            others = conn.execute(
                select(t.organizations.c.id).where(
                    ~t.organizations.c.facturx_enabled, t.organizations.c.mode == "test"
                )
            ).scalars()
        for org_id in others:  # KZT (a BIN, no VAT prefix) and USD (no VAT): valid once switched on
            assert _validate(db, org_id, en16931, direct=True).fatal == []
    finally:
        db.dispose()
