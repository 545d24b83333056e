"""Server time of the console's pages at ~100,000 documents (or --documents 1000000) in one
organisation, on SQLite and PostgreSQL: every list page, each sort that matters, deep pages by cursor,
the totals of filtered sets. Prints figures (median and worst of N in-process requests per page, the
median CPU time of this process, and on PostgreSQL the mean CPU time its server processes spent per
request, read from /proc: on a loaded machine CPU time is the fair figure), asserts nothing.

    .venv/bin/python bench/console.py [--db sqlite,postgresql] [--documents 100000] [--requests 15]

Data: api_read.py's organisation (1,000 customers, three billing runs), grown to --documents by
_scale.py's bulk copy; an admin operator signed in through the login form. Requests go through the whole
ASGI app in-process (TestClient), so the figure is the server's time without network.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from datetime import timedelta

from _read_common import prepare, run_instant
from _scale import multiply_documents
from _server_cpu import backends, server_cpu_ms
from billing_run import PostgresTarget, SqliteTarget, Target, say
from fastapi.testclient import TestClient
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_console_sort import DOCUMENT_DUE
from fiscus.api.app import create_app
from fiscus.bootstrap import Container
from fiscus.config import Settings
from fiscus.domain.clock import FixedClock
from fiscus.queries.console_sort import encode_cursor
from fiscus.services import webhooks
from fiscus.services.access import create_api_key
from fiscus.services.operators import create_operator
from fiscus.worker.webhooks import dispatch_events

PASSWORD = "bench console password"


def pages(org: int, document_id: int, customer_id: int) -> list[tuple[str, str]]:
    base = f"/console/{org}"
    return [
        ("dashboard", f"{base}/"),
        ("documents, page 1", f"{base}/documents"),
        ("documents, open, by total", f"{base}/documents?status=open&sort=-total_minor"),
        ("totals of all documents", f"{base}/document-totals"),
        ("totals of open documents", f"{base}/document-totals?status=open"),
        ("documents, search", f"{base}/documents?q=customer%2099"),
        ("documents, overdue", f"{base}/documents?overdue=1"),
        ("document", f"{base}/documents/{document_id}"),
        ("customers", f"{base}/customers"),
        ("customer", f"{base}/customers/{customer_id}"),
        ("subscriptions", f"{base}/subscriptions"),
        ("payments", f"{base}/payments"),
        ("audit events", f"{base}/audit"),
    ]


def sorted_pages(db: Database, org: int) -> list[tuple[str, str]]:
    """Each sort that matters, and a deep page by cursor (the middle of the organisation's documents,
    in id order and in amount-due order): a keyset page should cost what page 1 does."""
    d = t.documents.c
    with db.read() as conn:
        ids = select(d.id).where(d.organization_id == org).order_by(d.id)
        count = conn.execute(select(func.count()).where(d.organization_id == org)).scalar_one()
        middle = int(conn.execute(ids.offset(count // 2).limit(1)).scalar_one())
        due = conn.execute(select(DOCUMENT_DUE.label("due")).where(d.id == middle)).scalar_one()
    base = f"/console/{org}"
    deep = encode_cursor(middle, middle)
    deep_due = encode_cursor(int(due), middle)
    return [
        ("documents, deep page by id", f"{base}/documents?after={deep}"),
        ("documents by customer", f"{base}/documents?sort=customer"),
        ("documents by customer, descending", f"{base}/documents?sort=-customer"),
        ("documents by amount due", f"{base}/documents?sort=-amount_due"),
        ("documents, deep page by amount due", f"{base}/documents?sort=-amount_due&after={deep_due}"),
        ("documents, open, by amount due", f"{base}/documents?status=open&sort=-amount_due"),
        ("documents by due date", f"{base}/documents?sort=due_date"),
        ("customers by name", f"{base}/customers?sort=name"),
        ("subscriptions by customer", f"{base}/subscriptions?sort=customer"),
        ("payments by amount", f"{base}/payments?sort=-amount"),
        ("audit by actor", f"{base}/audit?sort=actor"),
        ("refunds, with totals", f"{base}/refunds"),
        ("webhook deliveries, with totals", f"{base}/webhook-deliveries?sort=-last_attempt"),
    ]


def settings_pages(db: Database, clock: FixedClock, org: int) -> list[tuple[str, str]]:
    """The catalog and settings pages, with a webhook endpoint and its first deliveries to show."""
    p, pr = t.products.c, t.prices.c
    with db.read() as conn:
        product = conn.execute(select(p.id).where(p.organization_id == org).order_by(p.id)).scalar()
        price = conn.execute(select(pr.id).where(pr.organization_id == org).order_by(pr.id)).scalar()
    endpoint, _ = webhooks.create_endpoint(
        db, clock, org, url="https://bench.example/hook", event_types=["*"]
    )
    dispatch_events(db, clock)
    create_api_key(db, clock, org, name="bench")
    base = f"/console/{org}"
    return [
        ("catalog", f"{base}/catalog"),
        ("catalog: product", f"{base}/catalog/products/{product}"),
        ("catalog: tax categories", f"{base}/catalog/tax-categories"),
        ("catalog: archive a price (confirm)", f"{base}/catalog/prices/{price}/archive"),
        ("settings", f"{base}/settings"),
        ("settings: organisation", f"{base}/settings/organization"),
        ("settings: number series", f"{base}/settings/number-series"),
        ("settings: payments", f"{base}/settings/payments"),
        ("settings: webhooks", f"{base}/settings/webhooks"),
        ("settings: webhook deliveries", f"{base}/settings/webhooks/{endpoint}"),
        ("settings: API keys", f"{base}/settings/api-keys"),
        ("settings: operators", f"{base}/settings/operators"),
    ]


def measure(
    target: Target, documents: int, requests: int
) -> list[tuple[str, float, float, int, float, float | None]]:
    db, fixture = prepare(target)
    total, seconds = multiply_documents(db, fixture.org_id, documents)
    say(f"[{target.name}] {total:,} documents ({seconds:.1f}s to copy)")
    clock = FixedClock(run_instant(2) + timedelta(days=1))
    create_operator(
        db, clock, email="bench@example.com", org_id=fixture.org_id, role="admin", password=PASSWORD
    )
    app = create_app(Container(Settings(database_url=db.url, log_level="WARNING"), Database(db.url), clock))
    rows = []
    with TestClient(app) as client:
        form = client.get("/console/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token
        client.post(
            "/console/login",
            data={"email": "bench@example.com", "password": PASSWORD, "csrf_token": token.group(1)},
        )
        listed = pages(fixture.org_id, fixture.document_id, fixture.customer_id)
        more = sorted_pages(db, fixture.org_id)
        for name, path in listed + more + settings_pages(db, clock, fixture.org_id):
            client.get(path)  # warm-up
            times, cpu = [], []
            status = 0
            pids = backends(db)
            server_started = server_cpu_ms(pids)
            for _ in range(requests):
                started, cpu_started = time.perf_counter(), time.process_time()
                status = client.get(path).status_code
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - cpu_started) * 1000)
            server = (server_cpu_ms(pids) - server_started) / requests if pids else None
            rows.append((name, statistics.median(times), max(times), status, statistics.median(cpu), server))
    target.discard(db)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=15)
    args = parser.parse_args()
    table = Table(title=f"console pages at ~{args.documents:,} documents (ms, in-process)")
    table.add_column("page")
    results = {}
    for name in args.db.split(","):
        target: Target = SqliteTarget() if name == "sqlite" else PostgresTarget()
        try:
            results[name] = measure(target, args.documents, args.requests)
        finally:
            target.close()  # type: ignore[attr-defined]
        table.add_column(f"{name} median", justify="right")
        table.add_column(f"{name} max", justify="right")
        table.add_column(f"{name} CPU", justify="right")
        if name == "postgresql":
            table.add_column("server CPU", justify="right")
    first = next(iter(results.values()))
    for i, (page, *_rest) in enumerate(first):
        cells = []
        for rows in results.values():
            _, median, worst, status, cpu, server = rows[i]
            cells += [
                f"{median:.1f}" + ("" if status == 200 else f" ({status})"),
                f"{worst:.1f}",
                f"{cpu:.1f}",
            ]
            if server is not None:
                cells.append(f"{server:.1f}")
        table.add_row(page, *cells)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
