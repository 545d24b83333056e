"""Queueing customers' emails in the transaction of the change that causes them.

`append_outbox` hands every outbox event it writes to `queue_for_events`; the events that mean an email
(a document issued, a payment succeeded or failed) become one `email_outbox` row per (message key,
recipient). The UNIQUE key makes queueing idempotent: the same cause never queues a message twice. The
organisation's switches, its dunning policy's email for that step and suppressed addresses are applied
here, so the worker only ever sees messages that should go. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Connection, select
from sqlalchemy.dialects import sqlite

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.arrays import any_of
from fiscus.adapters.db.tables_email import email_outbox, email_suppressions, organization_email_settings
from fiscus.domain.email import ALWAYS_SENT, TRANSACTIONAL, DunningPolicy, EmailKind, message_key
from fiscus.domain.payments import RetryPolicy

ISSUED = {
    "invoice.issued": EmailKind.INVOICE_ISSUED,
    "proforma.issued": EmailKind.PROFORMA_ISSUED,
    "credit_note.issued": EmailKind.CREDIT_NOTE_ISSUED,
}
PAYMENT_FAILED = ("invoice.payment_failed", "proforma.payment_failed")


@dataclass(frozen=True, slots=True)
class Wanted:
    """One message a change calls for, before the organisation's switches and suppressions."""

    organization_id: int
    kind: EmailKind
    key: str
    customer_id: int
    document_id: int | None
    data: dict[str, Any] = field(default_factory=dict)


def queue_for_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Queue the emails that outbox events call for; returns how many rows were written."""
    relevant = [
        r
        for r in rows
        if r["type"] in ISSUED or r["type"] in PAYMENT_FAILED or r["type"] == "payment.succeeded"
    ]
    if not relevant:
        return 0
    doc_ids = {
        int(r["payload"]["document_id"]) if r["entity_type"] == "payment_attempt" else int(r["entity_id"])
        for r in relevant
        if not _names_customer(r)
    }
    d = t.documents.c
    docs = (
        {
            int(x.id): x
            for x in conn.execute(
                select(d.id, d.organization_id, d.customer_id, d.type).where(any_of(conn, d.id, doc_ids))
            ).all()
        }
        if doc_ids
        else {}
    )
    wanted: list[Wanted] = []
    for r in relevant:
        p = r["payload"]
        if r["type"] in ISSUED:
            kind = ISSUED[r["type"]]
            if _names_customer(r):
                org_id, customer_id, doc_id = (
                    int(r["organization_id"]),
                    int(p["customer_id"]),
                    int(r["entity_id"]),
                )
            else:
                doc = docs[int(r["entity_id"])]
                org_id, customer_id, doc_id = doc.organization_id, doc.customer_id, doc.id
            wanted.append(Wanted(org_id, kind, message_key(kind, "document", doc_id), customer_id, doc_id))
        elif r["type"] == "payment.succeeded":
            doc = docs[int(p["document_id"])]
            kind = EmailKind.PAYMENT_RECEIPT
            key = message_key(kind, "payment_attempt", int(r["entity_id"]), str(p["amount"]))
            data = {"attempt_id": int(r["entity_id"]), "amount": str(p["amount"]), "currency": p["currency"]}
            wanted.append(Wanted(doc.organization_id, kind, key, doc.customer_id, doc.id, data))
        else:
            doc = docs[int(r["entity_id"])]
            data = {
                "attempt_id": p["attempt_id"],
                "error_code": p["error_code"],
                "attempt_count": p["attempt_count"],
                "next_payment_attempt_at": p["next_payment_attempt_at"],
            }
            # The kind is the dunning step's; decided in `_queue` where the policy is read.
            key = message_key(EmailKind.PAYMENT_FAILED, "payment_attempt", int(p["attempt_id"]))
            wanted.append(
                Wanted(doc.organization_id, EmailKind.PAYMENT_FAILED, key, doc.customer_id, doc.id, data)
            )
    return queue(conn, relevant[0]["created_at"], wanted)


def _names_customer(row: dict[str, Any]) -> bool:
    """A document's event whose payload names its customer (`document_event_payload`): the document
    need not be read back (a query per billing batch for rows it had just written)."""
    return row["entity_type"] == "document" and row["payload"].get("customer_id") is not None


def queue_login_link(
    conn: Connection,
    now: datetime,
    *,
    organization_id: int,
    customer_id: int,
    link_id: int,
    url: str,
    expires_at: datetime,
) -> int:
    """Queue a portal login link to the customer's email, in the transaction that made the link. One
    message per link (its key names the link); the URL waits in the row's data until it is sent, the
    only place the link's secret exists (`delivery.py` drops it once the row is done)."""
    kind = EmailKind.PORTAL_LOGIN
    data = {"url": url, "expires_at": expires_at.isoformat()}
    key = message_key(kind, "portal_link", link_id)
    return queue(conn, now, [Wanted(organization_id, kind, key, customer_id, None, data)])


def queue_final_action(
    conn: Connection, now: datetime, doc: dict[str, Any], action: str, attempt_id: int
) -> int:
    """Queue the email that says what the dunning policy's final action did (the invoice written off,
    the subscription cancelled), in the transaction that did it; one per document and action."""
    kind = EmailKind.FINAL_ACTION
    key = message_key(kind, "document", int(doc["id"]), action)
    data = {"action": action, "attempt_id": attempt_id}
    wanted = Wanted(int(doc["organization_id"]), kind, key, int(doc["customer_id"]), int(doc["id"]), data)
    return queue(conn, now, [wanted])


def queue_external_receipt(
    conn: Connection, now: datetime, doc: dict[str, Any], attempt_id: int, amount: str, currency: str
) -> int:
    """Queue the receipt for a payment recorded by hand (`mark paid`: bank transfer, cash), which makes
    no `payment.succeeded` event; keyed like a card payment's receipt."""
    kind = EmailKind.PAYMENT_RECEIPT
    key = message_key(kind, "payment_attempt", attempt_id, amount)
    data = {"attempt_id": attempt_id, "amount": amount, "currency": currency}
    wanted = Wanted(int(doc["organization_id"]), kind, key, int(doc["customer_id"]), int(doc["id"]), data)
    return queue(conn, now, [wanted])


def email_settings(conn: Connection, org_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Each organisation's email settings (a sandbox without its own follows its live organisation's),
    with its retry schedule; an organisation without a row gets the defaults."""
    o = t.organizations.c
    orgs = {
        int(x.id): x
        for x in conn.execute(
            select(o.id, o.sandbox_of, o.retry_days, o.retry_final_action).where(o.id.in_(set(org_ids)))
        ).all()
    }
    owners = {oid: int(x.sandbox_of or oid) for oid, x in orgs.items()}
    s = organization_email_settings.c
    stored = {
        int(x["organization_id"]): dict(x)
        for x in conn.execute(
            select(organization_email_settings).where(
                s.organization_id.in_(set(owners) | set(owners.values()))
            )
        ).mappings()
    }
    out: dict[int, dict[str, Any]] = {}
    for oid, x in orgs.items():
        row = dict(stored.get(oid) or stored.get(owners[oid]) or default_settings(oid))
        row["organization_id"] = oid
        row["retry"] = RetryPolicy.parse(list(x.retry_days), x.retry_final_action)
        out[oid] = row
    return out


def default_settings(org_id: int) -> dict[str, Any]:
    return {
        "organization_id": org_id,
        "from_address": None,
        "from_name": None,
        "reply_to": None,
        "brand_color": None,
        "disabled": [],
        "dunning_emails": None,
        "trial_notice_days": 3,
        "renewal_notice_days": 14,
        "updated_at": None,
    }


def dunning_policy(settings: dict[str, Any]) -> DunningPolicy:
    """The policy of stored settings; stored step emails that no longer fit the schedule (the retry
    days changed through the payment settings) fall back to the default steps."""
    retry: RetryPolicy = settings["retry"]
    steps = settings["dunning_emails"]
    if steps is not None and len(steps) == len(retry.days) + 1:
        return DunningPolicy.parse(list(retry.days), retry.final_action.value, steps)
    return DunningPolicy(retry, DunningPolicy.default_steps(len(retry.days)))


def queue(conn: Connection, now: datetime, wanted: Sequence[Wanted]) -> int:
    """Write the outbox rows for `wanted` messages that the organisation has not switched off: queued, or
    `suppressed` for an address that bounced (or unsubscribed, for a reminder). Rows already there are
    left as they are (UNIQUE organisation, key, recipient); returns the rows written."""
    if not wanted:
        return 0
    settings = email_settings(conn, {w.organization_id for w in wanted})
    c = t.customers.c
    emails = {
        int(x.id): str(x.email).strip()
        for x in conn.execute(
            select(c.id, c.email).where(any_of(conn, c.id, {w.customer_id for w in wanted}))
        ).all()
    }
    sp = email_suppressions.c
    suppressed: dict[tuple[int, str], set[str]] = {}
    for x in conn.execute(
        select(sp.organization_id, sp.address, sp.reason).where(
            any_of(conn, sp.organization_id, {w.organization_id for w in wanted}),
            any_of(conn, sp.address, {e.lower() for e in emails.values()}),
        )
    ).all():
        suppressed.setdefault((int(x.organization_id), str(x.address)), set()).add(str(x.reason))
    rows: list[dict[str, Any]] = []
    for w in wanted:
        cfg = settings[w.organization_id]
        kind = w.kind
        if kind is EmailKind.PAYMENT_FAILED:
            step = dunning_policy(cfg).email_after(
                int(w.data["attempt_count"]), w.data["next_payment_attempt_at"] is not None
            )
            if step is None:
                continue
            kind = step
        recipient = emails.get(w.customer_id, "")
        if (kind.value in cfg["disabled"] and kind not in ALWAYS_SENT) or "@" not in recipient:
            continue
        reasons = suppressed.get((w.organization_id, recipient.lower()), set())
        blocked = "bounced" in reasons or (kind not in TRANSACTIONAL and "unsubscribed" in reasons)
        rows.append(
            {
                "organization_id": w.organization_id,
                "message_key": w.key,
                "recipient": recipient,
                "kind": kind.value,
                "customer_id": w.customer_id,
                "document_id": w.document_id,
                "data": {k: v for k, v in w.data.items() if k != "url"} if blocked else w.data,
                "status": "suppressed" if blocked else "queued",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
        )
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        return _insert_unnest(conn, rows)
    statement = sqlite.insert(email_outbox).on_conflict_do_nothing(
        index_elements=["organization_id", "message_key", "recipient"]
    )
    return len(conn.execute(statement.returning(email_outbox.c.id), rows).all())


_UNNEST_TYPES = {
    "organization_id": "bigint",
    "message_key": "text",
    "recipient": "text",
    "kind": "text",
    "customer_id": "bigint",
    "document_id": "bigint",
    "data": "jsonb",
    "status": "text",
    "attempts": "integer",
    "next_attempt_at": "timestamptz",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
}
_UNNEST_INSERT = (
    f"INSERT INTO email_outbox ({', '.join(_UNNEST_TYPES)}) SELECT * FROM unnest("
    + ", ".join(f"%b::{kind}[]" for kind in _UNNEST_TYPES.values())  # binary: ~10x cheaper to dump
    + ") ON CONFLICT (organization_id, message_key, recipient) DO NOTHING"
)


def _insert_unnest(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """PostgreSQL: one short statement of column arrays, whatever the batch's size. A multi-row VALUES
    of a 250-document billing batch (3,000 parameters, ~100 kB of SQL) was re-parsed by the driver on
    every batch, the largest client cost of the billing run's email queueing (issue 18)."""
    from psycopg.types.json import Jsonb  # the driver, only on PostgreSQL

    arrays = [
        [Jsonb(r[c], msgspec.json.encode) if c == "data" else r[c] for r in rows] for c in _UNNEST_TYPES
    ]
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        cursor.execute(_UNNEST_INSERT, arrays)
        return int(cursor.rowcount)
