"""usage-based billing: billable metrics, events (partitioned by month on PostgreSQL), hour buckets,
usage prices, usage lines and settings (ADR 0008)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 13:30:00
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from alembic import op

from fiscus.adapters.db.types import ExactDecimal, UtcDateTime
from fiscus.adapters.db.usage_partitions import ensure_partitions

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")  # type: ignore[attr-defined]
FIRST_PARTITION = date(2025, 1, 1)
LAST_PARTITION = date(2027, 12, 1)


def upgrade() -> None:
    op.create_table(
        "billable_metrics",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column(
            "organization_id",
            Id,
            sa.ForeignKey("organizations.id", name=op.f("fk_billable_metrics_organization_id_organizations")),
            nullable=False,
        ),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("aggregation", sa.String(16), nullable=False),
        sa.Column("field", sa.String(64), nullable=True),
        sa.Column("filters", Json, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("group_by", sa.String(64), nullable=True),
        sa.Column("rounding", sa.String(8), nullable=False, server_default="none"),
        sa.Column("precision", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billable_metrics")),
        sa.UniqueConstraint("organization_id", "code", name=op.f("uq_billable_metrics_organization_id_code")),
        sa.CheckConstraint(
            "aggregation IN ('count', 'sum', 'max', 'min', 'unique_count', 'latest', 'weighted_sum')",
            name=op.f("ck_billable_metrics_aggregation"),
        ),
        sa.CheckConstraint(
            "rounding IN ('none', 'round', 'ceil', 'floor')", name=op.f("ck_billable_metrics_rounding")
        ),
    )
    op.create_table(
        "usage_event_keys",
        sa.Column("organization_id", Id, nullable=False),
        sa.Column("transaction_id", sa.String(128), nullable=False),
        sa.Column("occurred_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "transaction_id", name=op.f("pk_usage_event_keys")),
    )
    op.create_table(
        "usage_events",
        sa.Column("organization_id", Id, nullable=False),
        sa.Column("occurred_at", UtcDateTime, nullable=False),
        sa.Column("transaction_id", sa.String(128), nullable=False),
        sa.Column("customer_id", Id, nullable=False),
        sa.Column("metric_id", Id, nullable=False),
        sa.Column("group_value", sa.String(200), nullable=False),
        sa.Column("properties", Json, nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint(
            "organization_id", "occurred_at", "transaction_id", name=op.f("pk_usage_events")
        ),
        postgresql_partition_by="RANGE (occurred_at)",
    )
    op.create_index(
        "ix_usage_events_customer_metric",
        "usage_events",
        ["organization_id", "customer_id", "metric_id", "occurred_at"],
    )
    ensure_partitions(op.get_bind(), FIRST_PARTITION, LAST_PARTITION)
    op.create_table(
        "usage_buckets",
        sa.Column("organization_id", Id, nullable=False),
        sa.Column("customer_id", Id, nullable=False),
        sa.Column("metric_id", Id, nullable=False),
        sa.Column("group_value", sa.String(200), nullable=False),
        sa.Column("hour", UtcDateTime, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("total", ExactDecimal, nullable=False),
        sa.Column("minimum", ExactDecimal, nullable=True),
        sa.Column("maximum", ExactDecimal, nullable=True),
        sa.Column("latest_at", UtcDateTime, nullable=True),
        sa.Column("latest_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("latest_value", ExactDecimal, nullable=True),
        sa.Column("weighted", ExactDecimal, nullable=False),
        sa.PrimaryKeyConstraint(
            "organization_id",
            "customer_id",
            "metric_id",
            "group_value",
            "hour",
            name=op.f("pk_usage_buckets"),
        ),
    )
    op.create_table(
        "usage_unique_values",
        sa.Column("organization_id", Id, nullable=False),
        sa.Column("customer_id", Id, nullable=False),
        sa.Column("metric_id", Id, nullable=False),
        sa.Column("group_value", sa.String(200), nullable=False),
        sa.Column("hour", UtcDateTime, nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint(
            "organization_id",
            "customer_id",
            "metric_id",
            "group_value",
            "hour",
            "value",
            name=op.f("pk_usage_unique_values"),
        ),
    )
    op.create_table(
        "usage_settings",
        sa.Column(
            "organization_id",
            Id,
            sa.ForeignKey("organizations.id", name=op.f("fk_usage_settings_organization_id_organizations")),
            nullable=False,
        ),
        sa.Column("late_days", sa.Integer, nullable=False, server_default="7"),
        sa.Column("grace_hours", sa.Integer, nullable=False, server_default="1"),
        sa.Column("late_policy", sa.String(16), nullable=False, server_default="invoice"),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_usage_settings")),
        sa.CheckConstraint("late_days BETWEEN 0 AND 366", name=op.f("ck_usage_settings_late_days")),
        sa.CheckConstraint("grace_hours BETWEEN 0 AND 720", name=op.f("ck_usage_settings_grace_hours")),
        sa.CheckConstraint(
            "late_policy IN ('invoice', 'credit_note')", name=op.f("ck_usage_settings_late_policy")
        ),
    )
    op.create_table(
        "usage_prices",
        sa.Column(
            "price_id",
            Id,
            sa.ForeignKey("prices.id", name=op.f("fk_usage_prices_price_id_prices")),
            nullable=False,
        ),
        sa.Column(
            "organization_id",
            Id,
            sa.ForeignKey("organizations.id", name=op.f("fk_usage_prices_organization_id_organizations")),
            nullable=False,
        ),
        sa.Column(
            "metric_id",
            Id,
            sa.ForeignKey("billable_metrics.id", name=op.f("fk_usage_prices_metric_id_billable_metrics")),
            nullable=False,
        ),
        sa.Column("charge_model", sa.String(16), nullable=False),
        sa.Column("properties", Json, nullable=False),
        sa.PrimaryKeyConstraint("price_id", name=op.f("pk_usage_prices")),
        sa.CheckConstraint(
            "charge_model IN ('per_unit', 'package', 'graduated', 'volume', 'percentage')",
            name=op.f("ck_usage_prices_charge_model"),
        ),
    )
    op.create_index("ix_usage_prices_org_metric", "usage_prices", ["organization_id", "metric_id"])
    op.create_table(
        "usage_lines",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column(
            "organization_id",
            Id,
            sa.ForeignKey("organizations.id", name=op.f("fk_usage_lines_organization_id_organizations")),
            nullable=False,
        ),
        sa.Column(
            "document_id",
            Id,
            sa.ForeignKey("documents.id", name=op.f("fk_usage_lines_document_id_documents")),
            nullable=False,
        ),
        sa.Column("subscription_id", Id, nullable=False),
        sa.Column("price_id", Id, nullable=False),
        sa.Column("metric_id", Id, nullable=False),
        sa.Column("group_value", sa.String(200), nullable=False),
        sa.Column("period_start", UtcDateTime, nullable=False),
        sa.Column("period_end", UtcDateTime, nullable=False),
        sa.Column("quantity", ExactDecimal, nullable=False),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("breakdown", Json, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_lines")),
    )
    op.create_index("ix_usage_lines_document", "usage_lines", ["organization_id", "document_id"])
    op.create_index(
        "ix_usage_lines_subscription",
        "usage_lines",
        ["organization_id", "subscription_id", "price_id", "period_start"],
    )
    op.create_table(
        "usage_periods",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column(
            "organization_id",
            Id,
            sa.ForeignKey("organizations.id", name=op.f("fk_usage_periods_organization_id_organizations")),
            nullable=False,
        ),
        sa.Column(
            "subscription_id",
            Id,
            sa.ForeignKey("subscriptions.id", name=op.f("fk_usage_periods_subscription_id_subscriptions")),
            nullable=False,
        ),
        sa.Column("period_start", UtcDateTime, nullable=False),
        sa.Column("period_end", UtcDateTime, nullable=False),
        sa.Column(
            "document_id",
            Id,
            sa.ForeignKey("documents.id", name=op.f("fk_usage_periods_document_id_documents")),
            nullable=True,
        ),
        sa.Column("billed_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_periods")),
        sa.UniqueConstraint(
            "subscription_id", "period_start", name=op.f("uq_usage_periods_subscription_id_period_start")
        ),
    )
    op.create_index(
        "ix_usage_periods_org_subscription",
        "usage_periods",
        ["organization_id", "subscription_id", "period_end"],
    )
    op.create_table(
        "usage_cursors",
        sa.Column(
            "subscription_id",
            Id,
            sa.ForeignKey("subscriptions.id", name=op.f("fk_usage_cursors_subscription_id_subscriptions")),
            nullable=False,
        ),
        sa.Column(
            "organization_id",
            Id,
            sa.ForeignKey("organizations.id", name=op.f("fk_usage_cursors_organization_id_organizations")),
            nullable=False,
        ),
        sa.Column("next_start", UtcDateTime, nullable=False),
        sa.Column("next_due_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_usage_cursors")),
    )
    op.create_index("ix_usage_cursors_due", "usage_cursors", ["next_due_at"])
    op.create_table(
        "usage_late",
        sa.Column(
            "organization_id",
            Id,
            sa.ForeignKey("organizations.id", name=op.f("fk_usage_late_organization_id_organizations")),
            nullable=False,
        ),
        sa.Column(
            "subscription_id",
            Id,
            sa.ForeignKey("subscriptions.id", name=op.f("fk_usage_late_subscription_id_subscriptions")),
            nullable=False,
        ),
        sa.Column("period_start", UtcDateTime, nullable=False),
        sa.Column("marked_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint(
            "organization_id", "subscription_id", "period_start", name=op.f("pk_usage_late")
        ),
    )


def downgrade() -> None:
    for table in (
        "usage_late",
        "usage_cursors",
        "usage_periods",
        "usage_lines",
        "usage_prices",
        "usage_settings",
        "usage_unique_values",
        "usage_buckets",
        "usage_events",
        "usage_event_keys",
        "billable_metrics",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SCHEMA IF EXISTS usage_partitions CASCADE")
