"""No double anything, shown with several real processes on each database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.billing_run import run_billing
from fiscus.services.reconcile import reconcile
from fiscus.testing.bulk import bulk_customers, bulk_orders, bulk_subscriptions
from tests import forkserver, workers
from tests.builders import make_tenant

pytestmark = pytest.mark.slow
CTX = forkserver.context()  # children forked from a server that imported Fiscus once


def _run_all(targets: list[tuple[object, tuple[object, ...]]], start: object) -> None:
    procs = [CTX.Process(target=fn, args=args) for fn, args in targets]  # type: ignore[arg-type]
    for p in procs:
        p.start()
    start.set()  # type: ignore[attr-defined]
    for p in procs:
        p.join(300)
        assert p.exitcode == 0, f"worker exited with {p.exitcode}"


def test_four_processes_bill_2000_subscriptions_each_period_once(
    db: Database, db_url: str, clock: FixedClock
) -> None:
    tenant = make_tenant(db, clock, "bg")
    start_at = datetime(2026, 1, 1, 10, tzinfo=UTC)
    customers = bulk_customers(db, tenant.org_id, 2000, now=clock.now(), eu_business_every=10)
    bulk_subscriptions(
        db, tenant.org_id, customers, [tenant.monthly, tenant.monthly_big], start=start_at, now=clock.now()
    )
    at = start_at + timedelta(days=40)  # two periods due for every subscription
    start, out = CTX.Event(), CTX.Queue()
    _run_all([(workers.bill, (db_url, at, 50, start, out)) for _ in range(4)], start)
    results = [out.get(timeout=10) for _ in range(4)]
    assert sum(docs for docs, _ in results) == 4000
    assert sum(subs for _, subs in results) == 2000
    with db.read() as conn:
        periods = conn.execute(select(func.count()).select_from(t.subscription_periods)).scalar_one()
        per_sub = conn.execute(
            select(t.documents.c.subscription_id, func.count()).group_by(t.documents.c.subscription_id)
        ).all()
    assert periods == 4000
    assert {n for _s, n in per_sub} == {2}
    assert len(per_sub) == 2000
    assert run_billing(db, FixedClock(at), at=at).documents == 0
    assert not any(reconcile(db).values())


def test_eight_processes_issue_1000_documents_gapless_despite_aborts(
    db: Database, db_url: str, clock: FixedClock
) -> None:
    tenant = make_tenant(db, clock, "us", auto_issue=False)
    customers = bulk_customers(db, tenant.org_id, 50, now=clock.now())
    bulk_orders(
        db,
        tenant.org_id,
        [customers[i % 50] for i in range(1000)],
        tenant.one_off,
        now=clock.now(),
        currency="USD",
    )
    assert run_billing(db, clock).documents == 1000
    with db.read() as conn:
        drafts = conn.execute(select(t.documents.c.id).order_by(t.documents.c.id)).scalars().all()
    start, out = CTX.Event(), CTX.Queue()
    _run_all(
        [(workers.issue, (db_url, tenant.org_id, drafts[i::8], 1000 + i, start, out)) for i in range(8)],
        start,
    )
    aborts = sum(out.get(timeout=10) for _ in range(8))
    assert aborts > 0  # the faults really happened
    with db.read() as conn:
        rows = conn.execute(
            select(t.documents.c.sequence, t.documents.c.number, t.documents.c.issued_at).order_by(
                t.documents.c.sequence
            )
        ).all()
    sequences = [r.sequence for r in rows]
    assert sequences == list(range(1590, 1590 + 1000))
    assert len({r.number for r in rows}) == 1000
    issued = [r.issued_at for r in rows]
    assert issued == sorted(issued)  # number order is time order
    assert not any(reconcile(db).values())
