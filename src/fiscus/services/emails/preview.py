"""Previewing an email with real data, for the console: what `kind` would say to a customer now, built
by the same composer the worker sends with. Reads only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, select

from fiscus.adapters.db import tables as t
from fiscus.domain.email import DOCUMENT_KINDS, FINAL_ACTION_EMAILS, EmailKind
from fiscus.domain.errors import InvalidFieldError, NotFoundError
from fiscus.services.emails.compose import Links, compose

PREVIEW_LINKS = Links("https://billing.example", b"preview")
"""Links in a preview lead nowhere real unless the caller passes the instance's own."""


def preview_email(
    conn: Connection,
    organization_id: int,
    kind: str,
    object_id: int,
    locale: str | None = None,
    *,
    links: Links = PREVIEW_LINKS,
) -> tuple[str, str, str]:
    """(subject, text, html) of `kind` about a document (`object_id` is a document id for the document
    and payment kinds) or a customer (card expiring, trial ending, renewal, portal login with a sample
    link). Another organisation's id is NotFoundError; an unknown kind an InvalidFieldError."""
    try:
        what = EmailKind(kind)
    except ValueError:
        raise InvalidFieldError("kind", f"must be one of {', '.join(k.value for k in EmailKind)}") from None
    if what in DOCUMENT_KINDS:
        d = t.documents.c
        doc = conn.execute(
            select(d.customer_id).where(d.id == object_id, d.organization_id == organization_id)
        ).first()
        if doc is None:
            raise NotFoundError("document", object_id, field="document_id")
        customer_id, document_id = int(doc.customer_id), object_id
        data = _payment_data(conn, organization_id, what, object_id)
    else:
        customer_id, document_id = object_id, None
        data = _customer_data(conn, organization_id, what, object_id, links)
    content = compose(
        conn,
        organization_id,
        what,
        customer_id=customer_id,
        document_id=document_id,
        data=data,
        locale=locale,
        links=links,
    )
    return content.subject, content.text, content.html


def _payment_data(conn: Connection, org_id: int, kind: EmailKind, document_id: int) -> dict[str, Any]:
    """The latest attempt's figures, as the event would have carried them; for the final-action email
    the organisation's own final action (a policy that leaves the invoice open sends none: then the
    first one that does is shown)."""
    if kind is EmailKind.FINAL_ACTION:
        o = t.organizations.c
        action = conn.execute(select(o.retry_final_action).where(o.id == org_id)).scalar_one()
        return {"action": action if action in FINAL_ACTION_EMAILS else FINAL_ACTION_EMAILS[0]}
    if kind not in (EmailKind.PAYMENT_FAILED, EmailKind.FINAL_NOTICE, EmailKind.PAYMENT_RECEIPT):
        return {}
    pa = t.payment_attempts.c
    status = "succeeded" if kind is EmailKind.PAYMENT_RECEIPT else "failed"
    row = conn.execute(
        select(pa.id, pa.error_code, pa.amount_minor, pa.currency)
        .where(pa.organization_id == org_id, pa.document_id == document_id, pa.status == status)
        .order_by(pa.id.desc())
        .limit(1)
    ).first()
    d = t.documents.c
    next_at = conn.execute(select(d.next_payment_attempt_at).where(d.id == document_id)).scalar_one()
    return {
        "attempt_id": row.id if row else None,
        "error_code": (row.error_code if row else None) or "insufficient_funds",
        "next_payment_attempt_at": next_at.isoformat() if next_at else None,
    }


def _customer_data(
    conn: Connection, org_id: int, kind: EmailKind, customer_id: int, links: Links
) -> dict[str, Any]:
    c = t.customers.c
    if conn.execute(select(c.id).where(c.id == customer_id, c.organization_id == org_id)).first() is None:
        raise NotFoundError("customer", customer_id, field="customer_id")
    if kind is EmailKind.PORTAL_LOGIN:
        # A sample link (a real one is a secret, made only when the customer asks): the organisation's
        # portal path, valid 15 minutes from the customer's creation (the preview has no clock).
        row = conn.execute(
            select(t.organizations.c.slug, c.created_at)
            .join(t.organizations, t.organizations.c.id == c.organization_id)
            .where(c.id == customer_id)
        ).one()
        return {
            "url": f"{links.base_url.rstrip('/')}/portal/{row.slug}/session/preview-only",
            "expires_at": (row.created_at + timedelta(minutes=15)).isoformat(),
        }
    if kind is EmailKind.CARD_EXPIRING:
        pm = t.payment_methods.c
        card = conn.execute(
            select(pm.brand, pm.last4, pm.exp_month, pm.exp_year)
            .where(pm.customer_id == customer_id, pm.organization_id == org_id, pm.type == "card")
            .order_by(pm.id.desc())
            .limit(1)
        ).first()
        if card is None:
            raise NotFoundError("card of customer", customer_id, field="customer_id")
        return {
            "brand": card.brand,
            "last4": card.last4,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
        }
    s = t.subscriptions.c
    sub = conn.execute(
        select(s.id, s.trial_end, s.next_period_start)
        .where(s.customer_id == customer_id, s.organization_id == org_id)
        .order_by(s.id.desc())
        .limit(1)
    ).first()
    if sub is None:
        raise NotFoundError("subscription of customer", customer_id, field="customer_id")
    at = sub.trial_end if kind is EmailKind.TRIAL_ENDING and sub.trial_end else sub.next_period_start
    return {"subscription_id": sub.id, "at": at.isoformat()}
