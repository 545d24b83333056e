"""The read side of payments: what a document's money looks like to every presenter (the three seed
dialects, the native API, the hosted page), for a whole page of documents in two queries.

Which attempts belong to a document: the attempts made on it, plus the attempt whose capture paid it
when that attempt was made on the proforma it was converted from (paying a proforma turns it into the
final invoice, and the money is the invoice's). Payments recorded outside Fiscus (provider `external`:
a bank transfer marked paid) are money received, so they count in what was captured, but they are not
attempts to charge anything and name no payment method.

Everything shown moves the document's stamp when it changes: the payment services bump
`documents.updated_at` on every attempt, capture and refund they record, and the capture that pays a
final invoice touches that invoice. That is why renderings cached by stamp stay right, and why the
payment method shown is the last attempt's, never the customer's current default, which can change
without touching the document.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, func, or_, select, union

from fiscus.adapters.db import tables as t
from fiscus.domain.payments import AttemptStatus
from fiscus.queries.rows import page_rows
from fiscus.queries.scope import Scope

EXTERNAL: Final = "external"
"""The provider name of payments recorded outside Fiscus (`mark_paid`)."""


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """A declined or failed charge: the error as the provider (or Fiscus, for a call that never reached
    it) stated it."""

    attempt_id: int
    document_id: int
    """The document the attempt charged (a final invoice's failures are its own)."""
    code: str
    message: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DocumentPayments:
    """A document's payment history, summed. The defaults are a document nobody tried to charge."""

    document_id: int
    attempt_count: int = 0
    last_attempt_at: datetime | None = None
    last_attempt_status: AttemptStatus | None = None
    payment_method_id: int | None = None
    """The payment method (payment profile) of the last attempt."""
    network: str | None = None
    """That method's network (`visa`, `mastercard`, ...)."""
    captured_minor: int = 0
    """Σ succeeded captures paying this document (external payments included)."""
    last_captured_at: datetime | None = None
    refunded_minor: int = 0
    """Σ succeeded refunds of money that paid this document."""
    failures: tuple[FailedAttempt, ...] = ()
    """Failed attempts, oldest first."""
    next_attempt_at: datetime | None = None
    """When the worker charges it next (the first automatic charge or a retry); None: nothing planned."""

    @property
    def kept_minor(self) -> int:
        """What the seller keeps: captured less refunded."""
        return self.captured_minor - self.refunded_minor


def document_payments(
    conn: Connection, scope: Scope, document_ids: Iterable[int]
) -> dict[int, DocumentPayments]:
    """The payments of the given documents the scope can see, keyed by id (others are left out), in two
    queries whatever the number of documents: one for the money, one for the attempts."""
    ids = sorted(set(document_ids))
    if not ids:
        return {}
    d, c, r = t.documents.c, t.payment_captures.c, t.payment_refunds.c
    captured = (
        select(
            c.document_id.label("document_id"),
            func.sum(c.amount_minor).label("amount"),
            func.max(func.coalesce(c.settled_at, c.created_at)).label("last_at"),
        )
        .where(c.document_id.in_(ids), c.status == "succeeded")
        .group_by(c.document_id)
        .subquery()
    )
    refunded = (
        select(r.document_id.label("document_id"), func.sum(r.amount_minor).label("amount"))
        .where(r.document_id.in_(ids), r.status == "succeeded")
        .group_by(r.document_id)
        .subquery()
    )
    money = scope.apply(
        select(
            d.id,
            d.next_payment_attempt_at,
            captured.c.amount,
            captured.c.last_at,
            refunded.c.amount,
        )
        .select_from(t.documents)
        .outerjoin(captured, captured.c.document_id == d.id)
        .outerjoin(refunded, refunded.c.document_id == d.id),
        t.documents,
    ).where(d.id.in_(ids))
    base: dict[int, dict[str, Any]] = {
        row[0]: {
            "next_attempt_at": row[1],
            "captured_minor": int(row[2] or 0),
            "last_captured_at": row[3],
            "refunded_minor": int(row[4] or 0),
        }
        for row in conn.execute(money)
    }
    if not base:
        return {}
    visible = sorted(base)
    a, pm = t.payment_attempts.c, t.payment_methods.c
    owners = union(
        select(a.id.label("attempt_id"), a.document_id.label("owner_id")).where(a.document_id.in_(visible)),
        select(c.attempt_id.label("attempt_id"), c.document_id.label("owner_id")).where(
            c.document_id.in_(visible), c.status == "succeeded"
        ),
    ).subquery()
    attempts = (
        select(
            owners.c.owner_id,
            a.id,
            a.document_id,
            a.status,
            a.error_code,
            a.error_message,
            a.created_at,
            a.payment_method_id,
            pm.network,
        )
        .select_from(owners)
        .join(t.payment_attempts, a.id == owners.c.attempt_id)
        .outerjoin(t.payment_methods, pm.id == a.payment_method_id)
        .where(a.provider != EXTERNAL)
        .order_by(owners.c.owner_id, a.id)
    )
    history: dict[int, list[Any]] = defaultdict(list)
    for row in conn.execute(attempts):
        history[row.owner_id].append(row)
    out: dict[int, DocumentPayments] = {}
    for doc_id in visible:
        rows = history.get(doc_id, [])
        last = rows[-1] if rows else None
        out[doc_id] = DocumentPayments(
            document_id=doc_id,
            attempt_count=len(rows),
            last_attempt_at=None if last is None else last.created_at,
            last_attempt_status=None if last is None else AttemptStatus(last.status),
            payment_method_id=None if last is None else last.payment_method_id,
            network=None if last is None else last.network,
            failures=tuple(
                FailedAttempt(
                    attempt_id=row.id,
                    document_id=row.document_id,
                    code=row.error_code or "declined",
                    message=row.error_message or "",
                    created_at=row.created_at,
                )
                for row in rows
                if row.status == AttemptStatus.FAILED.value
            ),
            **base[doc_id],
        )
    return out


# --- the native API's payment records ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptMoney:
    """What one attempt moved, as `/payments` shows it. The defaults are an attempt that moved nothing."""

    card: tuple[str | None, str | None] | None = None
    """The charged method's (brand, last4); None for a payment recorded outside Fiscus."""
    captured_minor: int = 0
    paid_document_id: int | None = None
    """The document its captures paid (the invoice a paid proforma became)."""
    captured_at: datetime | None = None
    refunded_minor: int = 0


def attempt_money(conn: Connection, attempts: list[dict[str, Any]]) -> dict[int, AttemptMoney]:
    """Cards, captures and refunds of a page of attempts, keyed by attempt id, in three queries."""
    ids = [r["id"] for r in attempts]
    method_ids = {r["payment_method_id"] for r in attempts if r["payment_method_id"] is not None}
    cards: dict[int, tuple[str | None, str | None]] = {}
    captured: dict[int, tuple[int, int, Any]] = {}
    refunded: dict[int, int] = {}
    if method_ids:
        pm = t.payment_methods.c
        cards = {
            i: (b, l4)
            for i, b, l4 in conn.execute(select(pm.id, pm.brand, pm.last4).where(pm.id.in_(method_ids)))
        }
    if ids:
        pc, pr = t.payment_captures.c, t.payment_refunds.c
        captured = {
            a: (int(total), int(doc), at)
            for a, total, doc, at in conn.execute(
                select(
                    pc.attempt_id,
                    func.sum(pc.amount_minor),
                    func.min(pc.document_id),
                    func.max(pc.settled_at),
                )
                .where(pc.attempt_id.in_(ids), pc.status == "succeeded")
                .group_by(pc.attempt_id)
            )
        }
        refunded = {
            a: int(total)
            for a, total in conn.execute(
                select(pr.attempt_id, func.sum(pr.amount_minor))
                .where(pr.attempt_id.in_(ids), pr.status == "succeeded")
                .group_by(pr.attempt_id)
            )
        }
    out: dict[int, AttemptMoney] = {}
    for r in attempts:
        method_id = r["payment_method_id"]
        cap = captured.get(r["id"])
        out[r["id"]] = AttemptMoney(
            card=cards.get(method_id) if method_id is not None else None,
            captured_minor=cap[0] if cap else 0,
            paid_document_id=cap[1] if cap else None,
            captured_at=cap[2] if cap else None,
            refunded_minor=refunded.get(r["id"], 0),
        )
    return out


def document_attempts(conn: Connection, scope: Scope, document_id: int) -> list[dict[str, Any]]:
    """Every attempt to collect a document, oldest first: those made on it and, for an invoice a paid
    proforma became, the proforma's attempt whose capture paid it."""
    pa, pc = t.payment_attempts.c, t.payment_captures.c
    paid_here = select(pc.attempt_id).where(pc.document_id == document_id)
    query = scope.apply(select(t.payment_attempts), t.payment_attempts)
    query = query.where(or_(pa.document_id == document_id, pa.id.in_(paid_here))).order_by(pa.id)
    return [dict(r) for r in conn.execute(query).mappings()]


def attempts_page(
    conn: Connection,
    scope: Scope,
    *,
    document_id: int | None,
    customer_id: int | None,
    status: str | None,
    limit: int,
    starting_after: int | None,
    ending_before: int | None,
) -> tuple[list[dict[str, Any]], bool]:
    """A page of attempts, newest first, filtered by the criteria given (None: any)."""
    pa = t.payment_attempts.c
    where = [
        clause
        for clause in (
            pa.document_id == document_id if document_id is not None else None,
            pa.customer_id == customer_id if customer_id is not None else None,
            pa.status == status if status is not None else None,
        )
        if clause is not None
    ]
    return page_rows(
        conn,
        scope,
        t.payment_attempts,
        limit=limit,
        starting_after=starting_after,
        ending_before=ending_before,
        where=where,
    )


def payment_methods_page(
    conn: Connection,
    scope: Scope,
    customer_id: int,
    *,
    status: str | None,
    limit: int,
    starting_after: int | None,
    ending_before: int | None,
) -> tuple[list[dict[str, Any]], bool]:
    """A page of a customer's payment methods, newest first, active or detached or both."""
    pm = t.payment_methods.c
    where = [pm.customer_id == customer_id]
    if status is not None:
        where.append(pm.status == status)
    return page_rows(
        conn,
        scope,
        t.payment_methods,
        limit=limit,
        starting_after=starting_after,
        ending_before=ending_before,
        where=where,
    )


def default_payment_methods(conn: Connection, customer_ids: Iterable[int]) -> dict[int, int | None]:
    """Each customer's default payment method id (None: none set)."""
    ids = set(customer_ids)
    if not ids:
        return {}
    cu = t.customers.c
    return {
        row[0]: row[1]
        for row in conn.execute(select(cu.id, cu.default_payment_method_id).where(cu.id.in_(ids)))
    }


def refunds_by_id(conn: Connection, refund_ids: Iterable[int]) -> list[dict[str, Any]]:
    """The given refunds, oldest first (a refund request's records)."""
    pr = t.payment_refunds.c
    query = select(t.payment_refunds).where(pr.id.in_(list(refund_ids))).order_by(pr.id)
    return [dict(r) for r in conn.execute(query).mappings()]


def document_refunds(conn: Connection, org_id: int, document_id: int) -> list[dict[str, Any]]:
    """Refunds of money paid for a document, oldest first."""
    pr = t.payment_refunds.c
    query = (
        select(t.payment_refunds)
        .where(pr.organization_id == org_id, pr.document_id == document_id)
        .order_by(pr.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def document_currencies(conn: Connection, document_ids: Iterable[int]) -> dict[int, str]:
    """The currency code of each given document."""
    ids = set(document_ids)
    if not ids:
        return {}
    d = t.documents.c
    return {row[0]: row[1] for row in conn.execute(select(d.id, d.currency).where(d.id.in_(ids)))}


def payment_settings(conn: Connection, org_id: int) -> dict[str, Any]:
    """How an organisation collects: automatic or not, capture mode, retry schedule, final action."""
    o = t.organizations.c
    query = select(o.auto_collect, o.capture_mode, o.retry_days, o.retry_final_action).where(o.id == org_id)
    return dict(conn.execute(query).mappings().one())
