"""portal login by email: drop `portal_login_messages`

Login links are now `portal_login` emails in the email outbox (`email_outbox`, kind `portal_login`),
sent by the worker like every other customer email; nothing reads the old table any more. A link still
waiting in it (never sent by anything) expired within 15 minutes of being asked for, so nothing is moved.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 14:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fiscus.adapters.db.types

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("portal_login_messages", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_portal_login_messages_unsent",
            sqlite_where=sa.text("sent_at IS NULL"),
            postgresql_where=sa.text("sent_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_portal_login_messages_organization_id"))
        batch_op.drop_index(batch_op.f("ix_portal_login_messages_customer_id"))
    op.drop_table("portal_login_messages")


def downgrade() -> None:
    op.create_table(
        "portal_login_messages",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("link_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("created_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_portal_login_messages_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["link_id"], ["portal_links.id"], name=op.f("fk_portal_login_messages_link_id_portal_links")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_portal_login_messages_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_login_messages")),
    )
    with op.batch_alter_table("portal_login_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_portal_login_messages_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_portal_login_messages_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(
            "ix_portal_login_messages_unsent",
            ["id"],
            unique=False,
            sqlite_where=sa.text("sent_at IS NULL"),
            postgresql_where=sa.text("sent_at IS NULL"),
        )
