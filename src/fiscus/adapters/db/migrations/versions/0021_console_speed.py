"""console speed and login throttling: sort indexes on documents, the client address of login attempts

Each column the console's document list sorts on gets an (organization, column, id) index, so a keyset
page reads `limit + 1` entries in order instead of sorting the organisation's documents; the totals of a
filtered set read a covering index (`ix_documents_totals`) instead of the table. Login attempts
keep the client's address (`client_ip`, indexed with the time) so failures are throttled per address as
well as per e-mail.

Revision ID: 0021
Revises: 0024
Create Date: 2026-12-07 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0024"
branch_labels = None
depends_on = None

SORT_INDEXES = {
    "ix_documents_sort_total": "total_minor",
    "ix_documents_sort_created": "created_at",
    "ix_documents_sort_status": "status",
    "ix_documents_sort_currency": "currency",
    "ix_documents_sort_type": "type",
}


TOTALS_COLUMNS = [
    "organization_id",
    "currency",
    "type",
    "status",
    "total_minor",
    "amount_paid_minor",
    "amount_refunded_minor",
    "amount_credited_minor",
]


def upgrade() -> None:
    for name, column in SORT_INDEXES.items():
        op.create_index(name, "documents", ["organization_id", column, "id"])
    op.create_index("ix_documents_totals", "documents", TOTALS_COLUMNS)
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_ip", sa.String(length=45), nullable=True))
        batch_op.create_index("ix_login_attempts_client_ip_at", ["client_ip", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_login_attempts_client_ip_at")
        batch_op.drop_column("client_ip")
    op.drop_index("ix_documents_totals", table_name="documents")
    for name in SORT_INDEXES:
        op.drop_index(name, table_name="documents")
