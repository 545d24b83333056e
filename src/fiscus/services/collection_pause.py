"""Pausing and resuming the automatic collection of a subscription (Stripe's `pause_collection`).

What a pause does, and why (docs/console.md, "Pause collection"):
- Invoices go on being issued as usual: numbered from the gapless series at their period, with their
  tax point, as the supply goes on. None of Stripe's three behaviours does that, on purpose: not
  `keep_as_draft` (a supply made without its invoice breaks the issuing deadline VAT law sets, and a
  draft issued later would date the tax point wrongly), not `void` or `mark_uncollectible` (each would
  write a numbered document off the moment it is made, and a void invoice burns a number for nothing).
- The worker makes no automatic charge and no retry of the subscription's documents while it is paused
  (`services/payments/collection.py`: `run_collection` skips them), so no dunning retry runs out and
  no final action (uncollectible, cancel) is taken. The customer can still pay (hosted page, transfer,
  an operator's manual charge); those are explicit, not automatic.
- Resuming, by hand or at `resumes_at`, puts the documents back in the worker's hands: what was due
  during the pause is charged at the next collection run.

A pause is one row of `collection_pauses` (replaced when paused again, deleted on resume); the audit
rows and the `subscription.collection_paused` / `subscription.collection_resumed` events keep history.
A pause past its `resumes_at` has ended by itself (no event: nothing happens at that instant that the
worker does not already do).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, exists, insert, or_, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import append_audit, append_outbox, audit_row, outbox_row
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_collection import collection_pauses
from fiscus.domain.clock import Clock
from fiscus.domain.errors import FieldConflictError, InvalidFieldError, InvalidStateError
from fiscus.domain.periods import ensure_aware_utc
from fiscus.domain.subscriptions import BILLABLE_STATUSES, SubscriptionStatus
from fiscus.services.common import get_scoped


def active_pause(conn: Connection, org_id: int, subscription_id: int, now: datetime) -> dict[str, Any] | None:
    """The subscription's pause in force at `now` (None: collection runs)."""
    p = collection_pauses.c
    row = (
        conn.execute(
            select(p.paused_at, p.resumes_at, p.actor).where(
                p.organization_id == org_id, p.subscription_id == subscription_id, _in_force(now)
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def active_pauses(conn: Connection, org_id: int, ids: list[int], now: datetime) -> dict[int, dict[str, Any]]:
    """`active_pause` for many subscriptions in one statement (lists)."""
    if not ids:
        return {}
    p = collection_pauses.c
    rows = conn.execute(
        select(p.subscription_id, p.paused_at, p.resumes_at).where(
            p.organization_id == org_id, p.subscription_id.in_(ids), _in_force(now)
        )
    ).mappings()
    return {
        int(r["subscription_id"]): {"paused_at": r["paused_at"], "resumes_at": r["resumes_at"]} for r in rows
    }


def _in_force(now: datetime) -> ColumnElement[bool]:
    p = collection_pauses.c
    return or_(p.resumes_at.is_(None), p.resumes_at > now)


def paused_document(now: datetime) -> ColumnElement[bool]:
    """True for a document whose subscription's collection is paused at `now` (the worker's filter)."""
    p, d = collection_pauses.c, t.documents.c
    return exists().where(p.subscription_id == d.subscription_id, _in_force(now))


def pause_collection(
    db: Database,
    clock: Clock,
    org_id: int,
    subscription_id: int,
    *,
    resumes_at: datetime | None = None,
    actor: str = "cli",
) -> dict[str, Any]:
    """Pause (or change the resume instant of a pause); returns the pause as stored."""
    now = clock.now()
    if resumes_at is not None:
        try:
            resumes_at = ensure_aware_utc(resumes_at)
        except ValueError:
            raise InvalidFieldError("resumes_at", "must have a time zone offset") from None
        except OverflowError:  # an offset that moves year 9999 past the calendar's end
            raise FieldConflictError("resumes_at", "is too far in the future") from None
        if resumes_at <= now:
            raise FieldConflictError("resumes_at", "must be in the future")
    p = collection_pauses.c
    with db.write() as conn:
        sub = get_scoped(conn, t.subscriptions, org_id, subscription_id, lock=True)
        if SubscriptionStatus(sub["status"]) not in BILLABLE_STATUSES:
            raise InvalidStateError(f"subscription {subscription_id} is {sub['status']}: nothing to collect")
        before = active_pause(conn, org_id, subscription_id, now)
        paused_at = before["paused_at"] if before else now
        conn.execute(delete(collection_pauses).where(p.subscription_id == subscription_id))
        conn.execute(
            insert(collection_pauses).values(
                organization_id=org_id,
                subscription_id=subscription_id,
                paused_at=paused_at,
                resumes_at=resumes_at,
                actor=actor[:100],
            )
        )
        after = {"paused_at": paused_at, "resumes_at": resumes_at}
        _record(conn, org_id, subscription_id, "collection_paused", actor, now, before, after)
    return after


def resume_collection(
    db: Database, clock: Clock, org_id: int, subscription_id: int, *, actor: str = "cli"
) -> None:
    """End the pause now; what fell due during it is charged at the next collection run."""
    now = clock.now()
    p = collection_pauses.c
    with db.write() as conn:
        get_scoped(conn, t.subscriptions, org_id, subscription_id, lock=True)
        before = active_pause(conn, org_id, subscription_id, now)
        if before is None:
            raise InvalidStateError(f"the collection of subscription {subscription_id} is not paused")
        conn.execute(delete(collection_pauses).where(p.subscription_id == subscription_id))
        _record(conn, org_id, subscription_id, "collection_resumed", actor, now, before, None)


def _record(
    conn: Connection,
    org_id: int,
    subscription_id: int,
    action: str,
    actor: str,
    now: datetime,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    def js(x: dict[str, Any] | None) -> dict[str, Any] | None:
        return (
            None
            if x is None
            else {k: v.isoformat() if v is not None else None for k, v in x.items() if k != "actor"}
        )

    payload = {"id": subscription_id, "pause_collection": js(after)}
    append_audit(
        conn, [audit_row(org_id, "subscription", subscription_id, action, actor, now, js(before), payload)]
    )
    append_outbox(
        conn, [outbox_row(org_id, f"subscription.{action}", "subscription", subscription_id, now, payload)]
    )
