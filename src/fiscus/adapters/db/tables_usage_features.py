"""Usage thresholds, events for customers that do not exist yet, and the usage prices a subscription
gained or lost mid-period (migration 0024, ADR 0008).

Usage thresholds: a subscription's current-period usage amount or a usage price's quantity that,
once crossed, announces `usage.threshold_reached` once per period.

`usage_threshold_hits` is the "once": its key (threshold, period start) is claimed with
`ON CONFLICT DO NOTHING` in the transaction that writes the outbox event, so two workers checking at
once cannot both announce it.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, PrimaryKeyConstraint, String, Table

from fiscus.adapters.db.tables import Id, Json, metadata
from fiscus.adapters.db.types import ExactDecimal, UtcDateTime

usage_thresholds = Table(
    "usage_thresholds",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("subscription_id", Id, ForeignKey("subscriptions.id"), nullable=False),
    # NULL: the subscription's whole usage amount; else one usage price of the subscription.
    Column("price_id", Id, ForeignKey("prices.id"), nullable=True),
    # amount: net in the subscription's currency (major units); quantity: the metric's aggregate.
    Column("kind", String(8), nullable=False),
    Column("value", ExactDecimal, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("kind IN ('amount', 'quantity')", name="kind"),
    CheckConstraint("kind = 'amount' OR price_id IS NOT NULL", name="quantity_price"),
    Index("ix_usage_thresholds_org_subscription", "organization_id", "subscription_id"),
)

usage_threshold_hits = Table(
    "usage_threshold_hits",
    metadata,
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("threshold_id", Id, ForeignKey("usage_thresholds.id", ondelete="CASCADE"), nullable=False),
    Column("period_start", UtcDateTime, nullable=False),
    Column("reached_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("threshold_id", "period_start"),
)

usage_pending_events = Table(
    "usage_pending_events",
    metadata,
    # An accepted event naming an external customer id that no customer had (the organisation allows
    # it): its transaction id is claimed in usage_event_keys like any event's; creating the customer
    # with that external id moves it into usage_events and the buckets (services/usage_pending.py).
    Column("organization_id", Id, nullable=False),
    Column("transaction_id", String(128), nullable=False),
    Column("external_customer_id", String(128), nullable=False),
    Column("metric_id", Id, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("properties", Json, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("organization_id", "transaction_id"),
    Index("ix_usage_pending_events_external", "organization_id", "external_customer_id"),
)

usage_item_changes = Table(
    "usage_item_changes",
    metadata,
    # A usage price added to or removed from a subscription by a plan change, and when: a period's
    # usage is split at that instant (services/usage_windows.py). Creation and cancellation need no row.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("subscription_id", Id, ForeignKey("subscriptions.id"), nullable=False),
    Column("price_id", Id, nullable=False),
    Column("action", String(8), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    CheckConstraint("action IN ('added', 'removed')", name="action"),
    Index("ix_usage_item_changes_subscription", "organization_id", "subscription_id", "at"),
)
