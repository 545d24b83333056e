"""After a failed charge: the next retry on the organisation's schedule (never after a hard decline),
the final action once the schedule is spent, and the subscription's status while its documents are owed
(past due on a failure, active again once nothing is owed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import append_audit, append_outbox, audit_row, outbox_row
from fiscus.adapters.db.email_queue import queue_final_action
from fiscus.domain.documents import DocumentAction, DocumentStatus, DocumentType
from fiscus.domain.payments import AttemptStatus, FinalAction, RetryPolicy, Trigger, is_hard_decline
from fiscus.domain.subscriptions import SubscriptionStatus
from fiscus.services.document_state import apply_document_action, due_of, locked_document
from fiscus.services.mrr_history import refresh_customers
from fiscus.services.payments.attempts import audit_attempt, payment_event, touch_document


def settle_failed(
    conn: Connection, now: datetime, attempt: dict[str, Any], code: str, message: str, actor: str
) -> None:
    """A failed attempt: record the error, plan the next retry (never after a hard decline), and after
    the last one apply the organisation's final action."""
    hard = is_hard_decline(code)
    conn.execute(
        update(t.payment_attempts)
        .where(t.payment_attempts.c.id == attempt["id"])
        .values(
            status=AttemptStatus.FAILED.value,
            error_code=code[:64],
            error_message=message[:500],
            hard_decline=hard,
            settled_at=now,
            updated_at=now,
        )
    )
    org_id = attempt["organization_id"]
    audit_attempt(
        conn,
        org_id,
        attempt["id"],
        "failed",
        actor,
        now,
        {"status": attempt["status"]},
        {"status": "failed", "error_code": code, "hard_decline": hard},
    )
    payment_event(conn, attempt, "payment.failed", now, error_code=code, error_message=message)
    doc = locked_document(conn, attempt["document_id"])
    values: dict[str, Any] = {}
    final = False
    if Trigger(attempt["trigger"]) in (Trigger.AUTOMATIC, Trigger.RETRY):
        org = conn.execute(
            select(t.organizations.c.retry_days, t.organizations.c.retry_final_action).where(
                t.organizations.c.id == org_id
            )
        ).one()
        policy = RetryPolicy(tuple(org.retry_days), FinalAction(org.retry_final_action))
        pa = t.payment_attempts.c
        failures = conn.execute(
            select(func.count(), func.min(pa.created_at)).where(
                pa.document_id == doc["id"],
                pa.status == AttemptStatus.FAILED.value,
                pa.trigger.in_((Trigger.AUTOMATIC.value, Trigger.RETRY.value)),
            )
        ).one()
        next_at = policy.next_attempt_at(failures[1], int(failures[0]), code) if due_of(doc) > 0 else None
        values["next_payment_attempt_at"] = next_at
        final = next_at is None
        payload = {
            "id": doc["id"],
            "number": doc["number"],
            "attempt_id": attempt["id"],
            "error_code": code,
            "hard_decline": hard,
            "attempt_count": int(failures[0]),
            "next_payment_attempt_at": next_at.isoformat() if next_at else None,
        }
        append_outbox(
            conn, [outbox_row(org_id, f"{doc['type']}.payment_failed", "document", doc["id"], now, payload)]
        )
        _subscription_past_due(conn, doc, actor, now)
        if final and _final_action(conn, doc, policy.final_action, actor, now):
            queue_final_action(conn, now, doc, policy.final_action.value, int(attempt["id"]))
    touch_document(conn, doc["id"], now, **values)


def _final_action(
    conn: Connection, doc: dict[str, Any], action: FinalAction, actor: str, now: datetime
) -> bool:
    """Apply the policy's final action; whether it changed anything (the customer is then told)."""
    if (
        action is FinalAction.MARK_UNCOLLECTIBLE
        and doc["type"] == DocumentType.INVOICE.value
        and doc["status"] == DocumentStatus.OPEN.value
    ):
        apply_document_action(conn, doc, DocumentAction.MARK_UNCOLLECTIBLE, {}, actor, now)
        return True
    if action is FinalAction.CANCEL_SUBSCRIPTION and doc["subscription_id"] is not None:
        sub = (
            conn.execute(
                select(t.subscriptions)
                .where(t.subscriptions.c.id == doc["subscription_id"])
                .with_for_update()
            )
            .mappings()
            .one()
        )
        if sub["status"] in (
            SubscriptionStatus.ACTIVE.value,
            SubscriptionStatus.PAST_DUE.value,
            SubscriptionStatus.TRIALING.value,
        ):
            _subscription_status(
                conn, dict(sub), SubscriptionStatus.CANCELED, actor, now, canceled_at=now, ended_at=now
            )
            return True
    return False


def _subscription_status(
    conn: Connection, sub: dict[str, Any], status: SubscriptionStatus, actor: str, now: datetime, **extra: Any
) -> None:
    values = {"status": status.value, "updated_at": now, **extra}
    conn.execute(update(t.subscriptions).where(t.subscriptions.c.id == sub["id"]).values(**values))
    org_id = sub["organization_id"]
    if "ended_at" in extra:  # the dunning policy's cancellation ends the paid time: MRR history
        refresh_customers(conn, org_id, [sub["customer_id"]])
    append_audit(
        conn,
        [
            audit_row(
                org_id,
                "subscription",
                sub["id"],
                status.value,
                actor,
                now,
                {"status": sub["status"]},
                {"status": status.value, "reason": "payment"},
            )
        ],
    )
    append_outbox(
        conn,
        [
            outbox_row(
                org_id,
                f"subscription.{status.value}",
                "subscription",
                sub["id"],
                now,
                {"id": sub["id"], "status": status.value},
            )
        ],
    )


def _locked_subscription(conn: Connection, doc: dict[str, Any]) -> dict[str, Any] | None:
    """The subscription a document bills, locked; None for a document of orders."""
    if doc["subscription_id"] is None:
        return None
    return dict(
        conn.execute(
            select(t.subscriptions).where(t.subscriptions.c.id == doc["subscription_id"]).with_for_update()
        )
        .mappings()
        .one()
    )


def _subscription_past_due(conn: Connection, doc: dict[str, Any], actor: str, now: datetime) -> None:
    sub = _locked_subscription(conn, doc)
    if sub is not None and sub["status"] == SubscriptionStatus.ACTIVE.value:
        _subscription_status(conn, sub, SubscriptionStatus.PAST_DUE, actor, now)


def subscription_recovered(conn: Connection, doc: dict[str, Any], actor: str, now: datetime) -> None:
    """A past-due subscription is active again once none of its documents is still owed."""
    sub = _locked_subscription(conn, doc)
    if sub is None or sub["status"] != SubscriptionStatus.PAST_DUE.value:
        return
    d, pa = t.documents.c, t.payment_attempts.c
    failed_docs = select(pa.document_id).where(pa.status == AttemptStatus.FAILED.value)
    still_owed = conn.execute(
        select(func.count()).where(
            d.subscription_id == sub["id"],
            d.id != doc["id"],
            d.status == DocumentStatus.OPEN.value,
            d.type.in_((DocumentType.INVOICE.value, DocumentType.PROFORMA.value)),
            d.id.in_(failed_docs),
        )
    ).scalar_one()
    if not still_owed:
        _subscription_status(conn, sub, SubscriptionStatus.ACTIVE, actor, now)
