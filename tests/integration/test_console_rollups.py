"""The console's maintained aggregates (migration 0024) equal a recomputation from their sources after
every kind of write, on SQLite and PostgreSQL: `document_sums` (billing runs, state changes, amounts
paid, a moved and a deleted document, enough statements on PostgreSQL to fold the deltas),
`charge_recoveries` and `payment_hours` (card attempts failing then paid, a proforma paid through the
invoice it became, captures settling and changing), and the MRR history kept by the subscription
services. The list totals read from them agree with the documents for every plain filter."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import count
from typing import Any

from sqlalchemy import func, insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_mrr import mrr_events
from fiscus.adapters.db.tables_rollups import charge_recoveries, document_sums
from fiscus.domain.clock import FixedClock
from fiscus.queries import console_documents as cd
from fiscus.services.documents import mark_paid, void_document
from fiscus.services.reconcile import _rollup_checks
from fiscus.services.subscriptions import ItemSpec, cancel_subscription, change_subscription
from tests.api_support import build_world

_keys = count()


def _expected_totals(conn: Any, q: cd.DocumentQuery) -> list[cd.Total]:
    out: dict[tuple[str, str], list[int]] = {}
    for d in conn.execute(select(t.documents).where(t.documents.c.organization_id == q.organization_id)):
        if (q.status and d.status != q.status) or (q.type and d.type != q.type):
            continue
        if q.currency and d.currency != q.currency:
            continue
        if q.issued_from and (d.issue_date is None or d.issue_date < q.issued_from):
            continue
        if q.issued_to and (d.issue_date is None or d.issue_date > q.issued_to):
            continue
        if q.overdue_on and not (
            d.status == "open" and d.type != "credit_note" and d.due_date and d.due_date < q.overdue_on
        ):
            continue
        owed = d.total_minor - d.amount_paid_minor + d.amount_refunded_minor - d.amount_credited_minor
        due = owed if d.type != "credit_note" and d.status in ("open", "uncollectible") and owed > 0 else 0
        slot = out.setdefault((d.currency, d.type), [0, 0, 0])
        slot[0] += 1
        slot[1] += d.total_minor
        slot[2] += due
    return [cd.Total(c, ty, *v) for (c, ty), v in sorted(out.items())]


def _check(db: Database, org: int, today: date) -> None:
    with db.read() as conn:
        found = _rollup_checks(conn, 20)
        assert {k: v for k, v in found.items() if v} == {}
        issued = conn.execute(select(func.min(t.documents.c.issue_date))).scalar_one()
        for q in (
            cd.DocumentQuery(org),
            cd.DocumentQuery(org, status="open"),
            cd.DocumentQuery(org, type="invoice", currency="EUR"),
            cd.DocumentQuery(org, status="draft"),
            cd.DocumentQuery(org, issued_from=issued + timedelta(days=20), issued_to=today),
            cd.DocumentQuery(org, issued_to=issued),
            cd.DocumentQuery(org, overdue_on=today + timedelta(days=90)),
        ):
            assert cd.totals(conn, q) == _expected_totals(conn, q), q


def _attempt(conn: Any, doc: dict[str, Any], status: str, provider: str = "gateway") -> int:
    return int(
        conn.execute(
            insert(t.payment_attempts)
            .values(
                organization_id=doc["organization_id"],
                document_id=doc["id"],
                customer_id=doc["customer_id"],
                currency=doc["currency"],
                amount_minor=doc["total_minor"],
                capture_mode="sale",
                status=status,
                idempotency_key=f"rollup-{next(_keys)}",
                provider=provider,
                trigger="manual",
                created_at=doc["created_at"],
                updated_at=doc["created_at"],
            )
            .returning(t.payment_attempts.c.id)
        ).scalar_one()
    )


def test_rollups_follow_every_write(db: Database, clock: FixedClock) -> None:
    worlds = build_world(db, clock)
    org = worlds[0].org_id
    today = clock.now().date()
    _check(db, org, today)
    d = t.documents.c
    with db.read() as conn:
        docs = [
            dict(r)
            for r in conn.execute(
                select(t.documents).where(d.organization_id == org, d.status == "open").order_by(d.id)
            ).mappings()
        ]
    proforma = next(x for x in docs if x["type"] == "proforma")
    invoices = [x for x in docs if x["type"] == "invoice"]
    with db.write() as conn:  # first card attempts failing; one retried and paid, one paid outside
        for doc in (proforma, *invoices[:3]):
            attempt = _attempt(conn, doc, "pending")
            conn.execute(
                update(t.payment_attempts).where(t.payment_attempts.c.id == attempt).values(status="failed")
            )
        paid = _attempt(conn, invoices[0], "succeeded")
        _attempt(conn, invoices[1], "succeeded", provider="external")
        conn.execute(
            insert(t.payment_captures).values(
                organization_id=org,
                attempt_id=paid,
                document_id=invoices[0]["id"],
                amount_minor=invoices[0]["total_minor"],
                status="pending",
                idempotency_key=f"rollup-{next(_keys)}",
                created_at=clock.now(),
            )
        )
        conn.execute(
            update(t.payment_captures)
            .where(t.payment_captures.c.attempt_id == paid)
            .values(status="succeeded", settled_at=clock.now())
        )
    mark_paid(db, clock, org, proforma["id"])  # paid on the invoice it becomes
    void_document(db, clock, org, invoices[3]["id"])
    mark_paid(db, clock, org, invoices[4]["id"])
    _check(db, org, today)
    with db.read() as conn:
        recovered = dict(
            conn.execute(select(charge_recoveries.c.document_id, charge_recoveries.c.recovered)).all()
        )
    assert recovered == {proforma["id"]: 1, invoices[0]["id"]: 1, invoices[1]["id"]: 1, invoices[2]["id"]: 0}
    with db.write() as conn:  # a draft, moved to the other organisation, paid in part, then deleted
        row = conn.execute(select(t.documents).where(d.id == invoices[5]["id"])).mappings().one()
        values = {k: v for k, v in row.items() if k not in ("id", "converted_from_id")}
        values.update(status="draft", sequence=None, number=None, issue_date=None, due_date=None)
        new_id = conn.execute(insert(t.documents).values(**values).returning(d.id)).scalar_one()
    _check(db, org, today)
    with db.write() as conn:
        conn.execute(update(t.documents).where(d.id == new_id).values(organization_id=worlds[1].org_id))
        conn.execute(update(t.documents).where(d.id == invoices[5]["id"]).values(amount_paid_minor=1))
    _check(db, org, today)
    with db.write() as conn:
        conn.execute(t.documents.delete().where(d.id == new_id))
    for _ in range(12):  # 24 statements on one key: on PostgreSQL, past the point where deltas fold
        for status in ("uncollectible", "open"):
            with db.write() as conn:
                conn.execute(update(t.documents).where(d.id == invoices[2]["id"]).values(status=status))
    _check(db, org, today)
    with db.read() as conn:
        rows = conn.execute(
            select(func.count())
            .select_from(document_sums)
            .where(
                document_sums.c.organization_id == org,
                document_sums.c.issue_date == invoices[2]["issue_date"],
                document_sums.c.status == "open",
            )
        ).scalar_one()
    assert rows <= 10
    # the MRR history, rewritten by the subscription services
    tenant = worlds[0].tenant
    s = t.subscriptions.c
    with db.read() as conn:
        subs = list(conn.execute(select(s.id).where(s.organization_id == org).order_by(s.id)).scalars())
    change_subscription(db, clock, org, subs[0], [ItemSpec(tenant.monthly, 3)])
    clock.advance(timedelta(days=1))
    cancel_subscription(db, clock, org, subs[1], at_period_end=True)
    clock.advance(timedelta(days=1))
    cancel_subscription(db, clock, org, subs[0], at_period_end=False)
    _check(db, org, today)
    with db.read() as conn:
        kinds = set(
            conn.execute(select(mrr_events.c.kind).where(mrr_events.c.organization_id == org)).scalars()
        )
    assert {"new", "expansion", "churn", "started", "ended"} <= kinds
