"""The console dashboard's read model at scale: `queries.dashboard.dashboard` time at ~100,000
documents in one organisation, on SQLite and PostgreSQL. Prints figures; asserts nothing.

    .venv/bin/python bench/dashboard.py [--documents 100000] [--db sqlite,postgresql] [--repeat 7]

Set-up (not timed): the organisation, catalog, first customer and subscription through the services
(`_setup.populate`), the other customers and subscriptions bulk-inserted, their starts spread over two
years, a tenth of them cancelled and a tenth changed (an audit row, as `change_subscription` writes);
then invoices (with a few credit notes, voids and uncollectibles) over those two years, one card
attempt per invoice (a tenth declined, most of those retried and paid), their captures and some
refunds, all by executemany in chunks. Then ANALYZE / checkpoint (`_setup.settle`).

Timed: the whole `dashboard()` call (its eleven statements and the Python that folds them) inside one
read transaction, as a console page would make it: median and max of `--repeat` calls after one
warm-up, for a 24-month range by month, 12 months by week and 90 days by day.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _server_cpu import backends, server_cpu_ms
from _setup import CHUNK, create_database_schema, populate, settle

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.queries.dashboard import dashboard
from fiscus.services.mrr_history import rebuild
from fiscus.testing.pgcluster import ThrowawayPostgres

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
FIRST = date(2024, 12, 1)
DAYS = (NOW.date() - FIRST).days
DOCS_PER_SUBSCRIPTION = 12


def load(db: Database, documents: int) -> dict[str, int]:
    """Bulk data for one organisation; returns row counts."""
    rng = random.Random(42)
    n_subs = max(2, documents // DOCS_PER_SUBSCRIPTION)
    cat = populate(db, n_subs)
    org = cat.org_id
    s, d = t.subscriptions.c, t.documents.c
    with db.read() as conn:
        subs = [
            (r.id, r.customer_id)
            for r in conn.execute(select(s.id, s.customer_id).where(s.organization_id == org))
        ]
    starts: dict[int, datetime] = {}
    with db.write() as conn:
        rows = []
        for sid, _ in subs:
            start = datetime.combine(FIRST, datetime.min.time(), UTC) + timedelta(days=rng.randrange(DAYS))
            starts[sid] = start
            ended = start + timedelta(days=rng.randrange(30, 400)) if rng.random() < 0.1 else None
            rows.append({"sid": sid, "st": start, "en": ended, "stat": "canceled" if ended else "active"})
        from sqlalchemy import bindparam

        conn.execute(
            update(t.subscriptions)
            .where(s.id == bindparam("sid"))
            .values(
                start_at=bindparam("st"),
                billing_anchor=bindparam("st"),
                ended_at=bindparam("en"),
                canceled_at=bindparam("en"),
                status=bindparam("stat"),
            ),
            rows,
        )
        conn.execute(
            insert(t.audit_events),
            [
                {
                    "organization_id": org,
                    "entity_type": "subscription",
                    "entity_id": sid,
                    "action": "changed",
                    "actor": "bench",
                    "at": starts[sid] + timedelta(days=20),
                    "before": {"items": [{"price_id": cat.price_a, "quantity": "1"}]},
                    "after": {"items": [{"price_id": cat.price_b, "quantity": "1"}]},
                }
                for sid, _ in subs
                if sid % 10 == 3
            ],
        )
        # The subscriptions and audit rows above bypassed the services, which keep the MRR history:
        # rebuild it as migration 0024's backfill does. Documents, attempts and captures below are
        # inserted as rows; their triggers keep the other rollups.
        rebuild(conn, org)
    counts = {"subscriptions": len(subs), "documents": 0, "attempts": 0, "captures": 0, "refunds": 0}
    seq = 0
    for lo in range(0, documents, CHUNK):
        docs: list[dict[str, Any]] = []
        for _ in range(min(CHUNK, documents - lo)):
            seq += 1
            sid, cid = subs[rng.randrange(len(subs))]
            day = FIRST + timedelta(days=rng.randrange(DAYS))
            issued = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=rng.randrange(24))
            kind = "credit_note" if rng.random() < 0.03 else "invoice"
            roll = rng.random()
            status = (
                "paid"
                if roll < 0.85
                else "open"
                if roll < 0.95
                else "uncollectible"
                if roll < 0.98
                else "void"
            )
            sub = rng.choice((1500, 3050, 10650))
            docs.append(
                {
                    "organization_id": org,
                    "type": kind,
                    "status": status,
                    "series": "bench",
                    "sequence": seq,
                    "number": f"B{seq:08d}",
                    "customer_id": cid,
                    "subscription_id": sid,
                    "currency": "EUR",
                    "subtotal_minor": sub,
                    "tax_minor": sub // 5,
                    "total_minor": sub + sub // 5,
                    "amount_paid_minor": sub + sub // 5 if status == "paid" and kind == "invoice" else 0,
                    "issue_date": day,
                    "due_date": day + timedelta(days=14),
                    "issued_at": issued,
                    "seller": {},
                    "buyer": {},
                    "notes": [],
                    "created_at": issued,
                    "updated_at": issued,
                }
            )
        with db.write() as conn:
            ids = [
                r[0]
                for r in conn.execute(insert(t.documents).returning(d.id, sort_by_parameter_order=True), docs)
            ]
            attempts, outcome = [], []
            for doc_id, doc in zip(ids, docs, strict=True):
                if doc["type"] != "invoice" or doc["status"] == "void":
                    continue
                paid = doc["status"] == "paid"
                first_ok = paid and rng.random() < 0.9
                tries = [(first_ok or not paid) and paid, *([True] if paid and not first_ok else [])]
                if not paid:
                    tries = [False]
                for k, ok in enumerate(tries):
                    at = doc["issued_at"] + timedelta(days=3 * k, minutes=5)
                    attempts.append(
                        {
                            "organization_id": org,
                            "document_id": doc_id,
                            "customer_id": doc["customer_id"],
                            "currency": "EUR",
                            "amount_minor": doc["total_minor"],
                            "capture_mode": "sale",
                            "status": "succeeded" if ok else "failed",
                            "idempotency_key": f"b{doc_id}-{k}",
                            "provider": "gateway",
                            "authorized_minor": doc["total_minor"] if ok else 0,
                            "trigger": "automatic",
                            "created_at": at,
                            "settled_at": at,
                            "updated_at": at,
                        }
                    )
                    outcome.append((doc_id, ok, at, doc["total_minor"]))
            att_ids = [
                r[0]
                for r in conn.execute(
                    insert(t.payment_attempts).returning(
                        t.payment_attempts.c.id, sort_by_parameter_order=True
                    ),
                    attempts,
                )
            ]
            captures, refunds = [], []
            for aid, (doc_id, ok, at, amount) in zip(att_ids, outcome, strict=True):
                if not ok:
                    continue
                captures.append(
                    {
                        "organization_id": org,
                        "attempt_id": aid,
                        "document_id": doc_id,
                        "amount_minor": amount,
                        "status": "succeeded",
                        "idempotency_key": f"c{aid}",
                        "created_at": at,
                        "settled_at": at,
                    }
                )
                if rng.random() < 0.02:
                    later = at + timedelta(days=rng.randrange(1, 40))
                    refunds.append(
                        {
                            "organization_id": org,
                            "attempt_id": aid,
                            "document_id": doc_id,
                            "amount_minor": max(1, amount // 2),
                            "status": "succeeded",
                            "idempotency_key": f"r{aid}",
                            "created_at": later,
                            "settled_at": later,
                        }
                    )
            conn.execute(insert(t.payment_captures), captures)
            if refunds:
                conn.execute(insert(t.payment_refunds), refunds)
        counts["documents"] += len(docs)
        counts["attempts"] += len(attempts)
        counts["captures"] += len(captures)
        counts["refunds"] += len(refunds)
    with db.read() as conn:
        counts["documents_in_org"] = int(
            conn.execute(select(func.count()).where(d.organization_id == org)).scalar_one()
        )
    counts["org"] = org
    return counts


CASES = (
    ("24 months by month", date(2024, 12, 1), date(2026, 11, 30), "month"),
    ("12 months by week", date(2025, 12, 1), date(2026, 11, 30), "week"),
    ("90 days by day", date(2026, 9, 2), date(2026, 11, 30), "day"),
)


def measure(db: Database, org: int, repeat: int) -> list[tuple[str, float, float, float, float | None]]:
    """(case, median wall ms, max wall ms, median client CPU ms, mean server CPU ms on PostgreSQL).
    On a shared machine CPU time is the steadier figure."""
    out = []
    for label, start, end, grain in CASES:
        walls, cpus = [], []
        pids: list[int] = []
        server_started = 0.0
        for i in range(repeat + 1):
            if i == 1:
                pids = backends(db)
                server_started = server_cpu_ms(pids)
            began, cpu = time.perf_counter(), time.process_time()
            with db.read() as conn:
                result = dashboard(conn, org, "EUR", start, end, grain, now=NOW)
            if i:
                walls.append((time.perf_counter() - began) * 1000)
                cpus.append((time.process_time() - cpu) * 1000)
        if not result.buckets:
            raise RuntimeError("no buckets")
        server = (server_cpu_ms(pids) - server_started) / repeat if pids else None
        out.append((label, statistics.median(walls), max(walls), statistics.median(cpus), server))
    return out


def run(backend: str, documents: int, repeat: int) -> None:
    cluster = None
    tmp = tempfile.mkdtemp(prefix="fiscus-dash-")
    try:
        if backend == "sqlite":
            url = f"sqlite:///{tmp}/bench.db"
        else:
            cluster = ThrowawayPostgres()
            cluster.start()
            url = cluster.create_database("bench_dashboard")
        create_database_schema(url)
        db = Database(url)
        began = time.perf_counter()
        counts = load(db, documents)
        settle(db)
        print(f"[{backend}] set-up {time.perf_counter() - began:.1f} s: {counts}")
        for label, median, worst, cpu, server in measure(db, counts["org"], repeat):
            shown = "" if server is None else f"   server CPU {server:7.1f} ms"
            print(
                f"[{backend}] dashboard {label:<20} median {median:7.1f} ms   max {worst:7.1f} ms"
                f"   client CPU {cpu:7.1f} ms{shown}   load {os.getloadavg()[0]:.1f}"
            )
        db.dispose()
    finally:
        if cluster is not None:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(
        f"load average {os.getloadavg()[0]:.1f}; {args.documents} documents; {args.repeat} timed calls each"
    )
    for backend in args.db.split(","):
        run(backend, args.documents, args.repeat)


if __name__ == "__main__":
    main()
