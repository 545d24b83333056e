"""usage thresholds (announced once per period), customers' external ids, and events kept for
customers that do not exist yet when the organisation allows it, and the usage prices a plan change
added or removed (a period's usage split at that instant) (ADR 0008)

Revision ID: 0024
Revises: 0018
Create Date: 2026-12-07 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from fiscus.adapters.db.types import ExactDecimal, UtcDateTime

revision = "0024"
down_revision = "0018"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")  # type: ignore[attr-defined]


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(128), nullable=True))
        batch_op.create_index("uq_customers_external_id", ["organization_id", "external_id"], unique=True)
    with op.batch_alter_table("usage_settings") as batch_op:
        batch_op.add_column(
            sa.Column(
                "accept_unknown_customers", sa.Boolean(), nullable=False, server_default=sa.text("false")
            )
        )
    op.create_table(
        "usage_pending_events",
        sa.Column("organization_id", Id, nullable=False),
        sa.Column("transaction_id", sa.String(128), nullable=False),
        sa.Column("external_customer_id", sa.String(128), nullable=False),
        sa.Column("metric_id", Id, nullable=False),
        sa.Column("occurred_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("properties", Json, nullable=False),
        sa.Column("received_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "transaction_id", name=op.f("pk_usage_pending_events")),
    )
    op.create_index(
        "ix_usage_pending_events_external",
        "usage_pending_events",
        ["organization_id", "external_customer_id"],
    )
    op.create_table(
        "usage_thresholds",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("organization_id", Id, nullable=False),
        sa.Column("subscription_id", Id, nullable=False),
        sa.Column("price_id", Id, nullable=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("value", ExactDecimal(), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_usage_thresholds_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_usage_thresholds_subscription_id_subscriptions"),
        ),
        sa.ForeignKeyConstraint(
            ["price_id"], ["prices.id"], name=op.f("fk_usage_thresholds_price_id_prices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_thresholds")),
        sa.CheckConstraint("kind IN ('amount', 'quantity')", name=op.f("ck_usage_thresholds_kind")),
        sa.CheckConstraint(
            "kind = 'amount' OR price_id IS NOT NULL", name=op.f("ck_usage_thresholds_quantity_price")
        ),
    )
    op.create_index(
        "ix_usage_thresholds_org_subscription", "usage_thresholds", ["organization_id", "subscription_id"]
    )
    op.create_table(
        "usage_threshold_hits",
        sa.Column("organization_id", Id, nullable=False),
        sa.Column("threshold_id", Id, nullable=False),
        sa.Column("period_start", UtcDateTime(timezone=True), nullable=False),
        sa.Column("reached_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_usage_threshold_hits_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["threshold_id"],
            ["usage_thresholds.id"],
            name=op.f("fk_usage_threshold_hits_threshold_id_usage_thresholds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("threshold_id", "period_start", name=op.f("pk_usage_threshold_hits")),
    )
    op.create_table(
        "usage_item_changes",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("organization_id", Id, nullable=False),
        sa.Column("subscription_id", Id, nullable=False),
        sa.Column("price_id", Id, nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_usage_item_changes_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_usage_item_changes_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_item_changes")),
        sa.CheckConstraint("action IN ('added', 'removed')", name=op.f("ck_usage_item_changes_action")),
    )
    op.create_index(
        "ix_usage_item_changes_subscription",
        "usage_item_changes",
        ["organization_id", "subscription_id", "at"],
    )


def downgrade() -> None:
    op.drop_index("ix_usage_item_changes_subscription", table_name="usage_item_changes")
    op.drop_table("usage_item_changes")
    op.drop_table("usage_threshold_hits")
    op.drop_index("ix_usage_thresholds_org_subscription", table_name="usage_thresholds")
    op.drop_table("usage_thresholds")
    op.drop_index("ix_usage_pending_events_external", table_name="usage_pending_events")
    op.drop_table("usage_pending_events")
    with op.batch_alter_table("usage_settings") as batch_op:
        batch_op.drop_column("accept_unknown_customers")
    with op.batch_alter_table("customers") as batch_op:
        batch_op.drop_index("uq_customers_external_id")
        batch_op.drop_column("external_id")
