"""documents seek index: (organization_id, id, type, status) replaces (organization_id, id)

The page-number dialects find a deep page's first id by an id-only OFFSET over the organisation's
documents filtered by type (and status); with type and status in the index, the skipped entries are read
from the index alone (ADR 0004). It also serves everything (organization_id, id) served.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 11:35:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index("ix_documents_org_seek", ["organization_id", "id", "type", "status"])
        batch_op.drop_index("ix_documents_org_created")


def downgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index("ix_documents_org_created", ["organization_id", "id"])
        batch_op.drop_index("ix_documents_org_seek")
