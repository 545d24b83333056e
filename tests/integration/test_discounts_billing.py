"""Discounts on billed documents, on both databases: the run applies what is in force, a repeating
coupon stops after its periods, a customer's discount reaches orders, a proforma's discount goes to its
invoice, and every stored figure reconciles (issue 17)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pypdf
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db.engine import Database
from fiscus.adapters.pdf.renderer import PdfRenderer
from fiscus.api.presenters import document
from fiscus.documents.view_model import build_view_model
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.queries.documents import get_document
from fiscus.queries.scope import Scope
from fiscus.services.billing_run import preview_next_document, run_billing
from fiscus.services.discounts import CodeSpec, CouponSpec, create_coupon, create_promotion_code, redeem
from fiscus.services.documents import convert_proforma
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.reconcile import reconcile
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.builders import make_customer, make_tenant

START = datetime(2026, 1, 1, 9, tzinfo=UTC)


def _docs(db: Database, customer_id: int) -> list[dict[str, Any]]:
    with db.read() as conn:
        d = t.documents.c
        return [
            dict(r)
            for r in conn.execute(
                select(t.documents).where(d.customer_id == customer_id).order_by(d.id)
            ).mappings()
        ]


def _allowances(db: Database, doc_id: int) -> list[tuple[int, int, str]]:
    with db.read() as conn:
        da = td.document_allowances.c
        q = (
            select(da.line_position, da.amount_minor, da.reason)
            .where(da.document_id == doc_id)
            .order_by(da.id)
        )
        return [tuple(r) for r in conn.execute(q)]


def test_run_applies_discounts_for_their_periods(db: Database) -> None:
    clock = FixedClock(START)
    tenant = make_tenant(db, clock, "bg")  # EUR, 20 %: monthly 15.00, monthly_big 30.50
    org = tenant.org_id
    alice, bob = make_customer(db, clock, tenant, 1), make_customer(db, clock, tenant, 2)
    sub = create_subscription(
        db, clock, org, alice, [ItemSpec(tenant.monthly), ItemSpec(tenant.monthly_big)], start_at=START
    )
    launch = create_coupon(
        db, clock, org, CouponSpec("Launch", "repeating", percent_off=Decimal(20), duration_periods=2)
    )
    create_promotion_code(db, clock, org, CodeSpec(launch, "LAUNCH", first_purchase_only=True))
    redeem(db, clock, org, subscription_id=sub, code="launch")
    five = create_coupon(db, clock, org, CouponSpec("Five off", "forever", amounts_off={"EUR": Decimal(5)}))
    redeem(db, clock, org, customer_id=alice, coupon_id=five)
    upcoming = preview_next_document(db, org, sub).document  # the preview shows them, writes nothing
    assert upcoming is not None
    assert upcoming.computed.total_minor == 3768
    late = CouponSpec("Early bird", "once", percent_off=Decimal(5), redeem_by=START + timedelta(days=1))
    create_coupon(db, clock, org, late)  # never redeemed; expires when the run passes its date
    run_billing(db, FixedClock(START + timedelta(days=70)), at=START + timedelta(days=70))
    invoices = _docs(db, alice)
    assert len(invoices) == 3
    # 45.50: 20 % = 9.10 (3.00 + 6.10), then 5.00 on the 36.40 left (1.65 + 3.35): 31.40 + 20 % = 37.68
    assert [(d["subtotal_minor"], d["tax_minor"], d["total_minor"]) for d in invoices] == [
        (3140, 628, 3768),
        (3140, 628, 3768),
        (4050, 810, 4860),  # the launch coupon had its two periods; five off stays
    ]
    assert _allowances(db, invoices[0]["id"]) == [
        (1, 300, "Launch (20 % off)"),
        (2, 610, "Launch (20 % off)"),
        (1, 165, "Five off"),
        (2, 335, "Five off"),
    ]
    _assert_presented(db, org, invoices[0]["id"])
    with db.read() as conn:
        dc = td.discounts.c
        states = {r.coupon_id: r.status for r in conn.execute(select(dc.coupon_id, dc.status))}
    assert states == {launch: "ended", five: "active"}
    with db.read() as conn:
        events = [r.type for r in conn.execute(select(t.outbox_events.c.type))]
    assert events.count("coupon.redeemed") == 2
    assert events.count("coupon.expired") == 1
    assert events.count("discount.ended") == 1
    # an order of the customer carries the customer's discount too; bob's carries none
    order = create_order(db, clock, org, alice, [ItemSpec(tenant.one_off)])
    doc_id = bill_order_now(db, clock, org, order)
    assert _allowances(db, doc_id) == [(1, 500, "Five off")]
    plain = bill_order_now(db, clock, org, create_order(db, clock, org, bob, [ItemSpec(tenant.one_off)]))
    assert _allowances(db, plain) == []
    report = reconcile(db)
    assert {k: [v.row for v in rows] for k, rows in report.items() if rows} == {}


def _assert_presented(db: Database, org: int, doc_id: int) -> None:
    """The API, the PDF and its view model say the same: lines net of their discounts, totals."""
    with db.read() as conn:
        view = get_document(conn, Scope(org), doc_id)
    api = document(view, None, lines=True)
    assert (api["subtotal"], api["discount"], api["tax"], api["total"]) == ("31.40", "14.10", "6.28", "37.68")
    assert [(ln["amount"], ln["discount"]) for ln in api["lines"]] == [("10.35", "4.65"), ("21.05", "9.45")]
    assert api["lines"][0]["discounts"][0] == {
        "reason": "Launch (20 % off)",
        "amount": "3.00",
        "coupon_id": view.lines[0].allowances[0].coupon_id,
        "discount_id": view.lines[0].allowances[0].discount_id,
    }
    text = " ".join(
        p.extract_text()
        for p in pypdf.PdfReader(io.BytesIO(PdfRenderer().render(build_view_model(view)))).pages
    )
    text = " ".join(text.replace("\xa0", " ").split())
    for printed in ("Launch (20 % off): −€3.00", "Five off: −€3.35", "Discount −€14.10", "€37.68"):
        assert printed in text, (printed, text)


def test_proforma_discount_goes_to_its_invoice_in_kzt(db: Database) -> None:
    clock = FixedClock(START)
    tenant = make_tenant(db, clock, "kz", subscription_document=DocumentType.PROFORMA)
    org = tenant.org_id
    customer = make_customer(db, clock, tenant, 1)
    sub = create_subscription(db, clock, org, customer, [ItemSpec(tenant.monthly_big, 3)], start_at=START)
    coupon = create_coupon(db, clock, org, CouponSpec("Third off", "once", percent_off=Decimal("33.3333")))
    redeem(db, clock, org, subscription_id=sub, coupon_id=coupon)
    run_billing(db, FixedClock(START + timedelta(hours=1)), at=START + timedelta(hours=1))
    [proforma] = _docs(db, customer)
    invoice_id = convert_proforma(db, clock, org, proforma["id"])
    invoice = next(d for d in _docs(db, customer) if d["id"] == invoice_id)
    assert (invoice["subtotal_minor"], invoice["total_minor"]) == (
        proforma["subtotal_minor"],
        proforma["total_minor"],
    )
    assert _allowances(db, invoice_id) == _allowances(db, proforma["id"]) != []
    report = reconcile(db)
    assert {k: [v.row for v in rows] for k, rows in report.items() if rows} == {}
