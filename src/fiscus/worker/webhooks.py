"""Webhook delivery: fan outbox events out into deliveries, then deliver what is due, with retries.

At-least-once, never inside a transaction: a delivery is claimed by setting `locked_until` (commit),
sent with no transaction open, and its outcome recorded in a new transaction. A worker killed between
claim and record leaves the lock to expire after `LOCK_FOR`, and another worker sends again with the
same `webhook-id`, which is what receivers deduplicate on. Claims use `FOR UPDATE SKIP LOCKED` on
PostgreSQL, so several workers share the queue; on SQLite `BEGIN IMMEDIATE` serialises them.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from prometheus_client import Counter
from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.webhooks.sender import SendResult, WebhookSender, event_body
from fiscus.domain.clock import Clock
from fiscus.services.webhooks import matches

log = logging.getLogger(__name__)

RETRY_SCHEDULE: Final = [
    timedelta(seconds=0),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=24),
    timedelta(hours=24),
    timedelta(hours=24),
]
"""Attempt n (0-based) is made RETRY_SCHEDULE[n] after attempt n-1 failed; after the last, the
delivery is failed. About 3.7 days in all, enough to ride out a receiver's long weekend outage."""

LOCK_FOR: Final = timedelta(seconds=60)
RELEASE_AFTER_SECONDS: Final = 35.0
"""A claimed delivery not yet started this long after the claim is released instead of sent: an
attempt may take up to ~20 s, and it must finish before the 60 s lock lets another worker in."""

ATTEMPTS = Counter("fiscus_webhook_attempts_total", "Webhook delivery attempts", ["outcome"])
DELIVERIES_FAILED = Counter(
    "fiscus_webhook_deliveries_failed_total", "Webhook deliveries given up after the last retry"
)


def dispatch_events(db: Database, clock: Clock, limit: int = 500) -> int:
    """Turn up to `limit` undispatched outbox events into one pending delivery per enabled, matching
    endpoint of the event's organisation, and mark them dispatched, in one transaction.

    The insert skips rows that exist (UNIQUE endpoint_id, event_id), so running this again over the
    same events never duplicates a delivery. Returns the number of events dispatched.
    """
    o, e = t.outbox_events.c, t.webhook_endpoints.c
    with db.write() as conn:
        now = clock.now()
        events = conn.execute(
            select(o.id, o.organization_id, o.type)
            .where(o.dispatched_at.is_(None))
            .order_by(o.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not events:
            return 0
        endpoints: dict[int, list[tuple[int, list[str]]]] = {}
        for row in conn.execute(
            select(e.id, e.organization_id, e.event_types)
            .where(e.organization_id.in_({ev.organization_id for ev in events}), e.enabled.is_(True))
            .order_by(e.id)
        ):
            endpoints.setdefault(row.organization_id, []).append((row.id, list(row.event_types)))
        rows = [
            {
                "organization_id": ev.organization_id,
                "endpoint_id": endpoint_id,
                "event_id": ev.id,
                "event_type": ev.type,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for ev in events
            for endpoint_id, subscribed in endpoints.get(ev.organization_id, [])
            if matches(subscribed, ev.type)
        ]
        if rows:
            conn.execute(_insert_new_deliveries(db), rows)
        conn.execute(
            update(t.outbox_events).where(o.id.in_([ev.id for ev in events])).values(dispatched_at=now)
        )
    return len(events)


def _insert_new_deliveries(db: Database) -> Any:
    keys = ["endpoint_id", "event_id"]
    if db.is_sqlite:
        return sqlite.insert(t.webhook_deliveries).on_conflict_do_nothing(index_elements=keys)
    if db.dialect == "postgresql":
        return postgresql.insert(t.webhook_deliveries).on_conflict_do_nothing(index_elements=keys)
    return insert(t.webhook_deliveries)


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    organization_id: int
    url: str
    msg_id: str
    body: str
    secrets: list[str]


def deliver_due(
    db: Database,
    clock: Clock,
    sender: WebhookSender,
    *,
    limit: int = 50,
    allow_private: bool = False,
    concurrency: int = 4,
) -> int:
    """Claim up to `limit` due deliveries of enabled endpoints, send them (`concurrency` at a time,
    outside any transaction) and record each attempt. Returns the number of attempts made."""
    claimed, token = _claim(db, clock, limit)
    if not claimed:
        return 0
    claimed_at = time.monotonic()

    def work(item: _Claimed) -> bool:
        if time.monotonic() - claimed_at > RELEASE_AFTER_SECONDS:
            _release(db, item.id, token)
            return False
        attempted_at = clock.now()
        result = sender.send(
            item.url, msg_id=item.msg_id, body=item.body, secrets=item.secrets, allow_private=allow_private
        )
        _record(db, clock, item, token, attempted_at, result)
        return True

    if concurrency <= 1 or len(claimed) == 1:
        done = [work(item) for item in claimed]
    else:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(claimed))) as pool:
            done = list(pool.map(work, claimed))
    return sum(done)


def _claim(db: Database, clock: Clock, limit: int) -> tuple[list[_Claimed], datetime]:
    d, e, o = t.webhook_deliveries.c, t.webhook_endpoints.c, t.outbox_events.c
    with db.write() as conn:
        now = clock.now()
        token = now + LOCK_FOR
        ids = (
            conn.execute(
                select(d.id)
                .join(t.webhook_endpoints, e.id == d.endpoint_id)
                .where(
                    d.status == "pending",
                    d.next_attempt_at <= now,
                    or_(d.locked_until.is_(None), d.locked_until < now),
                    e.enabled.is_(True),
                )
                .order_by(d.next_attempt_at, d.id)
                .limit(limit)
                .with_for_update(skip_locked=True, of=t.webhook_deliveries)
            )
            .scalars()
            .all()
        )
        if not ids:
            return [], token
        conn.execute(update(t.webhook_deliveries).where(d.id.in_(ids)).values(locked_until=token))
        rows = conn.execute(
            select(
                d.id,
                d.organization_id,
                d.event_id,
                e.url,
                e.secret,
                e.previous_secret,
                e.previous_secret_expires_at,
                o.type,
                o.created_at,
                o.payload,
            )
            .select_from(
                t.webhook_deliveries.join(t.webhook_endpoints, e.id == d.endpoint_id).join(
                    t.outbox_events, o.id == d.event_id
                )
            )
            .where(d.id.in_(ids))
            .order_by(d.next_attempt_at, d.id)
        ).all()
    claimed = []
    for r in rows:
        keys = [r.secret]
        if r.previous_secret and r.previous_secret_expires_at and r.previous_secret_expires_at > now:
            keys.append(r.previous_secret)
        claimed.append(
            _Claimed(
                id=r.id,
                organization_id=r.organization_id,
                url=r.url,
                msg_id=f"evt_{r.event_id}",
                body=event_body(r.type, r.created_at, r.payload),
                secrets=keys,
            )
        )
    return claimed, token


def _release(db: Database, delivery_id: int, token: datetime) -> None:
    d = t.webhook_deliveries.c
    with db.write() as conn:
        conn.execute(
            update(t.webhook_deliveries)
            .where(d.id == delivery_id, d.locked_until == token)
            .values(locked_until=None)
        )


def _record(
    db: Database, clock: Clock, item: _Claimed, token: datetime, attempted_at: datetime, result: SendResult
) -> None:
    """Log the attempt and move the delivery on. A success always marks it succeeded (the receiver has
    it). A failure reschedules or fails it only while this claim still holds it (`locked_until` is
    this claim's and it is pending): after the lock passed to another worker, or a deletion, the
    failed attempt is counted and changes nothing else."""
    d = t.webhook_deliveries.c
    with db.write() as conn:
        now = clock.now()
        conn.execute(
            insert(t.webhook_attempts).values(
                organization_id=item.organization_id,
                delivery_id=item.id,
                attempted_at=attempted_at,
                status_code=result.status_code,
                error=result.error,
                duration_ms=result.duration_ms,
                response_body=result.response_body,
            )
        )
        row = conn.execute(
            select(d.status, d.attempts, d.locked_until).where(d.id == item.id).with_for_update()
        ).one()
        attempts = int(row.attempts) + 1
        values: dict[str, Any] = {"attempts": attempts, "last_attempt_at": attempted_at}
        owner = row.status == "pending" and row.locked_until == token
        failed = False
        if result.ok:
            values.update(status="succeeded", next_attempt_at=None, locked_until=None)
        elif owner and attempts < len(RETRY_SCHEDULE):
            values.update(next_attempt_at=now + RETRY_SCHEDULE[attempts], locked_until=None)
        elif owner:
            values.update(status="failed", next_attempt_at=None, locked_until=None)
            failed = True
        _update(conn, item.id, values)
    ATTEMPTS.labels(outcome=result.outcome).inc()
    if failed:
        DELIVERIES_FAILED.inc()
        log.warning("webhook delivery %s failed after %s attempts: %s", item.id, attempts, result.error)


def _update(conn: Connection, delivery_id: int, values: dict[str, Any]) -> None:
    conn.execute(
        update(t.webhook_deliveries).where(t.webhook_deliveries.c.id == delivery_id).values(**values)
    )


def run_webhook_cycle(
    db: Database, clock: Clock, sender: WebhookSender, *, allow_private: bool
) -> tuple[int, int]:
    """One worker tick: (events dispatched, attempts made)."""
    dispatched = 0
    while batch := dispatch_events(db, clock):
        dispatched += batch
    return dispatched, deliver_due(db, clock, sender, allow_private=allow_private)
