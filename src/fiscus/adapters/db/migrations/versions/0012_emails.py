"""emails: the email outbox, suppressed addresses, organisations' email and dunning settings

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from fiscus.adapters.db.tables import Id, Json
from fiscus.adapters.db.types import UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_outbox",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("message_key", sa.String(200), nullable=False),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("customer_id", Id, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("document_id", Id, sa.ForeignKey("documents.id"), nullable=True),
        sa.Column("data", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UtcDateTime, nullable=False),
        sa.Column("claimed_until", UtcDateTime, nullable=True),
        sa.Column("message_id", sa.String(300), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("sent_at", UtcDateTime, nullable=True),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_email_outbox"),
        sa.UniqueConstraint(
            "organization_id",
            "message_key",
            "recipient",
            name="uq_email_outbox_organization_id_message_key_recipient",
        ),
    )
    op.create_index(
        "ix_email_outbox_due",
        "email_outbox",
        ["next_attempt_at", "id"],
        sqlite_where=sa.text("status IN ('queued', 'sending')"),
        postgresql_where=sa.text("status IN ('queued', 'sending')"),
    )
    op.create_index("ix_email_outbox_document", "email_outbox", ["document_id"])
    op.create_index("ix_email_outbox_customer", "email_outbox", ["customer_id"])
    op.create_table(
        "email_suppressions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("address", sa.String(254), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_email_suppressions"),
        sa.UniqueConstraint(
            "organization_id",
            "address",
            "reason",
            name="uq_email_suppressions_organization_id_address_reason",
        ),
    )
    op.create_table(
        "organization_email_settings",
        sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("from_address", sa.String(254), nullable=True),
        sa.Column("from_name", sa.String(200), nullable=True),
        sa.Column("reply_to", sa.String(254), nullable=True),
        sa.Column("brand_color", sa.String(7), nullable=True),
        sa.Column("disabled", Json, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("dunning_emails", Json, nullable=True),
        sa.Column("trial_notice_days", sa.Integer, nullable=False, server_default="3"),
        sa.Column("renewal_notice_days", sa.Integer, nullable=False, server_default="14"),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("organization_id", name="pk_organization_email_settings"),
    )


def downgrade() -> None:
    op.drop_table("organization_email_settings")
    op.drop_table("email_suppressions")
    op.drop_index("ix_email_outbox_customer", table_name="email_outbox")
    op.drop_index("ix_email_outbox_document", table_name="email_outbox")
    op.drop_index("ix_email_outbox_due", table_name="email_outbox")
    op.drop_table("email_outbox")
