"""A batch large enough for the bulk path (COPY with ids taken from the sequence on PostgreSQL): every
document, period and line must be linked and numbered exactly as the row-by-row path does it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import COPY_THRESHOLD
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.queries.documents import count_documents
from fiscus.queries.scope import Scope
from fiscus.services.billing_run import run_billing
from fiscus.services.reconcile import reconcile
from fiscus.testing.bulk import bulk_customers, bulk_subscriptions
from tests.builders import make_tenant


def test_a_bulk_batch_links_and_numbers_every_row(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    n = COPY_THRESHOLD * 2 + 7
    customers = bulk_customers(db, tenant.org_id, n, now=clock.now())
    subs = bulk_subscriptions(
        db, tenant.org_id, customers, [tenant.monthly], start=clock.now(), now=clock.now()
    )
    clock.advance(timedelta(days=1))
    summary = run_billing(db, clock, batch_size=n)
    assert (summary.documents, summary.subscriptions) == (n, n)
    d, p, line = t.documents.c, t.subscription_periods.c, t.document_lines.c
    with db.read() as conn:
        rows = conn.execute(select(d.id, d.sequence, d.subscription_id).order_by(d.id)).all()
        # ids follow the batch order, and so do the gapless numbers
        assert [r.sequence for r in rows] == sorted(r.sequence for r in rows)
        assert len({r.sequence for r in rows}) == n
        assert sorted(r.subscription_id for r in rows) == sorted(subs)
        linked = conn.execute(
            select(func.count())
            .select_from(t.subscription_periods.join(t.documents, p.document_id == d.id))
            .where(p.subscription_id == d.subscription_id)
        ).scalar_one()
        assert linked == n
        lines_ok = conn.execute(
            select(func.count())
            .select_from(t.document_lines.join(t.subscription_periods, line.subscription_period_id == p.id))
            .where(line.document_id == p.document_id)
        ).scalar_one()
        assert lines_ok == n
    # ids came from the sequence: the row-by-row path (small batches) inserts after them without a clash
    clock.advance(timedelta(days=31))
    again = run_billing(db, clock, batch_size=COPY_THRESHOLD // 5)
    assert again.documents == n
    with db.read() as conn:
        assert conn.execute(select(func.count(func.distinct(d.id)))).scalar_one() == 2 * n
        assert count_documents(conn, Scope(tenant.org_id)) == 2 * n  # the triggers saw the COPY too
    assert not any(reconcile(db).values())
