"""organisation setting: what cancelling now does to a document issued for a later period

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 11:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "organizations",
        sa.Column("cancel_issued_ahead", sa.String(length=16), server_default="credit_note", nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("cancel_issued_ahead")
