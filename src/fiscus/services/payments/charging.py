"""Charging a document: (1) one transaction records the attempt with the idempotency key, (2) the
provider is called with it outside any transaction, (3) one transaction settles the attempt from the
answer. An answer that never came leaves the attempt `unknown` for the janitor."""

from __future__ import annotations

import secrets

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.domain.errors import FieldConflictError, InvalidStateError
from fiscus.domain.payments import (
    UNSETTLED,
    AttemptStatus,
    CaptureMode,
    OutcomeUnknown,
    PaymentProvider,
    ProviderError,
    ProviderUnreachable,
    Trigger,
)
from fiscus.services.collection_pause import active_pause
from fiscus.services.common import get_scoped, jsonable
from fiscus.services.document_state import COLLECTABLE, due_of
from fiscus.services.payments.attempts import (
    ATTEMPT_KEYS,
    AttemptOutcome,
    attempt_outcome,
    audit_attempt,
    locked_attempt,
    touch_document,
)
from fiscus.services.payments.methods import resolve_method
from fiscus.services.payments.retries import settle_failed
from fiscus.services.payments.settlement import apply_charge_snapshot

UNREACHABLE_CODE = "provider_unreachable"


class ChargeNotDue(InvalidStateError):
    """An automatic charge or retry that is no longer planned for now (another worker made it)."""


def charge_document(
    db: Database,
    clock: Clock,
    provider: PaymentProvider,
    org_id: int,
    document_id: int,
    *,
    method_id: int | None = None,
    trigger: Trigger = Trigger.API,
    actor: str = "api",
) -> AttemptOutcome:
    """Charge what is due on an issued invoice or proforma to a payment method (the given one, else the
    subscription's, else the customer's default). Sale or authorisation per the organisation's setting."""
    now = clock.now()
    key = f"fiscus_att_{secrets.token_urlsafe(18)}"
    with db.write() as conn:
        doc = get_scoped(conn, t.documents, org_id, document_id, lock=True)
        scheduled = doc["next_payment_attempt_at"]
        if trigger in (Trigger.AUTOMATIC, Trigger.RETRY) and (scheduled is None or scheduled > now):
            # The worker's claim on a planned charge is this check under the document's row lock:
            # another worker that read the same due list and got here first has cleared (or moved)
            # the schedule, so a second process never makes the same planned attempt again.
            raise ChargeNotDue("the planned charge of this document was taken by another process")
        sub_id = doc["subscription_id"]
        automatic = trigger in (Trigger.AUTOMATIC, Trigger.RETRY)
        if automatic and sub_id is not None and active_pause(conn, org_id, int(sub_id), now) is not None:
            raise ChargeNotDue("the subscription's collection is paused")
        if doc["type"] == DocumentType.CREDIT_NOTE.value:
            raise InvalidStateError("a credit note is not charged", type=doc["type"])
        if DocumentStatus(doc["status"]) not in COLLECTABLE:
            raise InvalidStateError(
                f"a {doc['type']} in status '{doc['status']}' cannot be charged", status=doc["status"]
            )
        due = due_of(doc)
        if due <= 0:
            raise InvalidStateError("nothing is due on this document", status=doc["status"])
        method = resolve_method(conn, doc, method_id)
        if method is None:
            raise FieldConflictError("payment_method_id", "the customer has no active payment method")
        capture_mode = conn.execute(
            select(t.organizations.c.capture_mode).where(t.organizations.c.id == org_id)
        ).scalar_one()
        values = {
            "organization_id": org_id,
            "document_id": document_id,
            "customer_id": doc["customer_id"],
            "payment_method_id": method["id"],
            "currency": doc["currency"],
            "amount_minor": due,
            "capture_mode": capture_mode,
            "status": AttemptStatus.PENDING.value,
            "idempotency_key": key,
            "provider": method["provider"],
            "trigger": trigger.value,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with conn.begin_nested():
                attempt_id = int(
                    conn.execute(
                        insert(t.payment_attempts).values(**values).returning(t.payment_attempts.c.id)
                    ).scalar_one()
                )
        except IntegrityError:
            raise InvalidStateError(
                "a payment for this document is already in progress; try again once it has settled",
                status=doc["status"],
            ) from None
        planned = {"next_payment_attempt_at": None} if trigger in (Trigger.AUTOMATIC, Trigger.RETRY) else {}
        touch_document(conn, document_id, now, **planned)
        audit_attempt(conn, org_id, attempt_id, "started", actor, now, None, jsonable(values, ATTEMPT_KEYS))
    token = method["provider_token"]
    try:
        snapshot = provider.charge(
            token=token,
            amount_minor=due,
            currency=doc["currency"],
            capture=capture_mode == CaptureMode.SALE.value,
            reference=key,
            key=key,
        )
    except OutcomeUnknown as exc:
        return _mark_unknown(db, clock, attempt_id, str(exc), actor)
    except ProviderUnreachable as exc:
        return _fail_unsent(db, clock, attempt_id, UNREACHABLE_CODE, str(exc), actor)
    except ProviderError as exc:
        return _fail_unsent(db, clock, attempt_id, exc.code, exc.message, actor)
    with db.write() as conn:
        attempt = locked_attempt(conn, attempt_id)
        apply_charge_snapshot(conn, clock, attempt, snapshot, actor)
        return attempt_outcome(conn, attempt_id)


def _mark_unknown(db: Database, clock: Clock, attempt_id: int, why: str, actor: str) -> AttemptOutcome:
    now = clock.now()
    with db.write() as conn:
        attempt = locked_attempt(conn, attempt_id)
        if AttemptStatus(attempt["status"]) is AttemptStatus.PENDING:
            conn.execute(
                update(t.payment_attempts)
                .where(t.payment_attempts.c.id == attempt_id)
                .values(status=AttemptStatus.UNKNOWN.value, error_message=why[:500], updated_at=now)
            )
            touch_document(conn, attempt["document_id"], now)
            audit_attempt(
                conn,
                attempt["organization_id"],
                attempt_id,
                "unknown",
                actor,
                now,
                {"status": "pending"},
                {"status": "unknown", "why": why[:200]},
            )
        return attempt_outcome(conn, attempt_id)


def _fail_unsent(
    db: Database, clock: Clock, attempt_id: int, code: str, message: str, actor: str
) -> AttemptOutcome:
    """The provider refused the call or never got it: no money moved."""
    with db.write() as conn:
        attempt = locked_attempt(conn, attempt_id)
        if AttemptStatus(attempt["status"]) in UNSETTLED:
            settle_failed(conn, clock.now(), attempt, code, message, actor)
        return attempt_outcome(conn, attempt_id)
