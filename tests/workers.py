"""Code that runs in child processes of the concurrency and crash tests (importable by spawn)."""

from __future__ import annotations

import random
from datetime import datetime
from multiprocessing.synchronize import Event
from typing import Any

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock, SystemClock


class InjectedAbort(Exception):
    """A failure injected after a number was taken and before the transaction commits."""


def bill(url: str, at: datetime, batch_size: int, start: Event, out: Any) -> None:
    from fiscus.services.billing_run import run_billing

    db = Database(url)
    start.wait(30)
    summary = run_billing(db, FixedClock(at), at=at, batch_size=batch_size)
    out.put((summary.documents, summary.subscriptions))
    db.dispose()


def issue(url: str, org_id: int, doc_ids: list[int], seed: int, start: Event, out: Any) -> None:
    """Issue each draft, aborting about 10% of transactions after the number was allocated."""
    import fiscus.services.documents as documents
    from fiscus.adapters.db.documents import number_documents as allocate

    rng = random.Random(seed)

    def flaky(*args: Any, **kwargs: Any) -> Any:
        numbered = allocate(*args, **kwargs)
        if rng.random() < 0.10:
            raise InjectedAbort
        return numbered

    # Rebind the name inside the service module, which calls it as a global of its own.
    vars(documents)["number_documents"] = flaky
    db = Database(url)
    clock = SystemClock()
    aborts = 0
    start.wait(30)
    for doc_id in doc_ids:
        while True:
            try:
                documents.issue_document(db, clock, org_id, doc_id, actor="test:issuer")
                break
            except InjectedAbort:
                aborts += 1
    out.put(aborts)
    db.dispose()
