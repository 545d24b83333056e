"""Exactly once under concurrency and crashes, on both databases: overlapping batches from 8 processes,
and a server killed with SIGKILL mid-way then sent everything again."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from fiscus.services.usage_metrics import MetricSpec, create_metric
from tests import usage_workers
from tests.api_support import free_port
from tests.builders import make_customer, make_tenant

pytestmark = pytest.mark.slow
CTX = mp.get_context("fork")  # no re-import per process; each child opens its own engine


def _totals(db: Database, org_id: int) -> tuple[int, int, Decimal]:
    """Stored events, and what the buckets counted and summed."""
    with db.read() as conn:
        stored = conn.execute(
            select(func.count())
            .select_from(tu.usage_events)
            .where(tu.usage_events.c.organization_id == org_id)
        ).scalar_one()
        rows = conn.execute(
            select(tu.usage_buckets.c.count, tu.usage_buckets.c.total).where(
                tu.usage_buckets.c.organization_id == org_id
            )
        ).all()
    return int(stored), sum(int(r[0]) for r in rows), sum((r[1] for r in rows), Decimal(0))


def test_eight_processes_with_shared_transaction_ids_count_each_event_once(
    db: Database, db_url: str, clock: FixedClock
) -> None:
    tenant = make_tenant(db, clock, "bg", slug="usage-conc")
    customer = make_customer(db, clock, tenant)
    create_metric(db, clock, tenant.org_id, MetricSpec("calls", "Calls", "sum", "n", group_by="g"))
    at = clock.now()
    start, out = CTX.Event(), CTX.Queue()
    procs = [
        CTX.Process(target=usage_workers.send, args=(db_url, tenant.org_id, customer, at, seed, start, out))
        for seed in range(8)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    assert sum(out.get(timeout=10) for _ in procs) == 8 * 10 * 100
    stored, counted, total = _totals(db, tenant.org_id)
    with db.read() as conn:
        keys = (
            conn.execute(
                select(tu.usage_event_keys.c.transaction_id).where(
                    tu.usage_event_keys.c.organization_id == tenant.org_id
                )
            )
            .scalars()
            .all()
        )
    ids = sorted(int(k[2:]) for k in keys)
    assert len(ids) == len(set(ids)) == stored == counted
    assert total == sum((Decimal(i % 7) for i in ids), Decimal(0))
    assert stored > 450  # 8,000 sends over 500 ids: nearly all were sent


def test_a_killed_server_then_a_full_resend_counts_the_same(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    clock = FixedClock(now - timedelta(minutes=1))
    tenant = make_tenant(db, clock, "bg", slug="usage-kill")
    customer = make_customer(db, clock, tenant)
    create_metric(db, clock, tenant.org_id, MetricSpec("calls", "Calls", "sum", "n"))
    key = create_api_key(db, clock, tenant.org_id).secret
    batches = [
        [
            {
                "transaction_id": f"k{b}-{i}",
                "customer_id": customer,
                "code": "calls",
                "timestamp": (now - timedelta(seconds=b * 100 + i)).isoformat(),
                "properties": {"n": str(i % 5)},
            }
            for i in range(100)
        ]
        for b in range(20)
    ]
    expected = sum(i % 5 for i in range(100)) * 20

    def serve(port: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, "FISCUS_DATABASE_URL": db_url, "FISCUS_LOG_LEVEL": "WARNING"}
        return subprocess.Popen(
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
            stdout=(tmp_path / f"serve-{port}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )

    def wait_up(client: httpx.Client) -> None:
        deadline = time.monotonic() + 180  # a loaded machine starts it slowly (as _wait_ready)
        while time.monotonic() < deadline:
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # after any answer but 200 too: no busy loop against a starting server
        pytest.fail("server did not start")

    port = free_port()
    server = serve(port)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:
        wait_up(client)
        for sent, batch in enumerate(batches):
            if sent == 8:
                server.send_signal(signal.SIGKILL)  # mid-way: this batch and the next fail or are lost
            with contextlib.suppress(httpx.TransportError):
                client.post("/api/v1/events", json={"events": batch})
        server.wait(30)
    stored_before, _c, _t = _totals(db, tenant.org_id)
    assert 0 < stored_before < 20 * 100
    port = free_port()
    server = serve(port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:
            wait_up(client)
            for batch in batches:
                r = client.post("/api/v1/events", json={"events": batch})
                assert r.status_code == 202, r.text
                assert r.json()["received"] == 100
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    assert _totals(db, tenant.org_id) == (2000, 2000, Decimal(expected))
