"""test-mode secrets that can be shown again: api_keys.secret (test keys only), customer_tokens.secret

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret", sa.String(length=64), nullable=True))
        batch_op.create_check_constraint("secret_test_only", "mode = 'test' OR secret IS NULL")
    with op.batch_alter_table("customer_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customer_tokens", schema=None) as batch_op:
        batch_op.drop_column("secret")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_api_keys_secret_test_only"), type_="check")
        batch_op.drop_column("secret")
