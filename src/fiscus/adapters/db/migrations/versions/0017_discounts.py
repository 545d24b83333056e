"""discounts (issue 17): coupons, promotion codes, discounts, redemptions, allowances, wallets

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 13:35:40.657518
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import fiscus.adapters.db.types

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "coupons",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("percent_off", fiscus.adapters.db.types.ExactDecimal(length=64), nullable=True),
        sa.Column(
            "amounts_off",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("duration", sa.String(length=16), nullable=False),
        sa.Column("duration_periods", sa.Integer(), nullable=True),
        sa.Column(
            "product_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "price_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("redeem_by", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("max_redemptions", sa.Integer(), nullable=True),
        sa.Column("times_redeemed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("(true)"), nullable=False),
        sa.Column("expired_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("duration IN ('once', 'repeating', 'forever')", name=op.f("ck_coupons_duration")),
        sa.CheckConstraint(
            "max_redemptions IS NULL OR times_redeemed <= max_redemptions",
            name=op.f("ck_coupons_max_redemptions"),
        ),
        sa.CheckConstraint("times_redeemed >= 0", name=op.f("ck_coupons_times_redeemed")),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_coupons_organization_id_organizations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons")),
    )
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_coupons_organization_id"), ["organization_id"], unique=False)

    op.create_table(
        "discount_settings",
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("stacking", sa.String(length=16), server_default="sequential", nullable=False),
        sa.CheckConstraint("stacking IN ('sequential', 'none')", name=op.f("ck_discount_settings_stacking")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_discount_settings_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_discount_settings")),
    )
    op.create_table(
        "promotion_codes",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("coupon_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("(true)"), nullable=False),
        sa.Column("expires_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("max_redemptions", sa.Integer(), nullable=True),
        sa.Column("times_redeemed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("first_purchase_only", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("minimum_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("minimum_currency", sa.String(length=3), nullable=True),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "max_redemptions IS NULL OR times_redeemed <= max_redemptions",
            name=op.f("ck_promotion_codes_max_redemptions"),
        ),
        sa.CheckConstraint("times_redeemed >= 0", name=op.f("ck_promotion_codes_times_redeemed")),
        sa.ForeignKeyConstraint(
            ["coupon_id"], ["coupons.id"], name=op.f("fk_promotion_codes_coupon_id_coupons")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_promotion_codes_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_promotion_codes_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotion_codes")),
        sa.UniqueConstraint("organization_id", "code", name=op.f("uq_promotion_codes_organization_id_code")),
    )
    with op.batch_alter_table("promotion_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_promotion_codes_coupon_id"), ["coupon_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_promotion_codes_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "wallets",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("low_balance_minor", sa.BigInteger(), nullable=True),
        sa.Column("created_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("balance_minor >= 0", name=op.f("ck_wallets_balance")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_wallets_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_wallets_organization_id_organizations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallets")),
        sa.UniqueConstraint("customer_id", "currency", name=op.f("uq_wallets_customer_id_currency")),
    )
    with op.batch_alter_table("wallets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wallets_organization_id"), ["organization_id"], unique=False)

    op.create_table(
        "discounts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("coupon_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("promotion_code_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscription_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("periods_applied", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('active', 'ended', 'removed')", name=op.f("ck_discounts_status")),
        sa.CheckConstraint("periods_applied >= 0", name=op.f("ck_discounts_periods_applied")),
        sa.ForeignKeyConstraint(["coupon_id"], ["coupons.id"], name=op.f("fk_discounts_coupon_id_coupons")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_discounts_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_discounts_organization_id_organizations")
        ),
        sa.ForeignKeyConstraint(
            ["promotion_code_id"],
            ["promotion_codes.id"],
            name=op.f("fk_discounts_promotion_code_id_promotion_codes"),
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["subscriptions.id"], name=op.f("fk_discounts_subscription_id_subscriptions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discounts")),
    )
    with op.batch_alter_table("discounts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_discounts_active", ["organization_id", "customer_id", "status"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_discounts_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_discounts_organization_id"), ["organization_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_discounts_subscription_id"), ["subscription_id"], unique=False)

    op.create_table(
        "wallet_grants",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("wallet_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("remaining_minor", sa.BigInteger(), nullable=False),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expires_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column(
            "product_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('promotional', 'paid')", name=op.f("ck_wallet_grants_kind")),
        sa.CheckConstraint(
            "status IN ('active', 'depleted', 'expired', 'refunded')", name=op.f("ck_wallet_grants_status")
        ),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_wallet_grants_amount")),
        sa.CheckConstraint(
            "remaining_minor >= 0 AND remaining_minor <= amount_minor",
            name=op.f("ck_wallet_grants_remaining"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_wallet_grants_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_wallet_grants_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_grants")),
    )
    with op.batch_alter_table("wallet_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_wallet_grants_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_wallet_grants_wallet_id"), ["wallet_id"], unique=False)

    op.create_table(
        "document_allowances",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("document_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("line_position", sa.Integer(), nullable=False),
        sa.Column("discount_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("coupon_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("wallet_grant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_document_allowances_amount")),
        sa.ForeignKeyConstraint(
            ["coupon_id"], ["coupons.id"], name=op.f("fk_document_allowances_coupon_id_coupons")
        ),
        sa.ForeignKeyConstraint(
            ["discount_id"], ["discounts.id"], name=op.f("fk_document_allowances_discount_id_discounts")
        ),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name=op.f("fk_document_allowances_document_id_documents")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_document_allowances_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_allowances")),
        sa.UniqueConstraint(
            "document_id",
            "line_position",
            "discount_id",
            name=op.f("uq_document_allowances_document_id_line_position_discount_id"),
        ),
    )
    with op.batch_alter_table("document_allowances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_document_allowances_document_id"), ["document_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_document_allowances_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "redemptions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("coupon_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("promotion_code_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("discount_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscription_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("redeemed_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["coupon_id"], ["coupons.id"], name=op.f("fk_redemptions_coupon_id_coupons")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_redemptions_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["discount_id"], ["discounts.id"], name=op.f("fk_redemptions_discount_id_discounts")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_redemptions_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["promotion_code_id"],
            ["promotion_codes.id"],
            name=op.f("fk_redemptions_promotion_code_id_promotion_codes"),
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_redemptions_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redemptions")),
        sa.UniqueConstraint("discount_id", name=op.f("uq_redemptions_discount_id")),
        sa.UniqueConstraint(
            "promotion_code_id",
            "customer_id",
            "subscription_id",
            name=op.f("uq_redemptions_promotion_code_id_customer_id_subscription_id"),
        ),
    )
    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_redemptions_coupon_id"), ["coupon_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_redemptions_organization_id"), ["organization_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_redemptions_promotion_code_id"), ["promotion_code_id"], unique=False
        )

    op.create_table(
        "wallet_ledger",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("wallet_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("grant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("document_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", fiscus.adapters.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('granted', 'consumed', 'expired', 'refunded')", name=op.f("ck_wallet_ledger_kind")
        ),
        sa.CheckConstraint("amount_minor <> 0", name=op.f("ck_wallet_ledger_amount")),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name=op.f("fk_wallet_ledger_document_id_documents")
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["wallet_grants.id"], name=op.f("fk_wallet_ledger_grant_id_wallet_grants")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_wallet_ledger_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_wallet_ledger_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_ledger")),
    )
    with op.batch_alter_table("wallet_ledger", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_wallet_ledger_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_wallet_ledger_wallet_id"), ["wallet_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("wallet_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_ledger_wallet_id"))
        batch_op.drop_index(batch_op.f("ix_wallet_ledger_organization_id"))

    op.drop_table("wallet_ledger")
    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_redemptions_promotion_code_id"))
        batch_op.drop_index(batch_op.f("ix_redemptions_organization_id"))
        batch_op.drop_index(batch_op.f("ix_redemptions_coupon_id"))

    op.drop_table("redemptions")
    with op.batch_alter_table("document_allowances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_allowances_organization_id"))
        batch_op.drop_index(batch_op.f("ix_document_allowances_document_id"))

    op.drop_table("document_allowances")
    with op.batch_alter_table("wallet_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_grants_wallet_id"))
        batch_op.drop_index(batch_op.f("ix_wallet_grants_organization_id"))

    op.drop_table("wallet_grants")
    with op.batch_alter_table("discounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_discounts_subscription_id"))
        batch_op.drop_index(batch_op.f("ix_discounts_organization_id"))
        batch_op.drop_index(batch_op.f("ix_discounts_customer_id"))
        batch_op.drop_index("ix_discounts_active")

    op.drop_table("discounts")
    with op.batch_alter_table("wallets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallets_organization_id"))

    op.drop_table("wallets")
    with op.batch_alter_table("promotion_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_promotion_codes_organization_id"))
        batch_op.drop_index(batch_op.f("ix_promotion_codes_coupon_id"))

    op.drop_table("promotion_codes")
    op.drop_table("discount_settings")
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coupons_organization_id"))

    op.drop_table("coupons")
