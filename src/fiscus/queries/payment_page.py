"""The reads of the hosted payment page (`fiscus.web.pay`): the attempts on a document, the capture
that paid it (with the card charged), and the documents it was converted from or into. Scoped by the
document, which the page has opened through its signed link."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, or_, select

from fiscus.adapters.db import tables as t


def document_organization(conn: Connection, document_id: int) -> int | None:
    """The organisation a document belongs to, or None for an unknown id."""
    d = t.documents.c
    org_id: int | None = conn.execute(
        select(d.organization_id).where(d.id == document_id)
    ).scalar_one_or_none()
    return org_id


def latest_attempt(conn: Connection, document_id: int) -> dict[str, Any] | None:
    """The newest attempt on this document: while it is pending or unknown the page offers no form."""
    a = t.payment_attempts.c
    row = (
        conn.execute(
            select(t.payment_attempts).where(a.document_id == document_id).order_by(a.id.desc()).limit(1)
        )
        .mappings()
        .one_or_none()
    )
    return None if row is None else dict(row)


def attempt_of(conn: Connection, document_id: int, attempt_id: object) -> dict[str, Any] | None:
    """An attempt named by a result, only if it is one of this document's."""
    if not isinstance(attempt_id, int):
        return None
    a = t.payment_attempts.c
    row = (
        conn.execute(select(t.payment_attempts).where(a.id == attempt_id, a.document_id == document_id))
        .mappings()
        .one_or_none()
    )
    return None if row is None else dict(row)


def paying_capture(
    conn: Connection, document_id: int, attempt_id: int | None = None
) -> dict[str, Any] | None:
    """The latest succeeded capture paying this document, or paid by an attempt on it (a proforma's
    money pays the invoice it became), with the card charged and the paid document's number."""
    c, a, pm, d = t.payment_captures.c, t.payment_attempts.c, t.payment_methods.c, t.documents.c
    query = (
        select(
            c.amount_minor,
            c.settled_at,
            c.created_at,
            a.id.label("attempt_id"),
            a.currency,
            pm.brand,
            pm.last4,
            d.number,
        )
        .select_from(
            t.payment_captures.join(t.payment_attempts, a.id == c.attempt_id)
            .join(t.documents, d.id == c.document_id)
            .outerjoin(t.payment_methods, pm.id == a.payment_method_id)
        )
        .where(c.status == "succeeded", or_(c.document_id == document_id, a.document_id == document_id))
        .order_by(c.id.desc())
        .limit(1)
    )
    if attempt_id is not None:
        query = query.where(a.id == attempt_id)
    row = conn.execute(query).mappings().one_or_none()
    return None if row is None else dict(row)


def number_and_status(
    conn: Connection, org_id: int, document_id: int | None
) -> tuple[str | None, str | None]:
    """Number and status of a related document of the same organisation."""
    if document_id is None:
        return None, None
    d = t.documents.c
    row = conn.execute(
        select(d.number, d.status).where(d.id == document_id, d.organization_id == org_id)
    ).one_or_none()
    return (None, None) if row is None else (row.number, row.status)
