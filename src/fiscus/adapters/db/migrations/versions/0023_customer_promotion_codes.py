"""customer promotion codes (portal, hosted page) and discarded drafts

Issue 17: an organisation may let its customers enter promotion codes (`customer_promotion_codes`,
off by default). Cancelling a subscription discards the drafts billed for its later periods: a draft
has no number, so it becomes void unnumbered, which the documents' numbering CHECK now allows.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 19:10:00
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

_OLD = "(status = 'draft') = (sequence IS NULL)"
_NEW = "(status = 'draft') = (sequence IS NULL) OR (status = 'void' AND sequence IS NULL)"


def upgrade() -> None:
    op.add_column(
        "organizations",
        sa.Column("customer_promotion_codes", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    _numbering(_NEW)


def downgrade() -> None:
    # the old schema has no discarded draft: such a document goes back to being a draft
    op.execute(
        "UPDATE documents SET status = 'draft', voided_at = NULL WHERE status = 'void' AND sequence IS NULL"
    )
    _numbering(_OLD)
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("customer_promotion_codes")


def _numbering(check: str) -> None:
    """SQLite changes a CHECK by copying the table, which drops its triggers (the document counts of
    0022, whose SQL is reused from there): they are made again on the new table."""
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_documents_numbered_iff_issued"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_documents_numbered_iff_issued"), sa.text(check))
    if op.get_bind().dialect.name == "sqlite":
        spec = importlib.util.spec_from_file_location(
            "fiscus_migration_0022", Path(__file__).with_name("0022_document_counts.py")
        )
        assert spec is not None
        assert spec.loader is not None
        counts = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(counts)
        for name in ("document_counts_insert", "document_counts_delete", "document_counts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in counts.SQLITE_TRIGGERS:
            op.execute(statement)
