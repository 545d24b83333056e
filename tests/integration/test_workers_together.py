"""Two `fiscus worker` processes over the same due work on PostgreSQL, as the README's production
section runs them: every period is billed once, every document charged once at the gateway (its own
ledger says so), every PDF recorded once and every webhook event delivered once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import ColumnElement, Table, func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.payments import AttemptStatus
from fiscus.gateway import cards
from fiscus.services.payments.methods import add_card
from fiscus.services.subscriptions import ItemSpec, create_subscription
from fiscus.services.webhooks import create_endpoint
from tests.builders import make_customer, make_tenant
from tests.payments_support import WEBHOOK_SECRET, gateway_process

CUSTOMERS = 8


@contextmanager
def receiver() -> Iterator[tuple[str, Counter[str]]]:
    """A loopback webhook endpoint counting each `webhook-id` it is sent."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            with lock:
                seen[self.headers.get("webhook-id", "")] += 1
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", seen
    finally:
        server.shutdown()


def _count(db: Database, table: Table, *where: ColumnElement[bool]) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


@pytest.mark.slow
def test_two_workers_bill_charge_render_and_deliver_everything_once(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several worker processes are a PostgreSQL deployment (SQLite serialises writers)")
    # The workers run on the real clock: the work is made due a little in the past.
    clock = FixedClock(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5))
    with gateway_process(tmp_path) as gw, receiver() as (hook_url, seen):
        tenant = make_tenant(db, clock, "bg")
        create_endpoint(db, clock, tenant.org_id, url=hook_url, event_types=["*"], allow_private=True)
        for n in range(CUSTOMERS):
            cid = make_customer(db, clock, tenant, n)
            add_card(db, clock, gw.provider(), tenant.org_id, cid, token=gw.tokenise(cards.SUCCESS))
            create_subscription(db, clock, tenant.org_id, cid, [ItemSpec(tenant.monthly, 1)])
        env = {
            **os.environ,
            "FISCUS_DATABASE_URL": db_url,
            "FISCUS_GATEWAY_URL": gw.url,
            "FISCUS_GATEWAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "FISCUS_WEBHOOKS_ALLOW_PRIVATE": "true",
            "FISCUS_DOCUMENTS_DIR": str(tmp_path / "documents"),
            "FISCUS_WORKER_PAUSE_SECONDS": "0.1",  # a cycle every ~0.1 s instead of every second
        }
        logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "fiscus.cli", "worker", "--interval", "0.2"],
                env=env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            for log in logs
        ]
        d, pa = t.documents.c, t.payment_attempts.c
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                paid = _count(db, t.documents, d.status == "paid")
                rendered = _count(db, t.document_files)
                pending = _count(db, t.webhook_deliveries, t.webhook_deliveries.c.status != "succeeded")
                undispatched = _count(db, t.outbox_events, t.outbox_events.c.dispatched_at.is_(None))
                if paid == CUSTOMERS and rendered == CUSTOMERS and not pending and not undispatched:
                    break
                assert all(w.poll() is None for w in workers), [log.read_text()[-2000:] for log in logs]
                time.sleep(0.2)
            else:
                pytest.fail(
                    f"not done in time: {paid} paid, {rendered} rendered, {pending} deliveries pending"
                )
            # both workers go round several more times (billing included) over work that is all done
            time.sleep(1)
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                w.wait(60)
        worker_logs = [log.read_text() for log in logs]
        ledger = gw.ledger()

    assert _count(db, t.documents) == CUSTOMERS  # one invoice per subscription's first period
    with db.read() as conn:
        per_period = conn.execute(
            select(t.subscription_periods.c.subscription_id, func.count()).group_by(
                t.subscription_periods.c.subscription_id
            )
        ).all()
        attempts = Counter(
            conn.execute(select(pa.document_id).where(pa.status == AttemptStatus.SUCCEEDED.value)).scalars()
        )
        all_attempts = _count(db, t.payment_attempts)
    assert len(per_period) == CUSTOMERS
    assert all(n == 1 for _sid, n in per_period)
    assert len(attempts) == CUSTOMERS
    assert set(attempts.values()) == {1}  # no document charged twice
    assert all_attempts == CUSTOMERS  # and no second attempt was even made
    listed = ledger["charges"]
    assert isinstance(listed, list)
    charges = [c for c in listed if c["status"] != "failed"]
    assert len(charges) == CUSTOMERS, ledger  # the gateway's own ledger: one charge per document
    assert _count(db, t.document_files) == CUSTOMERS
    assert seen
    assert set(seen.values()) == {1}, seen  # every event delivered once
    assert _count(db, t.webhook_deliveries) == len(seen)
    # both processes took part in some of the work (otherwise this test would prove nothing)
    assert all("worker" in text for text in worker_logs), worker_logs
