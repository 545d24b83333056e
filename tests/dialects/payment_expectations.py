"""What the dialects' payment fields must say about a document, worked out in the tests from the payment
tables one row at a time (deliberately not with `fiscus.queries.payments`, which they check)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database


@dataclass(frozen=True)
class Expected:
    attempts: int
    last_attempt_at: datetime | None
    method_id: int | None
    network: str | None
    captured_minor: int
    captured_at: datetime | None
    refunded_minor: int
    errors: list[tuple[int, str, str, datetime, int]]
    """(attempt id, code, message, created_at, document id) of each failed attempt, oldest first."""


def expected_payments(db: Database, doc_id: int) -> Expected:
    """The attempts of a document are those made on it and the one whose capture paid it (made on the
    proforma it came from); payments recorded outside Fiscus count as money, not as attempts."""
    a, c, r, m = (t.payment_attempts.c, t.payment_captures.c, t.payment_refunds.c, t.payment_methods.c)
    with db.read() as conn:
        captures = conn.execute(
            select(c.attempt_id, c.amount_minor, c.settled_at).where(
                c.document_id == doc_id, c.status == "succeeded"
            )
        ).all()
        refunds = conn.execute(
            select(r.amount_minor).where(r.document_id == doc_id, r.status == "succeeded")
        ).all()
        paying = {row.attempt_id for row in captures}
        attempts = [
            row
            for row in conn.execute(select(t.payment_attempts).order_by(a.id)).mappings()
            if row["provider"] != "external" and (row["document_id"] == doc_id or row["id"] in paying)
        ]
        networks = dict(conn.execute(select(m.id, m.network)).all())
    last = attempts[-1] if attempts else None
    return Expected(
        attempts=len(attempts),
        last_attempt_at=None if last is None else last["created_at"],
        method_id=None if last is None else last["payment_method_id"],
        network=None if last is None else networks[last["payment_method_id"]],
        captured_minor=sum(row.amount_minor for row in captures),
        captured_at=max((row.settled_at for row in captures), default=None),
        refunded_minor=sum(row.amount_minor for row in refunds),
        errors=[
            (x["id"], x["error_code"], x["error_message"], x["created_at"], x["document_id"])
            for x in attempts
            if x["status"] == "failed"
        ],
    )
