"""console dashboard speed: the maintained MRR history

`mrr_events` (see `fiscus.adapters.db.tables_mrr`): every customer's MRR movements and every
subscription's paid start and end, written by the subscription services in their transactions; filled
here from the subscriptions and the audit trail by the same reconstruction (`services/mrr_history`).

Revision ID: 0027
Revises: 0022
Create Date: 2026-12-07 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fiscus.adapters.db.types

revision = "0027"
down_revision = "0022"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mrr_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("organization_id", _ID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("customer_id", _ID, nullable=False),
        sa.Column("subscription_id", _ID, nullable=True),
        sa.Column("at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mrr_events")),
    )
    op.create_index(
        "ix_mrr_events_range", "mrr_events", ["organization_id", "currency", "at", "kind", "amount_minor"]
    )
    op.create_index("ix_mrr_events_customer", "mrr_events", ["organization_id", "customer_id"])
    # The backfill runs the application's reconstruction (MRR is exact Decimal arithmetic over prices,
    # quantities and the audit trail's item lists, which SQL on SQLite cannot do).
    from fiscus.services.mrr_history import rebuild

    rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_mrr_events_customer", table_name="mrr_events")
    op.drop_index("ix_mrr_events_range", table_name="mrr_events")
    op.drop_table("mrr_events")
