"""Billing one subscription inside the caller's transaction, by the billing run's own code: a
subscription created with `billing: "now"` (Stripe's default) gets its first document at once instead
of at the next run, in the same transaction as its creation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.context import load_customers, load_orgs
from fiscus.domain.clock import Clock
from fiscus.services.billing_run import _bill_one, _billing_inputs, _persist_split


def bill_subscription_within(
    conn: Connection, clock: Clock, org_id: int, subscription_id: int, at: datetime, actor: str
) -> list[int]:
    """Issue (or draft, per the organisation) the documents of every period of the subscription due at
    `at`, advance it as the run would, and return the new documents' ids. The period rows' unique key
    keeps a later billing run from billing the same period again."""
    sub = dict(
        conn.execute(
            select(t.subscriptions)
            .where(t.subscriptions.c.id == subscription_id, t.subscriptions.c.organization_id == org_id)
            .with_for_update()
        )
        .mappings()
        .one()
    )
    items, pending, prices = _billing_inputs(conn, org_id, [subscription_id])
    org = load_orgs(conn, [org_id])[org_id]
    customer = load_customers(conn, org_id, [sub["customer_id"]])[sub["customer_id"]]
    docs, change, held = _bill_one(
        sub, org, customer, items[subscription_id], pending[subscription_id], prices, at
    )
    if not docs:
        return []
    d = t.documents.c
    known = set(conn.execute(select(d.id).where(d.subscription_id == subscription_id)).scalars())
    now = clock.now()
    _persist_split(conn, docs, now, clock, actor, None, held)
    sid = change.pop("sid")
    conn.execute(update(t.subscriptions).where(t.subscriptions.c.id == sid).values(**change, updated_at=now))
    made = conn.execute(select(d.id).where(d.subscription_id == subscription_id).order_by(d.id)).scalars()
    return [i for i in made if i not in known]
