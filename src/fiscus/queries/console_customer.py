"""The console's customer page beyond its row: the credit the customer holds (customer credit from
credit notes, per currency, and prepaid wallets) and a timeline of what happened to the customer, its
subscriptions and its documents (the audit trail, newest first, bounded)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td


def credit_balances(conn: Connection, org_id: int, customer_id: int) -> list[dict[str, Any]]:
    """Unspent customer credit per currency (only currencies with a ledger)."""
    cc = t.customer_credits.c
    rows = conn.execute(
        select(cc.currency, func.sum(cc.amount_minor))
        .where(cc.organization_id == org_id, cc.customer_id == customer_id)
        .group_by(cc.currency)
        .order_by(cc.currency)
    ).all()
    return [{"currency": r[0], "balance_minor": int(r[1] or 0)} for r in rows]


def wallets(conn: Connection, org_id: int, customer_id: int) -> list[dict[str, Any]]:
    w = td.wallets.c
    query = select(td.wallets).where(w.organization_id == org_id, w.customer_id == customer_id)
    return [dict(r) for r in conn.execute(query.order_by(w.id)).mappings()]


def timeline(conn: Connection, org_id: int, customer_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """The newest `limit` audit events of the customer, its subscriptions and its documents."""
    a, d, s = t.audit_events.c, t.documents.c, t.subscriptions.c
    docs = select(d.id).where(d.organization_id == org_id, d.customer_id == customer_id)
    subs = select(s.id).where(s.organization_id == org_id, s.customer_id == customer_id)
    query = (
        select(a.at, a.entity_type, a.entity_id, a.action, a.actor)
        .where(
            a.organization_id == org_id,
            or_(
                and_(a.entity_type == "customer", a.entity_id == customer_id),
                and_(a.entity_type == "document", a.entity_id.in_(docs)),
                and_(a.entity_type == "subscription", a.entity_id.in_(subs)),
            ),
        )
        .order_by(a.at.desc(), a.id.desc())
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]
