"""Requested billing runs (the API's and the worker's): recorded as `pending`, then carried out once by
whichever process takes them first."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.services.billing_run import ACTOR, DEFAULT_BATCH, BillingRunSummary, run_billing


def request_run(
    db: Database, clock: Clock, *, at: datetime | None, organization_id: int | None, actor: str
) -> int:
    """Record a requested run (status `pending`); `execute_run` or a worker carries it out."""
    with db.write() as conn:
        return int(
            conn.execute(
                insert(t.billing_runs)
                .values(
                    organization_id=organization_id,
                    at=at or clock.now(),
                    status="pending",
                    started_at=clock.now(),
                    totals={},
                    requested_by=actor,
                )
                .returning(t.billing_runs.c.id)
            ).scalar_one()
        )


def execute_run(
    db: Database, clock: Clock, run_id: int, *, batch_size: int = DEFAULT_BATCH
) -> BillingRunSummary | None:
    """Carry out a pending run; None if another process already took it."""
    r = t.billing_runs.c
    with db.write() as conn:
        row = conn.execute(
            update(t.billing_runs)
            .where(r.id == run_id, r.status == "pending")
            .values(status="running", started_at=clock.now())
            .returning(r.at, r.organization_id, r.requested_by)
        ).one_or_none()
    if row is None:
        return None
    try:
        return run_billing(
            db,
            clock,
            at=row.at,
            organization_id=row.organization_id,
            batch_size=batch_size,
            actor=row.requested_by or ACTOR,
            run_id=run_id,
        )
    except Exception:
        with db.write() as conn:
            conn.execute(
                update(t.billing_runs).where(r.id == run_id).values(status="failed", finished_at=clock.now())
            )
        raise


def execute_pending_runs(db: Database, clock: Clock, *, batch_size: int = DEFAULT_BATCH) -> int:
    """Run every requested run that no process has started (the worker calls this)."""
    with db.read() as conn:
        ids = (
            conn.execute(
                select(t.billing_runs.c.id)
                .where(t.billing_runs.c.status == "pending")
                .order_by(t.billing_runs.c.id)
            )
            .scalars()
            .all()
        )
    return sum(1 for run_id in ids if execute_run(db, clock, run_id, batch_size=batch_size) is not None)
