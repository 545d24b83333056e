"""customer promotion codes (portal, hosted page) and discarded drafts

Issue 17: an organisation may let its customers enter promotion codes (`customer_promotion_codes`,
off by default). Cancelling a subscription discards the drafts billed for its later periods: a draft
has no number, so it becomes void unnumbered, which the documents' numbering CHECK now allows.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 19:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
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
    """SQLite changes a CHECK by copying the table: the triggers on it, and those of other tables that
    name it (the document counts and rollups of earlier migrations), are dropped first and made again
    as they were."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    triggers: list[tuple[str, str]] = []
    if sqlite:
        found = op.get_bind().execute(
            sa.text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                "AND (tbl_name = 'documents' OR sql LIKE '%documents%') ORDER BY name"
            )
        )
        triggers = [(str(name), str(sql)) for name, sql in found]
        for name, _sql in triggers:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_documents_numbered_iff_issued"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_documents_numbered_iff_issued"), sa.text(check))
    for _name, sql in triggers:
        op.execute(sql)
