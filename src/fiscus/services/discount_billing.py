"""The discount step of the billing run (issue 17): the one place documents about to be written get
the discounts in force on their customer or subscription.

Called by `billing_run._persist_split` (subscription periods and orders of a run, and `billing: now`)
and by `orders.bill_order_now`, inside their transaction, before the documents are persisted: each
document is recomputed with its discounts (`compute_document(..., discounts)`: before tax, largest
remainder over lines and rates) and each discount counts the documents it reduced, ending when a
once/repeating coupon has had its periods. `persist_documents` stores the allowances per line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, exists, select, update

from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db.documents import NewDocument, append_audit, audit_row
from fiscus.adapters.db.engine import Database
from fiscus.domain.discounts import SettledDiscount, Stacking
from fiscus.domain.documents import compute_document
from fiscus.services.discounts import (
    active_discounts,
    expire_coupons,
    for_document,
    mark_applied,
    stacking_of,
)
from fiscus.services.wallets import credit_inputs, expire_credits, promotional_inputs, record_consumption


@dataclass(slots=True)
class Consumption:
    """Promotional credit the documents took, debited once they have ids (`record`)."""

    grants: dict[int, Any] = field(default_factory=dict)
    used: list[tuple[NewDocument, SettledDiscount]] = field(default_factory=list)

    def record(self, conn: Connection, persisted: Sequence[tuple[NewDocument, int]], now: datetime) -> None:
        if not self.used:
            return
        ids = {id(doc): doc_id for doc, doc_id in persisted}
        record_consumption(conn, self.grants, [(ids[id(doc)], s) for doc, s in self.used], now)


def apply_discounts(
    conn: Connection, docs: Sequence[NewDocument], now: datetime, *, record: bool = True
) -> Consumption:
    """Put the active discounts and then the customer's promotional credit on `docs` (in their order,
    so a `once` discount lands on the first period billed); with `record`, count the discounts as
    applied (a preview passes False and writes nothing). The credit is debited by `Consumption.record`
    after the documents are written, in the same transaction."""
    out = Consumption()
    if not docs:
        return out
    org_ids = {d.org.id for d in docs}
    customers = {d.customer.id for d in docs}
    if record:
        expire_coupons(conn, org_ids, now)
    active = active_discounts(conn, customers) if _any_active(conn, org_ids) else {}
    credits = promotional_inputs(conn, customers, now, write=record) if _any_credit(conn, org_ids) else {}
    if not active and not credits:
        return out
    left: dict[int, int | None] = {}
    credit_left = {r.id: r.remaining_minor for rows in credits.values() for r in rows}
    out.grants = {r.id: r for rows in credits.values() for r in rows}
    stacking: dict[int, Stacking] = {}
    applied: list[int] = []
    for doc in docs:
        mine = active.get(doc.customer.id, [])
        c = doc.computed
        grants = credits.get((doc.customer.id, c.currency.code), [])
        if (not mine and not grants) or c.total_minor < 0:  # a net credit goes its own way
            continue
        for a in mine:
            if a.discount_id not in left:
                periods = a.input.coupon.periods
                left[a.discount_id] = None if periods is None else max(periods - a.periods_applied, 0)
        if doc.org.id not in stacking:
            stacking[doc.org.id] = stacking_of(conn, doc.org.id)
        usable = [a for a in mine if left[a.discount_id] != 0]
        chosen = for_document(usable, doc.subscription_id, stacking[doc.org.id]) + credit_inputs(
            grants, credit_left
        )
        if not chosen:
            continue
        doc.computed = compute_document(
            c.currency, [line.source for line in c.lines], doc.org.rounding, chosen
        )
        for s in doc.computed.discounts:
            if s.grant_id is not None:
                credit_left[s.grant_id] -= s.amount_minor
                out.used.append((doc, s))
                continue
            assert s.discount_id is not None
            remaining = left[s.discount_id]
            if remaining is not None:
                left[s.discount_id] = remaining - 1
            applied.append(s.discount_id)
    if record:
        mark_applied(conn, applied, now)
    return out


def _any_credit(conn: Connection, org_ids: set[int]) -> bool:
    g = td.wallet_grants.c
    query = select(exists().where(g.organization_id.in_(sorted(org_ids)), g.status == "active"))
    return bool(conn.execute(query).scalar())


def _any_active(conn: Connection, org_ids: set[int]) -> bool:
    """A cheap check, so a batch of an organisation without discounts pays one indexed lookup."""
    dc = td.discounts.c
    query = select(exists().where(dc.organization_id.in_(sorted(org_ids)), dc.status == "active"))
    return bool(conn.execute(query).scalar())


def stored_discounts(conn: Connection, document_id: int, line_count: int) -> list[SettledDiscount]:
    """A stored document's discounts as settled (a proforma's, reused as they are by its invoice)."""
    da = td.document_allowances.c
    grouped: dict[tuple[int | None, int | None, int | None, str], list[int]] = {}
    for r in conn.execute(
        select(da.discount_id, da.coupon_id, da.wallet_grant_id, da.reason, da.line_position, da.amount_minor)
        .where(da.document_id == document_id)
        .order_by(da.id)
    ):
        key = (r.discount_id, r.coupon_id, r.wallet_grant_id, r.reason)
        parts = grouped.setdefault(key, [0] * line_count)
        parts[r.line_position - 1] += r.amount_minor
    return [
        SettledDiscount(reason, sum(parts), parts, discount_id, coupon_id, grant_id)
        for (discount_id, coupon_id, grant_id, reason), parts in grouped.items()
    ]


def return_discount_periods(conn: Connection, doc: dict[str, Any], actor: str, now: datetime) -> list[int]:
    """A discarded draft gives back the period it counted on each discount it carried (`mark_applied`):
    a once or repeating discount it had ended is in force again, unless it was removed since. Returns
    the discounts concerned; each gets an audit row."""
    da, dc = td.document_allowances.c, td.discounts.c
    ids = sorted(
        set(
            conn.execute(
                select(da.discount_id).where(da.document_id == doc["id"], da.discount_id.is_not(None))
            ).scalars()
        )
    )
    for r in conn.execute(select(td.discounts).where(dc.id.in_(ids)).with_for_update()).mappings().all():
        values: dict[str, Any] = {"periods_applied": max(r["periods_applied"] - 1, 0)}
        if r["status"] == "ended":
            values.update(status="active", ended_at=None)
        conn.execute(update(td.discounts).where(dc.id == r["id"]).values(**values))
        before = {"periods_applied": r["periods_applied"], "status": r["status"]}
        after = {**before, **values, "document_id": doc["id"]}
        append_audit(
            conn,
            [
                audit_row(
                    r["organization_id"], "discount", r["id"], "period_returned", actor, now, before, after
                )
            ],
        )
    return ids


def expire_due(db: Database, now: datetime, organization_id: int | None = None) -> tuple[int, int]:
    """Coupons past their redeem-by date (`coupon.expired`) and promotional grants past their expiry
    (`credits.expired`, the wallet debited) expire when their date passes, whether or not a document is
    billed for them: every billing run (and so the worker) calls this first. One read when nothing is
    due; returns (coupons, grants) expired."""
    cc, g, w = td.coupons.c, td.wallet_grants.c, td.wallets.c
    coupons = select(cc.organization_id).where(
        cc.redeem_by.is_not(None), cc.redeem_by <= now, cc.expired_at.is_(None)
    )
    grants = (
        select(w.customer_id)
        .join(td.wallets, w.id == g.wallet_id)
        .where(g.status == "active", g.expires_at.is_not(None), g.expires_at <= now)
    )
    if organization_id is not None:
        coupons = coupons.where(cc.organization_id == organization_id)
        grants = grants.where(g.organization_id == organization_id)
    with db.read() as conn:
        orgs = set(conn.execute(coupons.distinct()).scalars())
        customers = set(conn.execute(grants.distinct()).scalars())
    if not orgs and not customers:
        return 0, 0
    with db.write() as conn:
        return expire_coupons(conn, orgs, now), expire_credits(conn, customers, now)
