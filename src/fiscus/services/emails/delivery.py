"""Sending the email outbox: claim, send, mark; exactly once per (message, recipient) but for one window.

1. **Claim** (one transaction): due rows become `sending` with `claimed_until = now + lease`, their
   attempt counted and their stable `Message-ID` recorded. A row still `sending` after its lease was
   claimed by a worker that died; it is claimed again (the only way a message is sent twice).
2. **Send** with no transaction open: compose, attach the stored PDF, hand it to the mailer. A claim
   whose lease is nearly spent before the send starts is given back unsent.
3. **Mark** (one transaction) right after the server's 250: `sent`. A temporary failure requeues with
   backoff (`domain/email.py: BACKOFF`), a permanent one (5xx) marks the row and the address `bounced`
   and suppresses the address's other queued mail.

So a message is sent twice only when a worker dies after the server accepted it and before the mark
commits (milliseconds; docs/adr/0007-email.md), and the resend carries the same Message-ID.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime, parseaddr
from typing import Any, Final

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_email import email_outbox, email_suppressions
from fiscus.domain.clock import Clock
from fiscus.domain.email import (
    Attachment,
    EmailKind,
    Mailer,
    PermanentFailure,
    TemporaryFailure,
    message_id,
    retry_delay,
)
from fiscus.domain.errors import DomainError
from fiscus.services.emails.compose import Links, build_message, compose, to_mime

log = logging.getLogger(__name__)

MAX_AGE: Final = timedelta(days=7)
"""A message still unsent this long after its cause is expired, not sent: an invoice email a week late
(a queue stuck without SMTP settings, a restored backup) would surprise more than help."""

PdfSource = Callable[[int, int], Attachment]
"""(organisation id, document id) → the document's stored PDF, as `GET /api/v1/documents/{id}/pdf`."""


@dataclass(frozen=True, slots=True)
class Outlet:
    """What the worker sends with: the mailer, where links point, the instance's sender, the lease."""

    mailer: Mailer
    links: Links
    default_from: str
    pdf: PdfSource
    lease: timedelta = timedelta(minutes=5)


@dataclass(slots=True)
class SendSummary:
    sent: int = 0
    retried: int = 0
    bounced: int = 0
    failed: int = 0
    released: int = 0


@dataclass(frozen=True, slots=True)
class _Claim:
    id: int
    organization_id: int
    kind: EmailKind
    recipient: str
    customer_id: int
    document_id: int | None
    data: dict[str, Any]
    message_id: str
    attempts: int
    claimed_until: datetime


def send_due(db: Database, clock: Clock, outlet: Outlet, *, limit: int = 50) -> SendSummary:
    """Send up to `limit` due emails, one at a time."""
    summary = SendSummary()
    for claim in _claim(db, clock, outlet, limit):
        _send_one(db, clock, outlet, claim, summary)
    return summary


def _domain(default_from: str) -> str:
    return parseaddr(default_from)[1].rpartition("@")[2] or "localhost"


def _claim(db: Database, clock: Clock, outlet: Outlet, limit: int) -> list[_Claim]:
    e = email_outbox.c
    with db.write() as conn:
        now = clock.now()
        conn.execute(
            update(email_outbox)
            .where(e.status == "queued", e.created_at < now - MAX_AGE)
            .values(status="expired", updated_at=now, last_error="not sent within 7 days")
        )
        due = or_(
            and_(e.status == "queued", e.next_attempt_at <= now),
            and_(e.status == "sending", e.claimed_until < now),
        )
        rows = (
            conn.execute(
                select(email_outbox)
                .where(due)
                .order_by(e.next_attempt_at, e.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            .mappings()
            .all()
        )
        until = now + outlet.lease
        claims: list[_Claim] = []
        for r in rows:
            mid = r["message_id"] or message_id(
                r["message_key"], r["organization_id"], r["recipient"], _domain(outlet.default_from)
            )
            conn.execute(
                update(email_outbox)
                .where(e.id == r["id"])
                .values(
                    status="sending",
                    claimed_until=until,
                    attempts=e.attempts + 1,
                    message_id=mid,
                    updated_at=now,
                )
            )
            claims.append(
                _Claim(
                    r["id"],
                    r["organization_id"],
                    EmailKind(r["kind"]),
                    r["recipient"],
                    r["customer_id"],
                    r["document_id"],
                    dict(r["data"] or {}),
                    mid,
                    int(r["attempts"]) + 1,
                    until,
                )
            )
    return claims


def _send_one(db: Database, clock: Clock, outlet: Outlet, claim: _Claim, summary: SendSummary) -> None:
    if (
        claim.kind is EmailKind.PORTAL_LOGIN
        and datetime.fromisoformat(claim.data["expires_at"]) <= clock.now()
    ):
        # A login link that no longer opens anything is not worth sending: the customer asks again.
        _finish(db, clock, claim, status="expired", error="the login link expired before it was sent")
        return
    try:
        with db.read() as conn:
            content = compose(
                conn,
                claim.organization_id,
                claim.kind,
                customer_id=claim.customer_id,
                document_id=claim.document_id,
                data=claim.data,
                locale=None,
                links=outlet.links,
                recipient=claim.recipient,
            )
        attachments: tuple[Attachment, ...] = ()
        if claim.document_id is not None and claim.kind in (
            EmailKind.INVOICE_ISSUED,
            EmailKind.PROFORMA_ISSUED,
            EmailKind.CREDIT_NOTE_ISSUED,
        ):
            attachments = (outlet.pdf(claim.organization_id, claim.document_id),)
        message = build_message(
            content,
            recipient=claim.recipient,
            message_id=claim.message_id,
            default_from=outlet.default_from,
            attachments=attachments,
        )
        raw = to_mime(message, date_header=format_datetime(clock.now()))
    except DomainError as exc:
        _finish(db, clock, claim, status="failed", error=f"cannot compose: {exc}")
        summary.failed += 1
        return
    if clock.now() >= claim.claimed_until - outlet.lease / 4:
        # Composing took most of the lease (a slow PDF): another worker may claim it any moment.
        _finish(db, clock, claim, status="queued", error=None, count=False)
        summary.released += 1
        return
    try:
        outlet.mailer.send(message, raw)
    except PermanentFailure as exc:
        if exc.address:
            _bounce(db, clock, claim, str(exc))
            summary.bounced += 1
        else:
            _finish(db, clock, claim, status="failed", error=str(exc))
            summary.failed += 1
        return
    except TemporaryFailure as exc:
        delay = retry_delay(claim.attempts)
        if delay is None:
            _finish(db, clock, claim, status="failed", error=str(exc))
            summary.failed += 1
        else:
            _finish(db, clock, claim, status="queued", error=str(exc), after=delay)
            summary.retried += 1
        return
    _finish(db, clock, claim, status="sent", error=None)
    summary.sent += 1


def _finish(
    db: Database,
    clock: Clock,
    claim: _Claim,
    *,
    status: str,
    error: str | None,
    after: timedelta | None = None,
    count: bool = True,
) -> None:
    e = email_outbox.c
    with db.write() as conn:
        now = clock.now()
        values: dict[str, Any] = {"status": status, "updated_at": now, "claimed_until": None}
        if status == "sent":
            values["sent_at"] = now
        if error is not None:
            values["last_error"] = error[:1000]
        if after is not None:
            values["next_attempt_at"] = now + after
        if not count:
            values["attempts"] = e.attempts - 1
        if claim.kind is EmailKind.PORTAL_LOGIN and status != "queued":
            values["data"] = _without_secret(claim.data)
        # A sent message is recorded whoever holds the claim now; any other outcome only by its holder.
        owner = e.status == "sending" if status == "sent" else e.claimed_until == claim.claimed_until
        conn.execute(update(email_outbox).where(e.id == claim.id, owner).values(**values))


def _without_secret(data: dict[str, Any]) -> dict[str, Any]:
    """A login email's data once the row is done: the link's URL (its secret) is dropped, so the
    database alone opens nothing (only the link's hash is kept, in `portal_links`)."""
    return {k: v for k, v in data.items() if k != "url"}


def _bounce(db: Database, clock: Clock, claim: _Claim, error: str) -> None:
    """A permanent refusal: this row bounced, the address is suppressed for the organisation, and its
    other queued mail is suppressed with it."""
    e = email_outbox.c
    address = claim.recipient.lower()
    with db.write() as conn:
        now = clock.now()
        conn.execute(
            update(email_outbox)
            .where(e.id == claim.id)
            .values(
                status="bounced",
                claimed_until=None,
                last_error=error[:1000],
                updated_at=now,
                **({"data": _without_secret(claim.data)} if claim.kind is EmailKind.PORTAL_LOGIN else {}),
            )
        )
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(email_suppressions)
            .values(
                organization_id=claim.organization_id,
                address=address,
                reason="bounced",
                detail=error[:1000],
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["organization_id", "address", "reason"])
        )
        conn.execute(
            update(email_outbox)
            .where(
                e.organization_id == claim.organization_id,
                e.recipient == claim.recipient,
                e.status == "queued",
            )
            .values(status="suppressed", updated_at=now)
        )
    log.warning("email to %s bounced: %s", claim.recipient, error)
