"""`fiscus reconcile` on a subscription with a fixed price and a usage price, on both databases: the
fixed part billed ahead and the usage billed in arrears are two documents of the same period (and a
late event adds a third), which is not a double; two advance documents of one period still are."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.services.billing_run import run_billing
from fiscus.services.catalog import create_price
from fiscus.services.documents import mark_paid
from fiscus.services.reconcile import reconcile
from fiscus.services.subscriptions import ItemSpec, create_subscription
from fiscus.services.usage_ingest import EventIn, ingest_events
from fiscus.services.usage_metrics import MetricSpec, create_metric
from fiscus.services.usage_prices import UsageSpec
from fiscus.services.usage_settings import update_usage_settings
from tests.builders import make_customer, make_tenant
from tests.integration.test_usage_billing import TIERS, tenant_variant

CHECKS = ("one_live_document_per_period", "usage_documents_of_billed_periods")


def test_fixed_and_usage_documents_of_one_period_are_not_doubles(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg", slug="reconcile-usage", subscription_document=DocumentType.PROFORMA)
    org = tenant.org_id
    update_usage_settings(db, org, late_days=40)
    customer = make_customer(db, clock, tenant)
    metric = create_metric(db, clock, org, MetricSpec("bandwidth", "Bandwidth", "sum", "gb"))
    usage = create_price(
        db,
        clock,
        org,
        tenant_variant(db, org),
        currency_code="EUR",
        unit_amount="0",
        interval="month",
        usage=UsageSpec(metric, "graduated", {"tiers": TIERS}),
    )
    sub = create_subscription(db, clock, org, customer, [ItemSpec(tenant.monthly, 1), ItemSpec(usage, 1)])
    start = clock.now()
    clock.set(start + timedelta(days=2))
    ingest_events(
        db, clock, org, [EventIn("a", "bandwidth", start + timedelta(days=1), {"gb": "250"}, customer)]
    )
    clock.set(start + timedelta(days=40))
    run_billing(db, clock)  # period 1 ahead, period 1's usage in arrears, period 2 ahead
    d = t.documents.c
    with db.read() as conn:
        first_start = conn.execute(select(d.period_start).order_by(d.id).limit(1)).scalar_one()
        proformas = conn.execute(select(d.id).where(d.subscription_id == sub).order_by(d.id)).scalars().all()
    assert len(proformas) == 3
    for proforma in proformas:  # each becomes its invoice: the usage invoice is known by its proforma
        mark_paid(db, clock, org, proforma)
    ingest_events(
        db, clock, org, [EventIn("b", "bandwidth", start + timedelta(days=3), {"gb": "10"}, customer)]
    )
    run_billing(db, clock)  # the late event: a supplementary document for period 1
    with db.read() as conn:
        of_first = conn.execute(
            select(d.type, d.status).where(d.subscription_id == sub, d.period_start == first_start)
        ).all()
    live = [r for r in of_first if r.status not in ("void", "converted")]
    assert len(live) == 3  # the advance invoice, the usage invoice and the supplement
    report = reconcile(db)
    assert {name: report[name] for name in CHECKS} == {name: [] for name in CHECKS}

    with db.write() as conn:  # a real double: period 2's advance invoice moved onto period 1
        second = conn.execute(
            select(d.id)
            .where(d.subscription_id == sub, d.type == "invoice", d.period_start > first_start)
            .order_by(d.id)
            .limit(1)
        ).scalar_one()
        conn.execute(update(t.documents).where(d.id == second).values(period_start=first_start))
    doubles = reconcile(db)["one_live_document_per_period"]
    assert [(v.row["subscription_id"], v.row["documents"]) for v in doubles] == [(sub, 2)]
