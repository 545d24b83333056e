"""A worker killed with SIGKILL mid-way through billing usage, on both databases: restarted, with every
event sent again, it bills each period once and the invoices equal a brute-force recomputation (the
same invoices an uninterrupted run makes)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from multiprocessing.process import BaseProcess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.engine import Database
from fiscus.domain.charges import compute_charge
from fiscus.domain.clock import FixedClock
from fiscus.domain.money import currency, to_minor
from fiscus.services.catalog import create_price
from fiscus.services.subscriptions import ItemSpec, create_subscription
from fiscus.services.usage_ingest import EventIn, ingest_events
from fiscus.services.usage_metrics import MetricSpec, create_metric
from fiscus.services.usage_prices import UsageSpec, charge_of
from fiscus.services.usage_settings import update_usage_settings
from tests import usage_workers
from tests.builders import make_customer, make_tenant
from tests.usage_support import TIERS

pytestmark = pytest.mark.slow
SUBSCRIPTIONS = 24
CTX = mp.get_context("fork")  # the worker starts without importing anything again


def _billed(db: Database, org_id: int) -> int:
    p = tu.usage_periods.c
    with db.read() as conn:
        query = select(func.count()).select_from(tu.usage_periods).where(p.organization_id == org_id)
        return int(conn.execute(query).scalar_one())


def test_a_worker_killed_mid_billing_then_restarted_bills_the_same(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    clock = FixedClock(now - timedelta(days=45))
    tenant = make_tenant(db, clock, "bg", slug="usage-worker-kill", auto_issue=False)  # drafts: no PDFs
    org = tenant.org_id
    update_usage_settings(db, org, late_days=60)
    metric = create_metric(db, clock, org, MetricSpec("calls", "Calls", "sum", "n"))
    with db.read() as conn:
        variant = conn.execute(
            select(t.prices.c.variant_id).where(t.prices.c.id == tenant.monthly)
        ).scalar_one()
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
    subs: dict[int, int] = {}
    for n in range(SUBSCRIPTIONS):
        customer = make_customer(db, clock, tenant, n)
        subs[create_subscription(db, clock, org, customer, [ItemSpec(price, 1)])] = customer
    start = clock.now()
    events = [
        EventIn(f"e{c}-{i}", "calls", start + timedelta(days=1 + i * 5, minutes=c), {"n": str(c * 7 + i)}, c)
        for c in subs.values()
        for i in range(5)
    ]
    ingest_now = FixedClock(now)
    ingest_events(db, ingest_now, org, events)

    def worker(once: bool) -> BaseProcess:
        proc = CTX.Process(target=usage_workers.bill, args=(db_url, str(tmp_path / "documents"), once))
        proc.start()
        return proc

    first = worker(once=False)
    try:
        deadline = time.monotonic() + 120
        while _billed(db, org) == 0 and time.monotonic() < deadline and first.is_alive():
            time.sleep(0.01)
        assert first.pid is not None
        os.kill(first.pid, signal.SIGKILL)  # mid-way through the usage batches
        first.join(30)
    finally:
        if first.is_alive():
            first.kill()
    at_kill = _billed(db, org)
    assert 0 < at_kill < SUBSCRIPTIONS, at_kill

    ingest_events(db, ingest_now, org, events)  # everything sent again: a no-op
    second = worker(once=True)
    second.join(180)
    assert second.exitcode == 0

    eur = currency("EUR")
    with db.read() as conn:
        u = tu.usage_lines.c
        lines = conn.execute(
            select(u.subscription_id, u.document_id, u.amount_minor, u.quantity).where(
                u.organization_id == org
            )
        ).all()
        d = t.documents.c
        documents = conn.execute(
            select(func.count()).select_from(t.documents).where(d.organization_id == org)
        ).scalar_one()
    assert _billed(db, org) == SUBSCRIPTIONS
    assert documents == SUBSCRIPTIONS  # one usage document per subscription, none twice
    assert sorted(r.subscription_id for r in lines) == sorted(subs)
    for r in lines:
        customer = subs[r.subscription_id]
        q = sum((Decimal(customer * 7 + i) for i in range(5)), Decimal(0))
        assert r.quantity == q
        assert r.amount_minor == to_minor(
            compute_charge(charge_of("graduated", {"tiers": TIERS}), q, eur).amount, eur
        )
