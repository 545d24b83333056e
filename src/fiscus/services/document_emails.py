"""Resending a document's email on an operator's request, through the email outbox like every other
message. Each explicit resend is its own message (`invoice_issued:document:42:resend:<request>`): the
outbox's UNIQUE (organisation, key, recipient) still makes the same request idempotent (a double-click or
a replayed form queues once), while a second, deliberate resend gets a new request key."""

from __future__ import annotations

import re
from typing import Final

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import append_audit, audit_row
from fiscus.adapters.db.email_queue import Wanted, queue
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_email import email_outbox
from fiscus.domain.clock import Clock
from fiscus.domain.documents import DocumentStatus
from fiscus.domain.email import EmailKind, message_key
from fiscus.domain.errors import InvalidFieldError, InvalidStateError
from fiscus.services.common import get_scoped

RESEND_KEY: Final = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
KIND_OF_TYPE: Final = {
    "invoice": EmailKind.INVOICE_ISSUED,
    "proforma": EmailKind.PROFORMA_ISSUED,
    "credit_note": EmailKind.CREDIT_NOTE_ISSUED,
}


def resend_document_email(
    db: Database, clock: Clock, org_id: int, document_id: int, *, request_key: str, actor: str = "cli"
) -> str:
    """Queue the document's email again to the customer's current address; returns the outbox row's
    status (`queued`, `suppressed` for a bounced address, or `sent`... for a request already made).
    Refused for a draft (nothing was ever sent) and when the customer has no e-mail address or the
    organisation switched this email off."""
    if not RESEND_KEY.match(request_key):
        raise InvalidFieldError("request_key", "must be 16 to 64 letters, digits, '-' or '_'")
    now = clock.now()
    with db.write() as conn:
        doc = get_scoped(conn, t.documents, org_id, document_id, lock=True)
        if doc["status"] == DocumentStatus.DRAFT.value:
            raise InvalidStateError("a draft has not been sent; issue it first", status=doc["status"])
        kind = KIND_OF_TYPE[doc["type"]]
        key = message_key(kind, "document", document_id, f"resend:{request_key}")
        e = email_outbox.c
        done = conn.execute(
            select(e.status).where(e.organization_id == org_id, e.message_key == key)
        ).scalar_one_or_none()
        if done is not None:
            return str(done)
        written = queue(conn, now, [Wanted(org_id, kind, key, doc["customer_id"], document_id)])
        if not written:
            raise InvalidStateError(
                "not queued: the customer has no e-mail address or this email is switched off",
                status=doc["status"],
            )
        status = str(
            conn.execute(
                select(e.status).where(e.organization_id == org_id, e.message_key == key)
            ).scalar_one()
        )
        append_audit(
            conn,
            [
                audit_row(
                    org_id,
                    "document",
                    document_id,
                    "email_resent",
                    actor,
                    now,
                    None,
                    {"message_key": key, "status": status},
                )
            ],
        )
        return status
