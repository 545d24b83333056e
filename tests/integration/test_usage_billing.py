"""Usage billed in arrears by the billing run, on both databases: tiers as lines, once per period."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.billing_run import run_billing
from fiscus.services.catalog import create_price
from fiscus.services.subscriptions import ItemSpec, create_subscription
from fiscus.services.usage_ingest import EventIn, ingest_events
from fiscus.services.usage_metrics import MetricSpec, create_metric
from fiscus.services.usage_prices import UsageSpec
from fiscus.services.usage_settings import update_usage_settings
from tests.builders import make_customer, make_tenant

TIERS = [
    {"up_to": "100", "unit_price": "0.05"},
    {"up_to": "1000", "unit_price": "0.03", "flat_fee": "2"},
    {"up_to": None, "unit_price": "0.0125"},
]


def test_usage_of_a_period_is_billed_once_after_its_grace(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg", slug="vps")
    org = tenant.org_id
    customer = make_customer(db, clock, tenant)
    metric = create_metric(
        db, clock, org, MetricSpec("bandwidth", "Bandwidth", "sum", "gb", group_by="region")
    )
    variant = tenant_variant(db, org)
    price = create_price(
        db,
        clock,
        org,
        variant,
        currency_code="EUR",
        unit_amount="0",
        interval="month",
        usage=UsageSpec(metric, "graduated", {"tiers": TIERS}),
    )
    create_subscription(db, clock, org, customer, [ItemSpec(tenant.monthly, 1), ItemSpec(price, 1)])
    start = clock.now()
    events = [
        EventIn(
            f"t{i}",
            "bandwidth",
            start + timedelta(hours=i * 7),
            {"gb": "37.5", "region": "eu" if i % 3 else "us"},
            customer,
        )
        for i in range(40)
    ]
    for i in range(0, 40, 10):
        clock.set(events[i + 9].timestamp + timedelta(minutes=1))
        ingest_events(db, clock, org, events[i : i + 10])
    clock.set(start)
    run_billing(db, clock)  # the advance document of the first period, without the usage price
    with db.read() as conn:
        first = conn.execute(select(t.document_lines.c.kind, t.document_lines.c.price_id)).all()
    assert [(k, p) for k, p in first] == [("subscription", tenant.monthly)]

    with db.read() as conn:
        period_end = conn.execute(select(t.subscriptions.c.current_period_end)).scalar_one()
    clock.set(period_end + timedelta(minutes=30))  # inside the one-hour grace: usage not billed yet
    run_billing(db, clock)
    assert usage_documents(db) == []
    clock.set(period_end + timedelta(hours=2))
    run_billing(db, clock)
    run_billing(db, clock)
    docs = usage_documents(db)
    assert len(docs) == 1
    in_period = [e for e in events if start <= e.timestamp < period_end]
    expected = {}
    for region in ("eu", "us"):
        q = sum((Decimal("37.5") for e in in_period if e.properties["region"] == region), Decimal(0))
        expected[region] = q
    with db.read() as conn:
        lines = conn.execute(
            select(tu.usage_lines.c.group_value, tu.usage_lines.c.quantity, tu.usage_lines.c.amount_minor)
        ).all()
        doc_lines = conn.execute(
            select(
                t.document_lines.c.description, t.document_lines.c.quantity, t.document_lines.c.amount_minor
            )
            .where(t.document_lines.c.document_id == docs[0])
            .order_by(t.document_lines.c.position)
        ).all()
    assert {g: q for g, q, _a in lines} == expected
    assert sum(a for _d, _q, a in doc_lines) == sum(a for _g, _q, a in lines)
    assert any("tier 2" in d and "eu" in d for d, _q, _a in doc_lines)


def tenant_variant(db: Database, org: int) -> int:
    with db.read() as conn:
        variants = (
            select(t.variants.c.id).where(t.variants.c.organization_id == org).order_by(t.variants.c.id)
        )
        return int(conn.execute(variants.limit(1)).scalar_one())


def usage_documents(db: Database) -> list[int]:
    with db.read() as conn:
        return list(
            conn.execute(
                select(t.document_lines.c.document_id).where(t.document_lines.c.kind == "usage").distinct()
            ).scalars()
        )


def _billed_world(db: Database, clock: FixedClock, policy: str) -> tuple[int, int, datetime, datetime]:
    tenant = make_tenant(db, clock, "bg", slug=f"late-{policy}")
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
    create_subscription(db, clock, org, customer, [ItemSpec(price, 1)])
    start = clock.now()
    clock.set(start + timedelta(days=3))
    ingest_events(db, clock, org, [EventIn("a", "gb", start + timedelta(days=1), {"gb": "100"}, customer)])
    clock.set(start + timedelta(days=40))
    run_billing(db, clock)
    return org, customer, start, clock.now()


def _documents(db: Database) -> list[tuple[str, int]]:
    with db.read() as conn:
        return [
            (r.type, r.total_minor)
            for r in conn.execute(
                select(t.documents.c.type, t.documents.c.total_minor).order_by(t.documents.c.id)
            )
        ]


def test_late_usage_after_issue_is_a_supplementary_invoice_or_a_credit_note(
    db: Database, clock: FixedClock
) -> None:
    org, customer, start, _now = _billed_world(db, clock, "invoice")
    assert _documents(db) == [("invoice", 1200)]  # 100 × 0.10 + 20 % VAT
    late = [EventIn("b", "gb", start + timedelta(days=2), {"gb": "50"}, customer)]
    ingest_events(db, clock, org, late)
    ingest_events(db, clock, org, late)  # a resend changes nothing
    run_billing(db, clock)
    run_billing(db, clock)
    assert _documents(db) == [("invoice", 1200), ("invoice", 600)]
    ingest_events(db, clock, org, [EventIn("c", "gb", start + timedelta(days=2), {"gb": "-30"}, customer)])
    run_billing(db, clock)
    assert _documents(db) == [("invoice", 1200), ("invoice", 600), ("credit_note", 360)]


def test_late_usage_under_the_credit_note_policy_credits_and_invoices_again(
    db: Database, clock: FixedClock
) -> None:
    org, customer, start, _now = _billed_world(db, clock, "credit_note")
    ingest_events(db, clock, org, [EventIn("b", "gb", start + timedelta(days=2), {"gb": "50"}, customer)])
    run_billing(db, clock)
    assert _documents(db) == [("invoice", 1200), ("credit_note", 1200), ("invoice", 1800)]
