"""Every sortable column of every console list orders its rows, both ways, with keyset pages that
neither repeat nor skip a row (ties broken by id, NULLs last ascending and first descending), on both
databases; and the pages show sortable headers with `aria-sort`, refuse a bad sort by its field, and
the webhook deliveries list has the totals and the CSV of its filtered set."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, insert, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.queries import console_documents as cd
from fiscus.queries import console_lists as cl
from fiscus.queries import console_money as cm
from fiscus.queries.console_sort import KeyPage, Sort
from fiscus.services.billing_run import run_billing
from fiscus.services.operators import create_operator
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.api_support import make_app
from tests.builders import Tenant, make_customer, make_tenant
from tests.conftest import BACKENDS, new_database_url
from tests.console.support import PASSWORD, login

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
Fetch = Callable[[Any, Sort, str | None, int], KeyPage]


def _seed(db: Database, clock: FixedClock) -> Tenant:
    """Customers with ties and a missing VAT ID, subscriptions billed once, then attempts, refunds and
    deliveries written as rows with ties and NULLs in their sortable columns."""
    tenant = make_tenant(db, clock, "bg", slug="sorting")
    names = ["delta", "alpha", "charlie", "alpha", "bravo"]
    customers = [
        make_customer(db, clock, tenant, i, name=n, email=f"{n}{i % 2}@example.com", currency="EUR")
        for i, n in enumerate(names)
    ]
    for i, cid in enumerate(customers[:4]):
        create_subscription(db, clock, tenant.org_id, cid, [ItemSpec(tenant.monthly, 1 + i % 2)])
    run_billing(db, clock)
    d = t.documents.c
    with db.write() as conn:
        docs: list[tuple[int, int]] = [
            (int(r[0]), int(r[1]))
            for r in conn.execute(
                select(d.id, d.customer_id).where(d.organization_id == tenant.org_id).order_by(d.id)
            )
        ]
        conn.execute(
            t.customers.update().where(t.customers.c.id == customers[0]).values(vat_id="BG175074752")
        )
        endpoint = conn.execute(
            insert(t.webhook_endpoints)
            .values(organization_id=tenant.org_id, url="https://example.com/h", event_types=["*"],
                    secret="whsec_x", created_at=T0, updated_at=T0)
            .returning(t.webhook_endpoints.c.id)
        ).scalar_one()  # fmt: skip
        events = (
            conn.execute(
                select(t.outbox_events.c.id)
                .where(t.outbox_events.c.organization_id == tenant.org_id)
                .limit(6)
            )
            .scalars()
            .all()
        )
        for i, (doc, cust) in enumerate(docs * 2):
            attempt = conn.execute(
                insert(t.payment_attempts)
                .values(organization_id=tenant.org_id, document_id=doc, customer_id=cust, currency="EUR",
                        amount_minor=1000 * (1 + i % 3), capture_mode="sale",
                        status=("failed", "succeeded")[i % 2], idempotency_key=f"sort-{tenant.org_id}-{i}",
                        provider="test", provider_charge_id=f"ch_{i * 7 % 10}" if i % 2 else None,
                        error_code=None if i % 2 else ("card_declined", "expired_card")[i % 4 // 2],
                        trigger="manual", created_at=T0 + timedelta(hours=i % 3), updated_at=T0)
                .returning(t.payment_attempts.c.id)
            ).scalar_one()  # fmt: skip
            if i % 2:
                conn.execute(
                    insert(t.payment_refunds).values(
                        organization_id=tenant.org_id, attempt_id=attempt, document_id=doc,
                        amount_minor=100 * (1 + i % 2), status=("succeeded", "failed")[i % 3 == 0],
                        idempotency_key=f"sort-r-{tenant.org_id}-{i}",
                        provider_refund_id=f"re_{i % 2}" if i % 3 else None,
                        reason=("dup", "asked")[i % 2], created_at=T0 + timedelta(minutes=i % 2),
                    )
                )  # fmt: skip
        for i, event in enumerate(events):
            conn.execute(
                insert(t.webhook_deliveries).values(
                    organization_id=tenant.org_id, endpoint_id=endpoint, event_id=event,
                    event_type=("invoice.issued", "customer.created")[i % 2],
                    status=("pending", "failed", "succeeded")[i % 3], attempts=i % 2,
                    next_attempt_at=T0 + timedelta(minutes=i % 2) if i % 3 == 0 else None,
                    last_attempt_at=T0 + timedelta(minutes=i % 3) if i % 2 else None, created_at=T0,
                )
            )  # fmt: skip
    create_operator(db, clock, email="sorter@console.example", org_id=tenant.org_id, role="viewer",
                    password=PASSWORD)  # fmt: skip
    return tenant


@pytest.fixture(scope="module", params=BACKENDS)
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Database, FixedClock, Tenant]]:
    url = new_database_url(str(request.param), request, tmp_path_factory.mktemp("console-sort"))
    db = Database(url)
    clock = FixedClock(T0)
    yield db, clock, _seed(db, clock)
    db.dispose()


SUB_KEYS = {"customer": "customer_name", "period": "current_period_end"}
PAY_KEYS = {"document": "document_id", "amount": "amount_minor", "error": "error_code",
            "gateway": "provider_charge_id", "at": "created_at"}  # fmt: skip
REFUND_KEYS = {"payment": "attempt_id", "document": "document_id", "amount": "amount_minor",
               "gateway": "provider_refund_id", "credit_note": "credit_note_id",
               "at": "created_at"}  # fmt: skip
DELIVERY_KEYS = {
    "endpoint": "endpoint_id",
    "last_attempt": "last_attempt_at",
    "next_attempt": "next_attempt_at",
}
DOC_KEYS = {"customer": "customer_name", "amount_due": "amount_due_minor"}


def _documents(org: int) -> Fetch:
    def fetch(conn: Any, sort: Sort, after: str | None, n: int) -> KeyPage:
        q = cd.DocumentQuery(org, sort=sort.column, descending=sort.descending)
        page = cd.page(conn, q, limit=n, after=after)
        return KeyPage(page.rows, page.next_cursor)

    return fetch


def _lists(org: int) -> list[tuple[str, dict[str, Any], dict[str, str], Fetch]]:
    """(list, sortable columns, sort name → row key where they differ, page reader)."""
    return [
        ("customers", cl.CUSTOMER_SORTS, {},
         lambda c, s, a, n: cl.customers(c, org, search=None, currency=None, limit=n, after=a, sort=s)),
        ("subscriptions", cl.SUBSCRIPTION_SORTS, SUB_KEYS,
         lambda c, s, a, n: cl.subscriptions(c, org, status=None, customer_id=None, search=None, limit=n,
                                             after=a, sort=s)),
        ("payments", cl.PAYMENT_SORTS, PAY_KEYS,
         lambda c, s, a, n: cl.payments(c, org, status=None, document_id=None, limit=n, after=a, sort=s)),
        ("audit", cl.AUDIT_SORTS, {"entity": "entity_type"},
         lambda c, s, a, n: cl.audit(c, org, entity_type=None, actor=None, limit=n, after=a, sort=s)),
        ("refunds", cm.REFUND_SORTS, REFUND_KEYS,
         lambda c, s, a, n: cm.refunds(c, org, status=None, document_id=None, limit=n, after=a, sort=s)),
        ("deliveries", cm.DELIVERY_SORTS, DELIVERY_KEYS,
         lambda c, s, a, n: cm.deliveries(c, org, status=None, event_type=None, endpoint_id=None, limit=n,
                                          after=a, sort=s)),
        ("documents", cd.SORT_COLUMNS, DOC_KEYS, _documents(org)),
    ]  # fmt: skip


def _or_zero(value: Any) -> Any:
    return 0 if value is None else value


def test_every_sortable_column_orders_both_ways_across_pages(
    setup: tuple[Database, FixedClock, Tenant],
) -> None:
    db, _, tenant = setup
    checked = 0
    for name, columns, keys, fetch in _lists(tenant.org_id):
        with db.read() as conn:
            everything = fetch(conn, Sort("id"), None, 10_000).rows
            assert len(everything) >= 3, name  # a list with rows to order
            for column in columns:
                key = keys.get(column, column)
                values = {r["id"]: r[key] for r in everything}
                # ascending: by value, NULLs last, ties by id (a NULL is never compared with a value)
                ascending = sorted(
                    values, key=lambda i: (values[i] is None, 0 if values[i] is None else values[i], i)
                )
                for descending in (False, True):
                    seen: list[int] = []
                    after: str | None = None
                    while True:  # pages of two: every boundary is a keyset step
                        page = fetch(conn, Sort(column, descending), after, 2)
                        seen += [r["id"] for r in page.rows]
                        if page.next_cursor is None:
                            break
                        after = page.next_cursor
                    expected = list(reversed(ascending)) if descending else ascending
                    assert seen == expected, (name, column, descending)
                    checked += 1
    assert checked == 2 * 50


def test_list_pages_have_sortable_headers_and_refuse_a_bad_sort(
    setup: tuple[Database, FixedClock, Tenant],
) -> None:
    db, clock, tenant = setup
    base = f"/console/{tenant.org_id}"
    with TestClient(make_app(db, clock)) as client:
        login(client, "sorter@console.example")
        for path, column in (
            ("customers", "name"), ("subscriptions", "customer"), ("payments", "amount"), ("audit", "actor"),
            ("refunds", "reason"), ("webhook-deliveries", "last_attempt"), ("documents", "due_date"),
        ):  # fmt: skip
            page = client.get(f"{base}/{path}?sort={column}")
            assert page.status_code == 200, path
            assert f'aria-sort="ascending"><a href="?sort=-{column}"' in page.text, path
            assert 'aria-sort="none"' in page.text, path
            bad = client.get(f"{base}/{path}?sort=nope")
            assert bad.status_code == 422, path
            assert "sort" in bad.text
        assert client.get(f"{base}/customers?after=bm9wZQ").status_code == 422  # a forged cursor
        deliveries = client.get(f"{base}/webhook-deliveries?event_type=invoice.issued")
        exported = client.get(f"{base}/webhook-deliveries.csv?event_type=invoice.issued&sort=-attempts")
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert rows
        assert {r["event_type"] for r in rows} == {"invoice.issued"}
        assert [int(r["attempts"]) for r in rows] == sorted((int(r["attempts"]) for r in rows), reverse=True)
        totals = re.findall(
            r'<tr><td data-label="[^"]+">(\w+)</td><td class="num" data-label="[^"]+">(\d+)</td>',
            deliveries.text,
        )
        assert sum(int(n) for _, n in totals) == len(rows)  # the totals count the whole filtered set


@pytest.mark.parametrize("column", ["customer", "amount_due"])
def test_documents_by_buyer_and_amount_due_read_their_index(
    setup: tuple[Database, FixedClock, Tenant], column: str
) -> None:
    """A page sorted by the buyer's name or the amount due is read from its expression index: page 1 in
    index order (no sort of the organisation's documents), a page after a cursor by seeks into it (only
    the page's rows are merged), on both databases. The planner is told sorting and table scans are
    dear, as they are at 100,000 rows."""
    db, _, tenant = setup
    index = {"customer": "ix_documents_sort_buyer", "amount_due": "ix_documents_sort_amount_due"}[column]
    with db.read() as conn:
        first, plan = _planned(
            conn, lambda: cd.page(conn, cd.DocumentQuery(tenant.org_id, sort=column), limit=2)
        )
        assert index in plan, plan
        assert "TEMP B-TREE" not in plan, plan
        assert "Sort" not in plan.replace("Sort Key", ""), plan
        _, plan = _planned(
            conn,
            lambda: cd.page(
                conn, cd.DocumentQuery(tenant.org_id, sort=column), limit=2, after=first.next_cursor
            ),
        )
        assert index in plan, plan
        assert "SCAN documents" not in plan, plan
        assert "Seq Scan" not in plan, plan


def _planned(conn: Any, read: Callable[[], cd.Page]) -> tuple[cd.Page, str]:
    """What `read` returns, and the plan of the last statement it ran."""
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        captured.append((statement, params))

    event.listen(conn, "before_cursor_execute", capture)
    try:
        result = read()
    finally:
        event.remove(conn, "before_cursor_execute", capture)
    statement, params = captured[-1]
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    if conn.dialect.name == "sqlite":
        cursor.execute("EXPLAIN QUERY PLAN " + statement, params)
        return result, " / ".join(str(r[-1]) for r in cursor.fetchall())
    cursor.execute("SET LOCAL enable_sort = off")
    cursor.execute("SET LOCAL enable_seqscan = off")
    cursor.execute("EXPLAIN " + statement, params)
    return result, " / ".join(str(r[0]) for r in cursor.fetchall())
