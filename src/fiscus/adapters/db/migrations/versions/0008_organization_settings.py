"""organisation settings: trading name, region, paper size, bank accounts, footers, logos; admin keys

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import fiscus.adapters.db.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_AT = fiscus.adapters.db.types.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "admin_keys",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("last_used_at", _AT, nullable=True),
        sa.Column("revoked_at", _AT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_keys")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_admin_keys_secret_hash")),
    )
    op.create_table(
        "organization_logos",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("organization_id", _ID, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.CheckConstraint(
            "content_type IN ('image/png', 'image/svg+xml')", name=op.f("ck_organization_logos_content_type")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_organization_logos_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization_logos")),
        sa.UniqueConstraint(
            "organization_id", "sha256", name=op.f("uq_organization_logos_organization_id_sha256")
        ),
    )
    with op.batch_alter_table("organization_logos", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_organization_logos_organization_id"), ["organization_id"], unique=False
        )
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trading_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("region", sa.String(length=100), server_default="", nullable=False))
        batch_op.add_column(sa.Column("paper_size", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("bank_accounts", _JSON, server_default=sa.text("'[]'"), nullable=False))
        batch_op.add_column(sa.Column("footers", _JSON, server_default=sa.text("'{}'"), nullable=False))
        batch_op.add_column(sa.Column("logo_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("sandbox_of", _ID, nullable=True))
        batch_op.add_column(sa.Column("updated_at", _AT, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_organizations_sandbox_of_organizations"), "organizations", ["sandbox_of"], ["id"]
        )
        batch_op.create_check_constraint("paper_size", "paper_size IN ('a4', 'letter')")


def downgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_organizations_paper_size"), type_="check")
        batch_op.drop_constraint(batch_op.f("fk_organizations_sandbox_of_organizations"), type_="foreignkey")
        for column in (
            "updated_at",
            "sandbox_of",
            "logo_sha256",
            "footers",
            "bank_accounts",
            "paper_size",
            "region",
            "trading_name",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("organization_logos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organization_logos_organization_id"))
    op.drop_table("organization_logos")
    op.drop_table("admin_keys")
