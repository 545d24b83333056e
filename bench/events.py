"""Usage events: ingestion over HTTP (batches of 100 and 1,000, `fiscus serve --workers 1`), bulk import
(`fiscus events import`'s code path) and the current-usage endpoint's latency, on SQLite and PostgreSQL.
Prints figures, asserts nothing about timings.

    .venv/bin/python bench/events.py [--db sqlite,postgresql] [--ingest 20000] [--events 10000000]

For each database: a fresh migrated database, one organisation, 50 customers, a `bandwidth` metric
(sum, grouped by region) and a subscription (started a day ago, on the hour) with a graduated usage
price for customer 1. HTTP: the server in its own process, `--senders` client threads posting
`--ingest` distinct events per batch size; figures are events stored per second of wall time and CPU
µs per event of the server process and of PostgreSQL (the robust figures on a loaded machine).
Import: an NDJSON file of `--ingest` events through `import_file` in chunks of 10,000. `--events N`:
the organisation is then grown to N events by set-based SQL (`_usage_bulk.py`, not through HTTP).
Current usage: `GET /customers/{id}/usage` for the customer holding every event, 200 requests after
20 warm-up ones, p50 and p99.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from _usage_bulk import bulk_load, postgres_cpu, process_cpu
from billing_run import PostgresTarget, SqliteTarget, Target
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.cli_usage import import_file
from fiscus.domain.clock import FixedClock
from fiscus.services import usage_ingest
from fiscus.services.access import create_api_key
from fiscus.services.catalog import ProductSpec, create_price, create_product, create_variant
from fiscus.services.customers import CustomerSpec, create_customer
from fiscus.services.organizations import OrganizationSpec, create_organization, standard_rates
from fiscus.services.subscriptions import ItemSpec, create_subscription
from fiscus.services.usage_metrics import MetricSpec, create_metric
from fiscus.services.usage_prices import UsageSpec

console = Console()
IMPORT_BATCH: int = getattr(usage_ingest, "IMPORT_BATCH", usage_ingest.MAX_BATCH)
"""Chunks of the import (1,000 where the code predates bulk chunks: the bench runs on older trees too)."""
TIERS = [{"up_to": "1000", "unit_price": "0.05"}, {"up_to": None, "unit_price": "0.01"}]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup(db: Database) -> tuple[int, list[int], str, int, int, datetime]:
    """Organisation, customers, metric, usage price, subscription, key:
    (org, customers, key, sub, metric, subscription start)."""
    now = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    clock = FixedClock(now)
    org = create_organization(
        db,
        clock,
        OrganizationSpec(
            slug="bench-usage",
            legal_name="Bench Hosting EOOD",
            country="BG",
            timezone="Europe/Sofia",
            default_currency="EUR",
            vat_id="BG175074752",
            vat_registered=True,
            tax_rates=standard_rates("BG", Decimal("0.20"), None),
        ),
    )
    customers = [
        create_customer(db, clock, org, CustomerSpec(name=f"C{i}", email=f"c{i}@example.com", country="BG"))
        for i in range(50)
    ]
    metric = create_metric(
        db, clock, org, MetricSpec("bandwidth", "Bandwidth", "sum", "gb", group_by="region")
    )
    product = create_product(db, clock, org, ProductSpec(code="vps", name="VPS"))
    variant = create_variant(db, clock, org, product, code="bw", name="Bandwidth", limits=[])
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
    sub = create_subscription(db, clock, org, customers[0], [ItemSpec(price, 1)])
    return org, customers, create_api_key(db, clock, org).secret, sub, metric, now


def event(n: int, customer: int, at: datetime) -> dict[str, object]:
    return {
        "transaction_id": f"e{n}",
        "customer_id": customer,
        "code": "bandwidth",
        "timestamp": (at - timedelta(seconds=n % 3600)).isoformat(),
        "properties": {"gb": f"{n % 97}.5", "region": ("eu", "us", "asia")[n % 3]},
    }


def http_ingest(
    base: str, key: str, customer: int, total: int, batch: int, senders: int, offset: int
) -> float:
    """Events stored per second over HTTP."""
    at = datetime.now(UTC)
    batches = [list(range(offset + i, offset + min(i + batch, total))) for i in range(0, total, batch)]
    lock = threading.Lock()
    errors: list[str] = []

    def run() -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
            while True:
                with lock:
                    if not batches:
                        return
                    ns = batches.pop()
                body = json.dumps({"events": [event(n, customer, at) for n in ns]})
                r = client.post("/api/v1/events", content=body, headers={"Content-Type": "application/json"})
                if r.status_code != 202:
                    errors.append(r.text[:300])
                    return

    threads = [threading.Thread(target=run) for _ in range(senders)]
    started = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    seconds = time.perf_counter() - started
    if errors:
        raise SystemExit(f"ingest failed: {errors[0]}")
    return total / seconds


REQUESTS = 220
"""Current-usage requests: 20 warm-up ones, then 200 measured."""


def latency(base: str, key: str, customer: int, sub: int) -> tuple[float, float]:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        times = []
        for i in range(REQUESTS):
            started = time.perf_counter()
            r = client.get(f"/api/v1/customers/{customer}/usage", params={"subscription": sub})
            if r.status_code != 200:
                raise SystemExit(f"usage failed: {r.text[:300]}")
            if i >= 20:
                times.append(time.perf_counter() - started)
    times.sort()
    return times[len(times) // 2] * 1000, times[int(len(times) * 0.99) - 1] * 1000


def _cpu(seconds: float, events: int) -> str:
    return f"{1e6 * seconds / events:,.1f}"


def _per_cpu(seconds: float, events: int) -> str:
    """Events per CPU-second of the ingesting process: the fair rate on a machine others load too."""
    return f"{events / seconds:,.0f}" if seconds > 0 else "n/a"


def bench(target: Target, total: int, senders: int, grow_to: int) -> list[tuple[str, str]]:
    db, _ = target.fresh("events")
    org, customers, key, sub, metric, began = setup(db)
    port = _port()
    env = {
        **os.environ,
        "FISCUS_DATABASE_URL": db.url,
        "FISCUS_LOG_LEVEL": "WARNING",
        "FISCUS_RATE_LIMIT_PER_SECOND": "1000000",
        "FISCUS_RATE_LIMIT_BURST": "1000000",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fiscus.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # a loaded machine starts a server slowly
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        rows = [("", "CPU µs/event: server (Python) + PostgreSQL")]
        for batch, offset in ((100, 0), (1000, total)):
            server_cpu, pg_cpu = process_cpu(server.pid), postgres_cpu(db)
            rate = http_ingest(base, key, customers[0], total, batch, senders, offset)
            server_cpu, pg_cpu = process_cpu(server.pid) - server_cpu, postgres_cpu(db) - pg_cpu
            rows.append(
                (
                    f"HTTP, batches of {batch:,}",
                    f"{rate:,.0f} events/s; CPU {_cpu(server_cpu, total)} + {_cpu(pg_cpu, total)};"
                    f" {_per_cpu(server_cpu, total)} events per server CPU-second",
                )
            )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.ndjson"
            at = datetime.now(UTC)
            with path.open("w") as f:
                for n in range(2 * total, 3 * total):
                    f.write(json.dumps(event(n, customers[0], at)) + "\n")
            started, cpu, pg_cpu = time.perf_counter(), time.process_time(), postgres_cpu(db)
            import_file(
                db, FixedClock(datetime.now(UTC)), org, path, fmt="ndjson", batch=IMPORT_BATCH, late_days=None
            )
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            pg_cpu = postgres_cpu(db) - pg_cpu
            rows.append(
                (
                    f"bulk import (NDJSON, chunks of {IMPORT_BATCH:,})",
                    f"{total / seconds:,.0f} events/s; CPU {_cpu(cpu, total)} + {_cpu(pg_cpu, total)};"
                    f" {_per_cpu(cpu, total)} events per CPU-second",
                )
            )
        stored = 3 * total
        if grow_to > stored:
            now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            seconds = bulk_load(
                db, org, customers[0], metric, began, now - timedelta(hours=2), grow_to - stored
            )
            rows.append((f"bulk SQL load of {grow_to - stored:,} events (not HTTP)", f"{seconds:,.0f} s"))
            stored = grow_to
        with db.read() as conn:
            held = len(
                conn.execute(select(t.customers.c.id).where(t.customers.c.organization_id == org)).all()
            )
        server_cpu, pg_cpu = process_cpu(server.pid), postgres_cpu(db)
        p50, p99 = latency(base, key, customers[0], sub)
        server_cpu, pg_cpu = process_cpu(server.pid) - server_cpu, postgres_cpu(db) - pg_cpu
        rows.append(
            (
                f"current usage ({stored:,} events of one customer, {held} customers)",
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; CPU per request {1e3 * server_cpu / REQUESTS:.1f}"
                f" + {1e3 * pg_cpu / REQUESTS:.1f} ms",
            )
        )
        return rows
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        target.discard(db)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--ingest", type=int, default=20_000, help="events per ingest phase")
    parser.add_argument("--events", type=int, default=0, help="grow the organisation to this many events")
    parser.add_argument("--senders", type=int, default=4)
    args = parser.parse_args()
    table = Table("database", "measure", "figure", title=f"usage events, {os.cpu_count()} cores")
    for name in args.db.split(","):
        target: Target = SqliteTarget() if name == "sqlite" else PostgresTarget()
        for measure, figure in bench(target, args.ingest, args.senders, args.events):
            table.add_row(name, measure, figure)
        if isinstance(target, PostgresTarget):
            target.cluster.stop()
    console.print(table)


if __name__ == "__main__":
    main()
