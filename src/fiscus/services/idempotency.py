"""Idempotency keys with Stripe's semantics.

The same key with the same request replays the stored response; the same key with another method, path
or body is refused (422); a key whose first request is still running is refused (409). The claim is a
row under UNIQUE(organization_id, key), so two concurrent requests cannot both run. A claim whose
process died is taken over after its lock expires. Keys are kept for at least 24 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock

LOCK = timedelta(seconds=60)
RETENTION = timedelta(hours=48)


class ClaimState(StrEnum):
    NEW = "new"
    REPLAY = "replay"
    MISMATCH = "mismatch"
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    status: int | None = None
    body: str | None = None
    content_type: str | None = None


def claim(
    db: Database, clock: Clock, org_id: int, key: str, method: str, path: str, fingerprint: str
) -> Claim:
    now = clock.now()
    c = t.idempotency_keys.c
    try:
        with db.write() as conn:
            row = (
                conn.execute(
                    select(t.idempotency_keys)
                    .where(c.organization_id == org_id, c.key == key)
                    .with_for_update()
                )
                .mappings()
                .one_or_none()
            )
            if row is None:
                conn.execute(
                    insert(t.idempotency_keys).values(
                        organization_id=org_id,
                        key=key,
                        method=method,
                        path=path,
                        fingerprint=fingerprint,
                        status="in_progress",
                        created_at=now,
                        locked_until=now + LOCK,
                    )
                )
                return Claim(ClaimState.NEW)
            if (row["method"], row["path"], row["fingerprint"]) != (method, path, fingerprint):
                return Claim(ClaimState.MISMATCH)
            if row["status"] == "done":
                return Claim(
                    ClaimState.REPLAY,
                    row["response_status"],
                    row["response_body"],
                    row["response_content_type"],
                )
            if row["locked_until"] is not None and row["locked_until"] > now:
                return Claim(ClaimState.IN_PROGRESS)
            conn.execute(update(t.idempotency_keys).where(c.id == row["id"]).values(locked_until=now + LOCK))
            return Claim(ClaimState.NEW)
    except IntegrityError:
        return Claim(ClaimState.IN_PROGRESS)


def complete(db: Database, org_id: int, key: str, status: int, body: str, content_type: str) -> None:
    c = t.idempotency_keys.c
    with db.write() as conn:
        conn.execute(
            update(t.idempotency_keys)
            .where(c.organization_id == org_id, c.key == key)
            .values(
                status="done",
                response_status=status,
                response_body=body,
                response_content_type=content_type,
                locked_until=None,
            )
        )


def release(db: Database, org_id: int, key: str) -> None:
    """Forget a claim whose request did not run (validation failed, or the server failed)."""
    c = t.idempotency_keys.c
    with db.write() as conn:
        conn.execute(
            delete(t.idempotency_keys).where(
                c.organization_id == org_id, c.key == key, c.status == "in_progress"
            )
        )


def prune(db: Database, clock: Clock, older_than: timedelta = RETENTION) -> int:
    cutoff: datetime = clock.now() - max(older_than, timedelta(hours=24))
    with db.write() as conn:
        result = conn.execute(delete(t.idempotency_keys).where(t.idempotency_keys.c.created_at < cutoff))
        return int(result.rowcount or 0)
