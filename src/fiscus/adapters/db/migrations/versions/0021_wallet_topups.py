"""bought credit: `wallet_topups`, `restored` wallet ledger rows, usage metrics in a coupon's scope

A top-up invoice (issue 17, ADR 0009) grants paid credit once it is paid: `wallet_topups` links the
invoice to the grant it made (unique, so never twice). A voided document gives back the credit it
consumed through a `restored` ledger row, so the ledger's kind CHECK gains that value, and the ledger
is indexed by document (every void looks it up). Coupons gain `metric_ids` (usage metrics in scope).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import fiscus.adapters.db.types

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_OLD = "kind IN ('granted', 'consumed', 'expired', 'refunded')"
_NEW = "kind IN ('granted', 'consumed', 'expired', 'refunded', 'restored')"


def upgrade() -> None:
    op.create_table(
        "wallet_topups",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("organization_id", _ID, nullable=False),
        sa.Column("customer_id", _ID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("document_id", _ID, nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("grant_id", _ID, nullable=True),
        sa.Column("created_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("credited_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_wallet_topups_amount")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_wallet_topups_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name=op.f("fk_wallet_topups_document_id_documents")
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["wallet_grants.id"], name=op.f("fk_wallet_topups_grant_id_wallet_grants")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_wallet_topups_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_topups")),
        sa.UniqueConstraint("document_id", name=op.f("uq_wallet_topups_document_id")),
        sa.UniqueConstraint("grant_id", name=op.f("uq_wallet_topups_grant_id")),
    )
    with op.batch_alter_table("wallet_topups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_wallet_topups_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_wallet_topups_customer_id"), ["customer_id"], unique=False)
    _ledger_kinds(_NEW)
    with op.batch_alter_table("wallet_ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wallet_ledger_document_id"), ["document_id"], unique=False)
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "metric_ids",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default=sa.text("'[]'"),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("wallet_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_ledger_document_id"))
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.drop_column("metric_ids")
    # the old schema has no 'restored': such rows become 'granted' (+), so Σ ledger = balance still holds
    op.execute("UPDATE wallet_ledger SET kind = 'granted' WHERE kind = 'restored'")
    _ledger_kinds(_OLD)
    with op.batch_alter_table("wallet_topups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_topups_customer_id"))
        batch_op.drop_index(batch_op.f("ix_wallet_topups_organization_id"))
    op.drop_table("wallet_topups")


def _ledger_kinds(check: str) -> None:
    with op.batch_alter_table("wallet_ledger", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_wallet_ledger_kind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_wallet_ledger_kind"), sa.text(check))
