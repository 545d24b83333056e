"""Automatic collection: planned when a document is issued, run by the worker when due (the first
charge, then the retries the schedule planned)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.arrays import any_of
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.domain.errors import InvalidFieldError, InvalidStateError, NotFoundError
from fiscus.domain.payments import UNSETTLED, AttemptStatus, PaymentProvider, Trigger
from fiscus.services.collection_pause import paused_document
from fiscus.services.payments.charging import ChargeNotDue, charge_document
from fiscus.services.payments.janitor import SETTLE_GRACE


@dataclass(frozen=True, slots=True)
class CollectionSummary:
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0


COLLECTED_TYPES = (DocumentType.INVOICE.value, DocumentType.PROFORMA.value)


def planned_at_issue(
    org: Mapping[str, Any], doc_type: str, total_minor: int, at: datetime
) -> datetime | None:
    """When a document about to be issued open is charged automatically: what `schedule_collection`
    would set, known before the insert, so a billing batch writes it with the row instead of updating
    every row it just wrote (issue 18). `settle_planned` then applies what the issuing transaction
    changed afterwards (credit that paid a document)."""
    collected = org["auto_collect"] and doc_type in COLLECTED_TYPES and total_minor > 0
    return at if collected else None


def settle_planned(conn: Connection, document_ids: Sequence[int]) -> None:
    """Drop the planned charge of documents no longer open (credit paid them in the same transaction):
    together with `planned_at_issue`, the outcome of `schedule_collection` after the credits."""
    if not document_ids:
        return
    d = t.documents.c
    conn.execute(
        update(t.documents)
        .where(
            any_of(conn, d.id, list(document_ids)),
            d.next_payment_attempt_at.is_not(None),
            d.status != DocumentStatus.OPEN.value,
        )
        .values(next_payment_attempt_at=None)
    )


def schedule_collection(conn: Connection, document_ids: Sequence[int], at: datetime) -> None:
    """Plan the automatic charge of just-issued documents whose organisation collects automatically."""
    if not document_ids:
        return
    d, o = t.documents.c, t.organizations.c
    conn.execute(
        update(t.documents)
        .where(
            d.id.in_(list(document_ids)),
            d.type.in_(COLLECTED_TYPES),
            d.status == DocumentStatus.OPEN.value,
            d.total_minor > 0,
            d.organization_id.in_(select(o.id).where(o.auto_collect.is_(True))),
        )
        .values(next_payment_attempt_at=at)
    )


def run_collection(
    db: Database, clock: Clock, provider: PaymentProvider, *, limit: int = 500, actor: str = "worker"
) -> CollectionSummary:
    """Charge every document whose automatic charge or retry is due. Documents whose customer has no
    usable method are taken off the schedule (the hosted payment page remains)."""
    now = clock.now()
    d = t.documents.c
    with db.read() as conn:
        due = conn.execute(
            select(d.id, d.organization_id)
            .where(
                d.next_payment_attempt_at.is_not(None),
                d.next_payment_attempt_at <= now,
                ~paused_document(now),  # a subscription's paused collection (services/collection_pause.py)
            )
            .order_by(d.next_payment_attempt_at, d.id)
            .limit(limit)
        ).all()
    counts = {"attempted": 0, "succeeded": 0, "failed": 0, "unknown": 0, "skipped": 0}
    pa = t.payment_attempts.c
    for doc_id, org_id in due:
        with db.read() as conn:
            tried = conn.execute(
                select(func.count()).where(
                    pa.document_id == doc_id,
                    pa.trigger.in_((Trigger.AUTOMATIC.value, Trigger.RETRY.value)),
                )
            ).scalar_one()
            unsettled = conn.execute(
                select(pa.id).where(pa.document_id == doc_id, pa.status.in_([s.value for s in UNSETTLED]))
            ).first()
        if unsettled is not None:
            # A charge from the API or the hosted page is in flight: come back once the janitor has
            # settled it, rather than dropping the document from the schedule (if that charge never
            # happened, nothing else would collect the document).
            _postpone(db, clock, doc_id, now + SETTLE_GRACE)
            counts["skipped"] += 1
            continue
        trigger = Trigger.RETRY if tried else Trigger.AUTOMATIC
        try:
            outcome = charge_document(db, clock, provider, org_id, doc_id, trigger=trigger, actor=actor)
        except ChargeNotDue:
            continue  # another worker made this charge (or moved its retry) since the list was read
        except (InvalidStateError, InvalidFieldError, NotFoundError):
            _unschedule(db, clock, doc_id)
            counts["skipped"] += 1
            continue
        counts["attempted"] += 1
        if outcome.status in (AttemptStatus.SUCCEEDED, AttemptStatus.AUTHORIZED):
            counts["succeeded"] += 1
        elif outcome.status is AttemptStatus.FAILED:
            counts["failed"] += 1
        else:
            counts["unknown"] += 1
    return CollectionSummary(**counts)


def _postpone(db: Database, clock: Clock, document_id: int, at: datetime) -> None:
    with db.write() as conn:
        conn.execute(
            update(t.documents)
            .where(t.documents.c.id == document_id, t.documents.c.next_payment_attempt_at.is_not(None))
            .values(next_payment_attempt_at=at, updated_at=clock.now())
        )


def _unschedule(db: Database, clock: Clock, document_id: int) -> None:
    with db.write() as conn:
        conn.execute(
            update(t.documents)
            .where(t.documents.c.id == document_id, t.documents.c.next_payment_attempt_at.is_not(None))
            .values(next_payment_attempt_at=None, updated_at=clock.now())
        )
