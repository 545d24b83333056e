"""console: the documents list sorted by buyer name and by amount due from an index

Two expression indexes on `documents` (`adapters/db/tables_console_sort.py`): `(organization_id,
buyer ->> 'name', id)` and `(organization_id, <amount due>, id)`, the amount due being the CASE over the
row's own total, paid, refunded and credited amounts and its type and status. The database computes
them from each row as it is written, so every existing document is covered when the index is built (no
backfill) and every writer keeps them without knowing (no column to forget). The expressions are
repeated here as text so this migration keeps building the same indexes whatever the module says later.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

_OWED = "total_minor - amount_paid_minor + amount_refunded_minor - amount_credited_minor"
INDEXES = {
    "ix_documents_sort_amount_due": (
        f"(CASE WHEN type <> 'credit_note' AND status IN ('open', 'uncollectible') AND {_OWED} > 0 "
        f"THEN {_OWED} ELSE 0 END)"
    ),
    "ix_documents_sort_buyer": "(buyer ->> 'name')",
}


def upgrade() -> None:
    for name, expression in INDEXES.items():
        op.create_index(name, "documents", ["organization_id", sa.text(expression), "id"])


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="documents")
