"""usage buckets and unique values found by hour (issue 16)

Current usage and billing read a customer's buckets of one metric over a period's hours. The primary
keys put the group before the hour, so that read walked every group's every hour ever stored for the
customer and metric and filtered the hours; these indexes lead with (organization, customer, metric,
hour), so it reads the period's hours only, however long the history. The ingesting upsert changes
no indexed column of a bucket, so it can stay a heap-only update.

Revision ID: 0027
Revises: 0026 (written as 0025 after 0022; renumbered after main's 0025 and 0026 at the merges)
Create Date: 2026-12-07 19:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

COLUMNS = ["organization_id", "customer_id", "metric_id", "hour"]


def upgrade() -> None:
    op.create_index("ix_usage_buckets_hours", "usage_buckets", COLUMNS)
    op.create_index("ix_usage_unique_values_hours", "usage_unique_values", COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_usage_unique_values_hours", table_name="usage_unique_values")
    op.drop_index("ix_usage_buckets_hours", table_name="usage_buckets")
