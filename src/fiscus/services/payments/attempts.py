"""An attempt's records as every step of collecting sees them: locked for settling, summed, reported
as an outcome and as an outbox event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import append_audit, append_outbox, audit_row, outbox_row
from fiscus.domain.money import currency, from_minor
from fiscus.domain.payments import AttemptStatus

ATTEMPT_KEYS = ("status", "amount_minor", "authorized_minor", "provider_charge_id", "error_code")


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    attempt_id: int
    status: AttemptStatus
    error_code: str | None
    error_message: str | None
    document_id: int
    paid_document_id: int | None
    """The document the money paid: the invoice itself, or the invoice a paid proforma became."""


def locked_attempt(conn: Connection, attempt_id: int) -> dict[str, Any]:
    """An attempt row locked for settling, so two settlements of one attempt run one after the other."""
    row = (
        conn.execute(
            select(t.payment_attempts).where(t.payment_attempts.c.id == attempt_id).with_for_update()
        )
        .mappings()
        .one()
    )
    return dict(row)


def attempt_outcome(conn: Connection, attempt_id: int) -> AttemptOutcome:
    """What a caller learns of an attempt once a step has run: its status, error and what it paid."""
    a = conn.execute(select(t.payment_attempts).where(t.payment_attempts.c.id == attempt_id)).mappings().one()
    paid_doc = conn.execute(
        select(t.payment_captures.c.document_id).where(t.payment_captures.c.attempt_id == attempt_id).limit(1)
    ).scalar_one_or_none()
    return AttemptOutcome(
        a["id"], AttemptStatus(a["status"]), a["error_code"], a["error_message"], a["document_id"], paid_doc
    )


def audit_attempt(
    conn: Connection,
    org_id: int,
    attempt_id: int,
    action: str,
    actor: str,
    now: datetime,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> None:
    """The audit row of one change of an attempt."""
    append_audit(conn, [audit_row(org_id, "payment_attempt", attempt_id, action, actor, now, before, after)])


def touch_document(conn: Connection, document_id: int, now: datetime, **values: Any) -> None:
    """Move a document's stamp (and write `values`): cached renderings and presenters follow it."""
    conn.execute(update(t.documents).where(t.documents.c.id == document_id).values(updated_at=now, **values))


def sum_amounts(conn: Connection, table: Any, attempt_id: int, statuses: tuple[str, ...]) -> int:
    """Σ of an attempt's captures or refunds (`table`) in the given statuses."""
    return int(
        conn.execute(
            select(func.coalesce(func.sum(table.c.amount_minor), 0)).where(
                table.c.attempt_id == attempt_id, table.c.status.in_(statuses)
            )
        ).scalar_one()
    )


def payment_event(conn: Connection, attempt: dict[str, Any], type_: str, now: datetime, **extra: Any) -> None:
    """The outbox event of an attempt's change (`payment.succeeded`, `payment.failed`, ...)."""
    cur = currency(attempt["currency"])
    payload = {
        "id": attempt["id"],
        "document_id": attempt["document_id"],
        "customer_id": attempt["customer_id"],
        "payment_method_id": attempt["payment_method_id"],
        "currency": cur.code,
        "amount": str(from_minor(extra.pop("amount_minor", attempt["amount_minor"]), cur)),
        "status": attempt["status"],
        **extra,
    }
    append_outbox(
        conn, [outbox_row(attempt["organization_id"], type_, "payment_attempt", attempt["id"], now, payload)]
    )
