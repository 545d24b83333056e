"""EN 16931 with discounts (issue 17): invoices whose lines carry coupons (percentage over several
rates, a fixed amount, stacked, tax-inclusive prices, a proforma converted) and credit notes of them
pass the European Commission's Schematron in CII and UBL with 0 fatal asserts, on both databases."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from fiscus.adapters.db.engine import Database
from fiscus.documents.einvoice import build_einvoice
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.services.billing_run import run_billing
from fiscus.services.credit_notes import issue_credit_note
from fiscus.services.discounts import CodeSpec, CouponSpec, create_coupon, create_promotion_code, redeem
from fiscus.services.documents import mark_paid
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.reconcile import reconcile
from fiscus.services.subscriptions import ItemSpec, create_subscription
from fiscus.services.wallets import grant_credits
from tests.builders import make_customer, make_tenant
from tests.en16931 import Schematron
from tests.integration.test_en16931_validation import _e_invoiced, _prices, _validate


def test_discounted_documents_pass_en16931(
    db: Database, clock: FixedClock, en16931: tuple[Schematron, Schematron]
) -> None:
    tenant = make_tenant(db, clock, "bg", slug="bg-discounts", facturx=True)
    org = tenant.org_id
    extra = _prices(db, clock, tenant)
    launch = create_coupon(db, clock, org, CouponSpec("Launch", "forever", percent_off=Decimal("12.5")))
    create_promotion_code(db, clock, org, CodeSpec(launch, "LAUNCH"))
    fixed = create_coupon(db, clock, org, CouponSpec("Welcome", "once", amounts_off={"EUR": Decimal("4.99")}))
    bg = make_customer(db, clock, tenant, 0, address_line1="бул. Витоша 1", city="София")
    de = make_customer(db, clock, tenant, 1, country="DE", vat_id="DE136695976", city="Berlin")
    redeem(db, clock, org, customer_id=bg, code="launch")
    redeem(db, clock, org, customer_id=bg, coupon_id=fixed)
    redeem(db, clock, org, customer_id=de, coupon_id=fixed)
    grant_credits(db, clock, org, bg, currency_code="EUR", amount=Decimal("7.77"))  # taxed as a discount
    several = [
        ItemSpec(tenant.one_off, "3"),
        ItemSpec(extra["reduced"], "2.5"),
        ItemSpec(extra["exempt"], "1"),
    ]
    order_bg = bill_order_now(db, clock, org, create_order(db, clock, org, bg, several))
    bill_order_now(db, clock, org, create_order(db, clock, org, de, [ItemSpec(tenant.one_off, "3")]))
    create_subscription(db, clock, org, bg, [ItemSpec(tenant.monthly, "2")])
    run_billing(db, clock)
    issue_credit_note(
        db,
        clock,
        org,
        order_bg,
        mode="lines",
        lines=[(1, Decimal(1))],
        reason="Fix",
        disposition="reduce_due",
    )
    issue_credit_note(
        db,
        clock,
        org,
        order_bg,
        mode="amount",
        amount=Decimal("5.00"),
        reason="Fix",
        disposition="reduce_due",
    )
    issue_credit_note(db, clock, org, order_bg, mode="full", reason="Fix", disposition="reduce_due")

    inclusive = make_tenant(
        db,
        clock,
        "bg",
        slug="bg-disc-incl",
        order_document=DocumentType.PROFORMA,
        facturx=True,
        tax_inclusive=True,
    )
    half = create_coupon(db, clock, inclusive.org_id, CouponSpec("Half", "forever", percent_off=Decimal(50)))
    buyer = make_customer(db, clock, inclusive, 5)
    redeem(db, clock, inclusive.org_id, customer_id=buyer, coupon_id=half)
    proforma = bill_order_now(
        db,
        clock,
        inclusive.org_id,
        create_order(db, clock, inclusive.org_id, buyer, [ItemSpec(inclusive.one_off, "2")]),
    )
    mark_paid(db, clock, inclusive.org_id, proforma)  # becomes a final invoice, its discount with it
    create_subscription(db, clock, inclusive.org_id, buyer, [ItemSpec(inclusive.monthly, "1")])
    clock.advance(timedelta(hours=1))
    run_billing(db, clock)

    docs = [d for t in (tenant, inclusive) for d in _e_invoiced(db, t.org_id)]
    discounted = [line for d in docs for line in d.lines if line.allowances]
    assert {line.tax_treatment for line in discounted} >= {"standard", "reduced", "exempt", "reverse_charge"}
    assert any(line.tax_inclusive for line in discounted)
    assert any(len(line.allowances) >= 2 for line in discounted)  # stacked
    assert any(a.reason == "Promotional credit" for line in discounted for a in line.allowances)
    assert sum(d.type is DocumentType.CREDIT_NOTE for d in docs) == 3
    # a coupon or credit without a scope is stated once per VAT rate at document level (BG-20)
    whole = [d for d in _e_invoiced(db, tenant.org_id) if build_einvoice(d).allowances]
    assert whole
    assert any(a.reason == "Promotional credit" for d in whole for a in build_einvoice(d).allowances)
    for t in (tenant, inclusive):
        assert _validate(db, t.org_id, en16931).fatal == []
    report = reconcile(db)
    assert {k: [v.row for v in rows] for k, rows in report.items() if rows} == {}
