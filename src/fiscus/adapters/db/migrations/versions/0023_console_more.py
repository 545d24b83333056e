"""console: paused collection of subscriptions, sort indexes of every console list

`collection_pauses`: one row while a subscription's automatic charges are paused
(`services/collection_pause.py`). For each column a console list sorts on, an
`(organization_id, column, id)` index (`adapters/db/tables_console_sort.py`), so a keyset page in that
order reads `limit + 1` index entries.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from fiscus.adapters.db.types import UtcDateTime

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

SORT_INDEXES = {
    "customers": ("name", "email", "country", "vat_id", "currency", "created_at"),
    "subscriptions": ("status", "currency", "current_period_end"),
    "payment_attempts": (
        "document_id", "status", "amount_minor", "error_code", "provider_charge_id", "created_at",
    ),
    "payment_refunds": (
        "attempt_id", "document_id", "amount_minor", "status",
        "provider_refund_id", "credit_note_id", "created_at",
    ),
    "webhook_deliveries": (
        "endpoint_id", "event_type", "status", "attempts", "last_attempt_at", "next_attempt_at",
    ),
    "audit_events": ("entity_type", "action", "actor", "at"),
    "documents": ("issue_date", "due_date"),
}  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "collection_pauses",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=True
        ),
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscription_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("paused_at", UtcDateTime(), nullable=False),
        sa.Column("resumes_at", UtcDateTime(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.ForeignKeyConstraint(["subscription_id"], ["subscriptions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscription_id", name="uq_collection_pauses_subscription"),
    )
    for table, columns in SORT_INDEXES.items():
        for column in columns:
            op.create_index(f"ix_{table}_sort_{column}", table, ["organization_id", column, "id"])


def downgrade() -> None:
    for table, columns in SORT_INDEXES.items():
        for column in columns:
            op.drop_index(f"ix_{table}_sort_{column}", table_name=table)
    op.drop_table("collection_pauses")
