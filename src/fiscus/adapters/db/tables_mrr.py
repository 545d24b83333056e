"""The maintained MRR history the dashboard reads (migration 0024): rebuilding MRR from every
subscription and the audit trail on each request cost O(subscriptions) of Python per page.

`mrr_events` holds, per customer, every movement of its MRR (`new`, `expansion`, `contraction`,
`churn`, `reactivation`, a positive `amount_minor`) and, per subscription, the instants its paid time
starts and ends (`started` / `ended`, amount 1): what `domain/mrr.customer_changes` and the
subscription spans give. Rows may lie in the future (a trial ending, a cancellation scheduled at period
end). The services that change a subscription rewrite its customer's rows in the same transaction
(`services/mrr_history.refresh_customers`); `fiscus reconcile` recomputes them from the subscriptions
and the audit trail and reports any difference. The dashboard sums them per bucket over the covering
`ix_mrr_events_range`."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table

from fiscus.adapters.db.tables import Id, metadata
from fiscus.adapters.db.types import UtcDateTime

MRR_KINDS = ("new", "expansion", "contraction", "churn", "reactivation")
SUBSCRIPTION_KINDS = ("started", "ended")

mrr_events = Table(
    "mrr_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("organization_id", Id, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("customer_id", Id, nullable=False),
    Column("subscription_id", Id, nullable=True),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
)
Index(
    "ix_mrr_events_range",
    mrr_events.c.organization_id,
    mrr_events.c.currency,
    mrr_events.c.at,
    mrr_events.c.kind,
    mrr_events.c.amount_minor,
)
Index("ix_mrr_events_customer", mrr_events.c.organization_id, mrr_events.c.customer_id)
