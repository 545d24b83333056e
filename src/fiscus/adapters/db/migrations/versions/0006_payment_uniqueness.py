"""payment uniqueness: a provider token is one customer's card across the instance; a provider refund is
recorded once

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 05:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payment_methods", schema=None) as batch_op:
        batch_op.drop_constraint("uq_payment_methods_organization_id_provider_provider_token", type_="unique")
        batch_op.create_unique_constraint(
            op.f("uq_payment_methods_provider_provider_token"), ["provider", "provider_token"]
        )
    with op.batch_alter_table("payment_refunds", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            op.f("uq_payment_refunds_attempt_id_provider_refund_id"), ["attempt_id", "provider_refund_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("payment_refunds", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_payment_refunds_attempt_id_provider_refund_id"), type_="unique")
    with op.batch_alter_table("payment_methods", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_payment_methods_provider_provider_token"), type_="unique")
        batch_op.create_unique_constraint(
            "uq_payment_methods_organization_id_provider_provider_token",
            ["organization_id", "provider", "provider_token"],
        )
