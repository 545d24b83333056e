"""dashboard indexes: covering indexes for the console dashboard's grouped reads

Documents by (organization, currency, issue date), attempts by (organization, currency, creation),
captures and refunds by (organization, settlement), and a document's attempts by status: each covers
its statement in `queries/dashboard.py`, so a range of 100,000 documents is read from the index alone.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 13:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

INDEXES = {
    "documents": [
        (
            "ix_documents_dashboard",
            ["organization_id", "currency", "issue_date", "type", "status", "total_minor"],
        ),
    ],
    "payment_attempts": [
        (
            "ix_payment_attempts_dashboard",
            ["organization_id", "currency", "created_at", "status", "provider", "document_id"],
        ),
        ("ix_payment_attempts_document_status", ["document_id", "status", "provider"]),
    ],
    "payment_captures": [
        (
            "ix_payment_captures_dashboard",
            ["organization_id", "settled_at", "status", "amount_minor", "attempt_id"],
        ),
    ],
    "payment_refunds": [
        (
            "ix_payment_refunds_dashboard",
            ["organization_id", "settled_at", "status", "amount_minor", "attempt_id"],
        ),
    ],
}


def upgrade() -> None:
    for table, indexes in INDEXES.items():
        for name, columns in indexes:
            op.create_index(name, table, columns)


def downgrade() -> None:
    for table, indexes in INDEXES.items():
        for name, _ in indexes:
            op.drop_index(name, table_name=table)
