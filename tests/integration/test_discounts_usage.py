"""Usage metrics in a coupon's scope (issue 17), on both databases: a coupon naming a metric reduces the
usage lines that charge it (before tax, like any discount), not the subscription's other lines, and
`usage_lines` keeps the undiscounted amount so late usage is compared like with like."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.discounts import DiscountRefusedError
from fiscus.services.billing_run import run_billing
from fiscus.services.catalog import create_price
from fiscus.services.discounts import CouponSpec, create_coupon, redeem
from fiscus.services.subscriptions import ItemSpec, create_subscription
from fiscus.services.usage_ingest import EventIn, ingest_events
from fiscus.services.usage_metrics import MetricSpec, create_metric
from fiscus.services.usage_prices import UsageSpec
from tests.builders import make_customer, make_tenant
from tests.integration.test_usage_billing import tenant_variant


def test_a_metric_scoped_coupon_reduces_its_usage_lines_only(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg", slug="usage-coupon")  # EUR, 20 %
    org = tenant.org_id
    customer = make_customer(db, clock, tenant)
    metric = create_metric(db, clock, org, MetricSpec("gb", "Storage", "sum", "gb"))
    other = create_metric(db, clock, org, MetricSpec("calls", "Calls", "sum", "n"))
    usage = create_price(
        db,
        clock,
        org,
        tenant_variant(db, org),
        currency_code="EUR",
        unit_amount="0",
        interval="month",
        usage=UsageSpec(metric, "per_unit", {"unit_price": "0.10"}),
    )
    sub = create_subscription(db, clock, org, customer, [ItemSpec(tenant.monthly, 1), ItemSpec(usage, 1)])
    half = create_coupon(
        db, clock, org, CouponSpec("Half storage", "forever", percent_off=Decimal(50), metric_ids=[metric])
    )
    redeem(db, clock, org, subscription_id=sub, coupon_id=half)
    elsewhere = create_coupon(
        db, clock, org, CouponSpec("Calls only", "forever", percent_off=Decimal(10), metric_ids=[other])
    )
    start = clock.now()
    clock.set(start + timedelta(days=3))
    ingest_events(db, clock, org, [EventIn("a", "gb", start + timedelta(days=1), {"gb": "100"}, customer)])
    clock.set(start + timedelta(days=40))
    run_billing(db, clock)
    with db.read() as conn:
        d, da = t.documents.c, td.document_allowances.c
        docs = conn.execute(select(d.id, d.subtotal_minor, d.tax_minor, d.total_minor).order_by(d.id)).all()
        allowances = conn.execute(select(da.document_id, da.amount_minor, da.reason).order_by(da.id)).all()
        billed = conn.execute(select(tu.usage_lines.c.amount_minor)).scalars().all()
    usage_doc = docs[-1]
    # 100 GB × 0.10 = 10.00, half off = 5.00, + 20 % = 6.00; the monthly fee is never discounted
    assert (usage_doc.subtotal_minor, usage_doc.tax_minor, usage_doc.total_minor) == (500, 100, 600)
    assert [(a.document_id, a.amount_minor) for a in allowances] == [(usage_doc.id, 500)]
    assert billed == [1000]  # undiscounted, what late usage is compared with
    assert all(a.reason.startswith("Half storage") for a in allowances)
    # a coupon whose metric the subscription does not charge covers nothing there
    with pytest.raises(DiscountRefusedError) as refused:
        redeem(db, clock, org, subscription_id=sub, coupon_id=elsewhere)
    assert refused.value.reason.value == "nothing_covered"
