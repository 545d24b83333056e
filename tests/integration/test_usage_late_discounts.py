"""Late usage keeps its period's discounts (issue 16 with issue 17), on both databases: an adjustment
carries the coupons its period's usage document carried (even one that has ended since), takes back
what was charged (net of them), counts no further period, and a coupon redeemed later does not reach
it; a period billed without a document gets the run's discounts on its first one."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.billing_run import run_billing
from fiscus.services.catalog import create_price
from fiscus.services.discounts import CouponSpec, create_coupon, redeem
from fiscus.services.reconcile import reconcile
from fiscus.services.subscriptions import ItemSpec, create_subscription
from fiscus.services.usage_ingest import EventIn, ingest_events
from fiscus.services.usage_metrics import MetricSpec, create_metric
from fiscus.services.usage_prices import UsageSpec
from fiscus.services.usage_settings import update_usage_settings
from tests.builders import make_customer, make_tenant
from tests.integration.test_usage_billing import tenant_variant


def _world(
    db: Database, clock: FixedClock, policy: str, *, used: bool = True, periods: int = 1
) -> tuple[int, int, int, datetime]:
    """A subscription billing 0.10 EUR per GB (+ 20 % VAT) with a 20 % coupon for `periods` documents;
    100 GB used in its first period (or nothing), billed. (org, customer, discount, period start)."""
    tenant = make_tenant(db, clock, "bg", slug=f"late-discount-{policy}-{used}")
    org = tenant.org_id
    update_usage_settings(db, org, late_days=40, late_policy=policy)
    customer = make_customer(db, clock, tenant)
    metric = create_metric(db, clock, org, MetricSpec("gb", "Storage delta", "sum", "gb"))
    price = create_price(
        db,
        clock,
        org,
        tenant_variant(db, org),
        currency_code="EUR",
        unit_amount="0",
        interval="month",
        usage=UsageSpec(metric, "per_unit", {"unit_price": "0.10"}),
    )
    sub = create_subscription(db, clock, org, customer, [ItemSpec(price, 1)])
    coupon = create_coupon(
        db, clock, org, CouponSpec("Launch", "repeating", percent_off=Decimal(20), duration_periods=periods)
    )
    discount = redeem(db, clock, org, subscription_id=sub, coupon_id=coupon)
    start = clock.now()
    if used:
        clock.set(start + timedelta(days=3))
        ingest_events(
            db, clock, org, [EventIn("a", "gb", start + timedelta(days=1), {"gb": "100"}, customer)]
        )
    clock.set(start + timedelta(days=40))
    run_billing(db, clock)
    return org, customer, discount, start


def _late(db: Database, clock: FixedClock, org: int, customer: int, at: datetime, tx: str, gb: str) -> None:
    ingest_events(db, clock, org, [EventIn(tx, "gb", at + timedelta(days=2), {"gb": gb}, customer)])
    run_billing(db, clock)


def _documents(db: Database) -> list[tuple[str, int, int]]:
    """(type, total, discount) of every document, in order."""
    d, da = t.documents.c, td.document_allowances.c
    with db.read() as conn:
        off = dict(
            conn.execute(select(da.document_id, da.amount_minor.label("x")).where(da.amount_minor > 0)).all()
        )
        return [
            (r.type, r.total_minor, off.get(r.id, 0))
            for r in conn.execute(select(d.id, d.type, d.total_minor).order_by(d.id))
        ]


def _applied(db: Database, discount: int) -> tuple[int, str]:
    dc = td.discounts.c
    with db.read() as conn:
        row = conn.execute(select(dc.periods_applied, dc.status).where(dc.id == discount)).one()
    return row.periods_applied, row.status


def _clean(db: Database) -> None:
    report = reconcile(db)
    assert {name: rows for name, rows in report.items() if rows} == {}


def test_supplements_and_credits_keep_the_period_coupon_and_count_nothing(
    db: Database, clock: FixedClock
) -> None:
    org, customer, discount, start = _world(db, clock, "invoice")
    # 100 GB × 0.10 = 10.00, 20 % off = 8.00, + 20 % VAT = 9.60; the once-only period is used up
    assert _documents(db) == [("invoice", 960, 200)]
    assert _applied(db, discount) == (1, "ended")
    later = create_coupon(db, clock, org, CouponSpec("Later", "forever", percent_off=Decimal(50)))
    later_discount = redeem(db, clock, org, customer_id=customer, coupon_id=later)  # after the period

    _late(db, clock, org, customer, start, "b", "50")
    # 150 GB: 15.00 − 20 % = 12.00, less the 8.00 charged = 4.00, + VAT = 4.80 (not 6.00, nor 50 % off)
    assert _documents(db)[1:] == [("invoice", 480, 300)]
    _late(db, clock, org, customer, start, "c", "-30")
    # 120 GB: 12.00 − 20 % = 9.60, less the 12.00 charged = −2.40: a credit note of 2.88
    assert _documents(db)[2:] == [("credit_note", 288, 0)]
    _late(db, clock, org, customer, start, "d", "10")
    # 130 GB: 13.00 − 20 % = 10.40, less the 9.60 the credit note left charged = 0.80, + VAT = 0.96
    assert _documents(db)[3:] == [("invoice", 96, 260)]
    billed = 960 + 480 - 288 + 96
    assert billed == 1248  # = 130 GB × 0.10 × 80 % × 1.2, to the minor unit
    assert _applied(db, discount) == (1, "ended")  # no further period counted
    assert _applied(db, later_discount) == (0, "active")
    _clean(db)


def test_the_credit_note_policy_invoices_the_period_again_with_its_coupon(
    db: Database, clock: FixedClock
) -> None:
    org, customer, discount, start = _world(db, clock, "credit_note")
    _late(db, clock, org, customer, start, "b", "50")
    # the 9.60 credited in full, the period invoiced again: 15.00 − 20 % = 12.00 + VAT = 14.40
    assert _documents(db) == [("invoice", 960, 200), ("credit_note", 960, 0), ("invoice", 1440, 300)]
    assert _applied(db, discount) == (1, "ended")
    _clean(db)


def test_a_period_billed_without_a_document_gets_the_run_discounts_on_its_first(
    db: Database, clock: FixedClock
) -> None:
    org, customer, discount, start = _world(db, clock, "invoice", used=False, periods=2)
    assert _documents(db) == []  # nothing used, nothing owed: no document, no period counted
    assert _applied(db, discount) == (0, "active")
    _late(db, clock, org, customer, start, "b", "100")
    assert _documents(db) == [("invoice", 960, 200)]
    assert _applied(db, discount) == (1, "active")
    _clean(db)
