"""Processes for the usage concurrency test (spawned: importable at module level)."""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta
from typing import Any

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.usage_ingest import EventIn, ingest_events


def send(url: str, org_id: int, customer: int, at: datetime, seed: int, start: Any, out: Any) -> None:
    """Send 10 batches of 100 events drawn from 500 shared transaction ids (a given id always carries
    the same event), so the processes overlap on most of them."""
    db = Database(url)
    rng = random.Random(seed)
    start.wait(60)
    sent = 0
    for _ in range(10):
        ids = rng.sample(range(500), 100)
        batch = [
            EventIn(
                f"tx{i}",
                "calls",
                at - timedelta(minutes=i % 600),
                {"n": str(i % 7), "g": f"g{i % 3}"},
                customer,
            )
            for i in ids
        ]
        ingest_events(db, FixedClock(at), org_id, batch)
        sent += len(batch)
    db.dispose()
    out.put(sent)


def bill(url: str, documents: str, once: bool) -> None:
    """`fiscus worker` in a forked process (its modules already imported: it starts at once), billing
    one subscription per transaction."""
    os.environ.update(
        {"FISCUS_DATABASE_URL": url, "FISCUS_BILLING_BATCH_SIZE": "1", "FISCUS_DOCUMENTS_DIR": documents}
    )
    from fiscus.cli import worker

    worker(interval=3600.0, once=once)
