"""operators, operator_memberships, console_sessions, login_attempts (the operator console)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 13:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from fiscus.adapters.db.types import UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("password_hash", sa.String(200), nullable=True),
        sa.Column("setup_token_hash", sa.String(64), nullable=True),
        sa.Column("setup_expires_at", UtcDateTime, nullable=True),
        sa.Column("totp_secret", sa.String(64), nullable=True),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("locked_until", UtcDateTime, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_operators"),
        sa.UniqueConstraint("email", name="uq_operators_email"),
        sa.UniqueConstraint("setup_token_hash", name="uq_operators_setup_token_hash"),
    )
    op.create_table(
        "operator_memberships",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("operator_id", Id, nullable=False),
        sa.Column("organization_id", Id, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_operator_memberships"),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name="fk_operator_memberships_operator_id_operators"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_operator_memberships_organization_id_organizations",
        ),
        sa.UniqueConstraint(
            "operator_id", "organization_id", name="uq_operator_memberships_operator_id_organization_id"
        ),
        sa.CheckConstraint(
            "role IN ('admin', 'finance', 'support', 'viewer')", name="ck_operator_memberships_role"
        ),
    )
    op.create_index("ix_operator_memberships_organization_id", "operator_memberships", ["organization_id"])
    op.create_table(
        "console_sessions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("operator_id", Id, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("last_seen_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("revoked_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_console_sessions"),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name="fk_console_sessions_operator_id_operators"
        ),
        sa.UniqueConstraint("token_hash", name="uq_console_sessions_token_hash"),
    )
    op.create_index("ix_console_sessions_operator_id", "console_sessions", ["operator_id"])
    op.create_table(
        "login_attempts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("succeeded", sa.Boolean, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_attempts"),
    )
    op.create_index("ix_login_attempts_email_at", "login_attempts", ["email", "at"])


def downgrade() -> None:
    op.drop_index("ix_login_attempts_email_at", table_name="login_attempts")
    op.drop_table("login_attempts")
    op.drop_index("ix_console_sessions_operator_id", table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_index("ix_operator_memberships_organization_id", table_name="operator_memberships")
    op.drop_table("operator_memberships")
    op.drop_table("operators")
