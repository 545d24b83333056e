"""A batch large enough for the bulk path (COPY with ids taken from the sequence on PostgreSQL): every
document, period and line must be linked and numbered exactly as the row-by-row path does it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.arrays import any_of, update_by_id
from fiscus.adapters.db.documents import COPY_THRESHOLD
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_email import email_outbox
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


def test_credit_in_a_bulk_batch_pays_and_unplans_only_its_invoices(db: Database, clock: FixedClock) -> None:
    """Planned charges are written with the rows; credit that pays an invoice in the same batch takes
    its plan off again, and only its plan. Every issued invoice queues one email to its customer."""
    tenant = make_tenant(db, clock, "bg")
    n = COPY_THRESHOLD + 3
    customers = bulk_customers(db, tenant.org_id, n, now=clock.now())
    bulk_subscriptions(db, tenant.org_id, customers, [tenant.monthly], start=clock.now(), now=clock.now())
    clock.advance(timedelta(days=1))
    assert run_billing(db, clock, batch_size=n).documents == n
    d, cc = t.documents.c, t.customer_credits.c
    credited = set(customers[::10])
    with db.write() as conn:
        first = {r.customer_id: r.id for r in conn.execute(select(d.customer_id, d.id))}
        conn.execute(
            insert(t.customer_credits),
            [
                {
                    "organization_id": tenant.org_id,
                    "customer_id": c,
                    "currency": "EUR",
                    "amount_minor": 10**9,
                    "document_id": first[c],
                    "created_at": clock.now(),
                }
                for c in sorted(credited)
            ],
        )
    clock.advance(timedelta(days=31))
    assert run_billing(db, clock, batch_size=n).documents == n
    with db.read() as conn:
        second = conn.execute(
            select(d.id, d.customer_id, d.status, d.next_payment_attempt_at, d.amount_credited_minor).where(
                d.id.not_in(list(first.values()))
            )
        ).all()
        emails = conn.execute(
            select(email_outbox.c.document_id, email_outbox.c.customer_id).where(
                email_outbox.c.kind == "invoice_issued"
            )
        ).all()
        taken = conn.execute(select(cc.customer_id).where(cc.amount_minor < 0)).scalars().all()
    assert len(second) == n
    for r in second:
        if r.customer_id in credited:
            assert (r.status, r.next_payment_attempt_at) == ("paid", None)
            assert r.amount_credited_minor > 0
        else:
            assert (r.status, r.next_payment_attempt_at, r.amount_credited_minor) == ("open", clock.now(), 0)
    assert sorted(taken) == sorted(credited)
    owner = {r.id: r.customer_id for r in second} | {i: c for c, i in first.items()}
    assert sorted(e.document_id for e in emails) == sorted(owner)
    assert all(owner[e.document_id] == e.customer_id for e in emails)
    assert not any(reconcile(db).values())


def test_any_of_and_update_by_id_match_the_row_by_row_forms(db: Database, clock: FixedClock) -> None:
    """The array forms used on PostgreSQL select and update exactly what `IN (...)` and a per-row
    UPDATE do on SQLite: no match for an empty list, text compared whole (never cut to the column)."""
    tenant = make_tenant(db, clock, "bg")
    ids = bulk_customers(db, tenant.org_id, 5, now=clock.now())
    c, s = t.customers.c, t.subscriptions.c
    with db.write() as conn:
        email = "a" * 242 + "@example.com"  # the column's full 254 characters
        conn.execute(update(t.customers).where(c.id == ids[0]).values(email=email))
        assert (
            sorted(conn.execute(select(c.id).where(any_of(conn, c.id, [*ids[1:3], -1]))).scalars())
            == ids[1:3]
        )
        assert conn.execute(select(c.id).where(any_of(conn, c.id, []))).all() == []
        assert conn.execute(select(c.id).where(any_of(conn, c.email, [email]))).scalars().all() == [ids[0]]
        assert conn.execute(select(c.id).where(any_of(conn, c.email, [email + "x"]))).all() == []
    subs = bulk_subscriptions(db, tenant.org_id, ids, [tenant.monthly], start=clock.now(), now=clock.now())
    later = clock.now() + timedelta(days=40)
    changes = [
        {"sid": sid, "status": "ended" if k % 2 else "active", "ended_at": later if k % 2 else None}
        for k, sid in enumerate(subs[:4])
    ]
    with db.write() as conn:
        update_by_id(conn, t.subscriptions, changes, id_key="sid", updated_at=later)
        update_by_id(conn, t.subscriptions, [], id_key="sid", updated_at=later)
        got = conn.execute(select(s.id, s.status, s.ended_at, s.updated_at).order_by(s.id)).all()
    want = {ch["sid"]: (ch["status"], ch["ended_at"], later) for ch in changes}
    for r in got:
        if r.id in want:
            assert (r.status, r.ended_at, r.updated_at) == want[r.id]
        else:
            assert (r.status, r.ended_at) == ("active", None)
            assert r.updated_at != later
