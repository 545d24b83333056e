"""Usage-based billing tables (migration 0016, ADR 0008). Same `metadata` as `tables.py`.

Keys lead with `organization_id` everywhere (the distribution column should PostgreSQL ever be
sharded by tenant with Citus). Raw events are append-only; on PostgreSQL `usage_events` is
partitioned by month of `occurred_at` (partitions live in the `usage_partitions` schema, made by the
migration and ahead of time by the worker), so its key must hold the partition column: the
organisation-wide uniqueness of a transaction id is kept by `usage_event_keys`, a plain table whose
primary key is exactly (organization_id, transaction_id).

Billing reads `usage_buckets` (one mergeable partial per customer, metric, group value and UTC hour,
updated in the ingesting transaction) and `usage_unique_values` (the distinct values of a unique-count
metric per hour), never the raw events except inside a period's two partial edge hours.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    text,
)

from fiscus.adapters.db.tables import Id, Json, metadata
from fiscus.adapters.db.types import ExactDecimal, UtcDateTime

PARTITION_SCHEMA = "usage_partitions"

billable_metrics = Table(
    "billable_metrics",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("aggregation", String(16), nullable=False),
    Column("field", String(64), nullable=True),
    # {"region": ["eu"]}: an event counts only when each listed property has one of the values.
    Column("filters", Json, nullable=False, server_default=text("'{}'")),
    Column("group_by", String(64), nullable=True),
    Column("rounding", String(8), nullable=False, server_default="none"),
    Column("precision", Integer, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("organization_id", "code"),
    CheckConstraint(
        "aggregation IN ('count', 'sum', 'max', 'min', 'unique_count', 'latest', 'weighted_sum')",
        name="aggregation",
    ),
    CheckConstraint("rounding IN ('none', 'round', 'ceil', 'floor')", name="rounding"),
)

usage_event_keys = Table(
    "usage_event_keys",
    metadata,
    Column("organization_id", Id, nullable=False),
    Column("transaction_id", String(128), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("organization_id", "transaction_id"),
)

usage_events = Table(
    "usage_events",
    metadata,
    Column("organization_id", Id, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("transaction_id", String(128), nullable=False),
    Column("customer_id", Id, nullable=False),
    Column("metric_id", Id, nullable=False),
    Column("group_value", String(200), nullable=False),
    Column("properties", Json, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("organization_id", "occurred_at", "transaction_id"),
    # A period's edge hours and late-event adjustments read a customer's events of a metric by time.
    Index("ix_usage_events_customer_metric", "organization_id", "customer_id", "metric_id", "occurred_at"),
    postgresql_partition_by="RANGE (occurred_at)",
)

usage_buckets = Table(
    "usage_buckets",
    metadata,
    Column("organization_id", Id, nullable=False),
    Column("customer_id", Id, nullable=False),
    Column("metric_id", Id, nullable=False),
    Column("group_value", String(200), nullable=False),
    Column("hour", UtcDateTime, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("total", ExactDecimal, nullable=False),
    Column("minimum", ExactDecimal, nullable=True),
    Column("maximum", ExactDecimal, nullable=True),
    Column("latest_at", UtcDateTime, nullable=True),
    Column("latest_id", String(128), nullable=False, server_default=""),
    Column("latest_value", ExactDecimal, nullable=True),
    # Σ δ·(hour end − t) in seconds: the weighted sum's exact, shiftable part (domain/usage.py).
    Column("weighted", ExactDecimal, nullable=False),
    PrimaryKeyConstraint("organization_id", "customer_id", "metric_id", "group_value", "hour"),
    # A period's buckets, every group: current usage and billing read these hours only (migration 0027).
    Index("ix_usage_buckets_hours", "organization_id", "customer_id", "metric_id", "hour"),
)

usage_unique_values = Table(
    "usage_unique_values",
    metadata,
    Column("organization_id", Id, nullable=False),
    Column("customer_id", Id, nullable=False),
    Column("metric_id", Id, nullable=False),
    Column("group_value", String(200), nullable=False),
    Column("hour", UtcDateTime, nullable=False),
    Column("value", String(200), nullable=False),
    PrimaryKeyConstraint("organization_id", "customer_id", "metric_id", "group_value", "hour", "value"),
    Index("ix_usage_unique_values_hours", "organization_id", "customer_id", "metric_id", "hour"),
)

usage_settings = Table(
    "usage_settings",
    metadata,
    # One row per organisation that changed a default (no row: the defaults in services/usage_settings.py).
    Column("organization_id", Id, ForeignKey("organizations.id"), primary_key=True),
    Column("late_days", Integer, nullable=False, server_default="7"),
    Column("grace_hours", Integer, nullable=False, server_default="1"),
    Column("late_policy", String(16), nullable=False, server_default="invoice"),
    # Events naming an external customer id no customer has yet: kept until it exists (migration 0019).
    Column("accept_unknown_customers", Boolean, nullable=False, server_default=text("false")),
    CheckConstraint("late_days BETWEEN 0 AND 366", name="late_days"),
    CheckConstraint("grace_hours BETWEEN 0 AND 720", name="grace_hours"),
    CheckConstraint("late_policy IN ('invoice', 'credit_note')", name="late_policy"),
)

usage_prices = Table(
    "usage_prices",
    metadata,
    # A price billed in arrears on a metric: the price row holds currency, tax and product; this its charge.
    Column("price_id", Id, ForeignKey("prices.id"), primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("metric_id", Id, ForeignKey("billable_metrics.id"), nullable=False),
    Column("charge_model", String(16), nullable=False),
    # The charge's properties as decimal strings (tiers, unit price, package size, rate, fees, bounds).
    Column("properties", Json, nullable=False),
    Index("ix_usage_prices_org_metric", "organization_id", "metric_id"),
    CheckConstraint(
        "charge_model IN ('per_unit', 'package', 'graduated', 'volume', 'percentage')", name="charge_model"
    ),
)

usage_lines = Table(
    "usage_lines",
    metadata,
    # What a billed usage charge measured: one row per (document, price, group), the lines it became.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("document_id", Id, ForeignKey("documents.id"), nullable=False),
    Column("subscription_id", Id, nullable=False),
    Column("price_id", Id, nullable=False),
    Column("metric_id", Id, nullable=False),
    Column("group_value", String(200), nullable=False),
    Column("period_start", UtcDateTime, nullable=False),
    Column("period_end", UtcDateTime, nullable=False),
    Column("quantity", ExactDecimal, nullable=False),
    Column("events", BigInteger, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    # [{"position", "label", "tier", "quantity", "unit_price", "amount"}]: the document lines it became.
    Column("breakdown", Json, nullable=False),
    Index("ix_usage_lines_document", "organization_id", "document_id"),
    Index("ix_usage_lines_subscription", "organization_id", "subscription_id", "price_id", "period_start"),
)

usage_periods = Table(
    "usage_periods",
    metadata,
    # A subscription period whose usage was billed (document NULL: nothing to bill); unique per start,
    # the backstop of "a period's usage is billed once".
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("subscription_id", Id, ForeignKey("subscriptions.id"), nullable=False),
    Column("period_start", UtcDateTime, nullable=False),
    Column("period_end", UtcDateTime, nullable=False),
    Column("document_id", Id, ForeignKey("documents.id"), nullable=True),
    Column("billed_at", UtcDateTime, nullable=False),
    UniqueConstraint("subscription_id", "period_start"),
    Index("ix_usage_periods_org_subscription", "organization_id", "subscription_id", "period_end"),
)

usage_cursors = Table(
    "usage_cursors",
    metadata,
    # Where a subscription's usage billing stands: the next period to bill and when it is due (its end
    # plus the grace window); NULL when everything up to the subscription's end is billed.
    Column("subscription_id", Id, ForeignKey("subscriptions.id"), primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("next_start", UtcDateTime, nullable=False),
    Column("next_due_at", UtcDateTime, nullable=True),
    Index("ix_usage_cursors_due", "next_due_at"),
)

usage_late = Table(
    "usage_late",
    metadata,
    # A billed usage period that received events after it was billed: the next run adjusts it
    # (services/usage_adjustments.py) and removes the mark in the same transaction.
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("subscription_id", Id, ForeignKey("subscriptions.id"), nullable=False),
    Column("period_start", UtcDateTime, nullable=False),
    Column("marked_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("organization_id", "subscription_id", "period_start"),
)
