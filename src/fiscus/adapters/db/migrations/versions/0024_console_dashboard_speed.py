"""console dashboard speed: the maintained MRR history, document sums and charge recoveries

`mrr_events` (see `fiscus.adapters.db.tables_mrr`): every customer's MRR movements and every
subscription's paid start and end, written by the subscription services in their transactions; filled
here from the subscriptions and the audit trail by the same reconstruction (`services/mrr_history`).
`document_sums`, `charge_recoveries` and `payment_hours` (see `fiscus.adapters.db.tables_rollups`):
kept by triggers on `documents`, `payment_attempts` and `payment_captures`
(`fiscus.adapters.db.rollup_triggers`, `rollup_payments`), filled here by one statement each.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fiscus.adapters.db.types
from fiscus.adapters.db import rollup_payments, rollup_triggers

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mrr_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("organization_id", _ID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("customer_id", _ID, nullable=False),
        sa.Column("subscription_id", _ID, nullable=True),
        sa.Column("at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mrr_events")),
    )
    op.create_index(
        "ix_mrr_events_range", "mrr_events", ["organization_id", "currency", "at", "kind", "amount_minor"]
    )
    op.create_index("ix_mrr_events_customer", "mrr_events", ["organization_id", "customer_id"])
    op.create_table(
        "document_sums",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("organization_id", _ID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("due_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_sums")),
    )
    op.create_index(
        "ix_document_sums_key",
        "document_sums",
        ["organization_id", "currency", "issue_date", "type", "status", "due_date"],
    )
    op.create_table(
        "charge_recoveries",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("organization_id", _ID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("document_id", _ID, nullable=False),
        sa.Column("attempt_id", _ID, nullable=False),
        sa.Column("created_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("recovered", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge_recoveries")),
        sa.UniqueConstraint("attempt_id", name=op.f("uq_charge_recoveries_attempt_id")),
    )
    op.create_index(
        "ix_charge_recoveries_range",
        "charge_recoveries",
        ["organization_id", "currency", "created_at", "recovered"],
    )
    op.create_index("ix_charge_recoveries_document", "charge_recoveries", ["document_id"])
    op.create_table(
        "payment_hours",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("organization_id", _ID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("hour", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("succeeded", sa.BigInteger(), nullable=False),
        sa.Column("captured_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_hours")),
    )
    op.create_index(
        "ix_payment_hours_range",
        "payment_hours",
        ["organization_id", "currency", "hour", "attempts", "succeeded", "captured_minor"],
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in [*rollup_triggers.BACKFILL, rollup_payments.backfill(postgres)]:
        op.execute(statement)
    if postgres:
        triggers = [*rollup_triggers.PG_STATEMENTS, *rollup_payments.PG_STATEMENTS]
    else:
        triggers = [*rollup_triggers.SQLITE_TRIGGERS, *rollup_payments.SQLITE_TRIGGERS]
    for statement in triggers:
        op.execute(statement)
    # The backfill runs the application's reconstruction (MRR is exact Decimal arithmetic over prices,
    # quantities and the audit trail's item lists, which SQL on SQLite cannot do).
    from fiscus.services.mrr_history import rebuild

    rebuild(op.get_bind())


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        drops = [*rollup_payments.PG_DROP, *rollup_triggers.PG_DROP]
    else:
        drops = [*rollup_payments.SQLITE_DROP, *rollup_triggers.SQLITE_DROP]
    for statement in drops:
        op.execute(statement)
    op.drop_index("ix_payment_hours_range", table_name="payment_hours")
    op.drop_table("payment_hours")
    op.drop_index("ix_charge_recoveries_document", table_name="charge_recoveries")
    op.drop_index("ix_charge_recoveries_range", table_name="charge_recoveries")
    op.drop_table("charge_recoveries")
    op.drop_index("ix_document_sums_key", table_name="document_sums")
    op.drop_table("document_sums")
    op.drop_index("ix_mrr_events_customer", table_name="mrr_events")
    op.drop_index("ix_mrr_events_range", table_name="mrr_events")
    op.drop_table("mrr_events")
