"""Discount tables (issue 17): coupons, promotion codes, the discounts they put on customers and
subscriptions, every redemption, and the allowances each document carries.

`times_redeemed` on a coupon and a code is the locked counter: a redemption updates it with a guarded
`UPDATE … SET times_redeemed = times_redeemed + 1 WHERE times_redeemed < max_redemptions` in the same
transaction as the redemption row, and a CHECK keeps it within the maximum, so concurrent redemptions
can never exceed it (tests/integration/test_discounts_concurrency.py).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from fiscus.adapters.db.tables import Id, Json, _org, _pk, metadata
from fiscus.adapters.db.types import ExactDecimal, UtcDateTime

_MAX = "max_redemptions IS NULL OR times_redeemed <= max_redemptions"

coupons = Table(
    "coupons",
    metadata,
    _pk(),
    _org(),
    Column("name", String(200), nullable=False),
    Column("percent_off", ExactDecimal, nullable=True),
    # {"EUR": 500, "JPY": 1000}: minor units per currency code
    Column("amounts_off", Json, nullable=False),
    Column("duration", String(16), nullable=False),
    Column("duration_periods", Integer, nullable=True),
    Column("product_ids", Json, nullable=False),
    Column("price_ids", Json, nullable=False),
    # usage metrics (billable_metrics ids): the usage prices charging them are covered
    Column("metric_ids", Json, nullable=False, server_default=text("'[]'")),
    Column("redeem_by", UtcDateTime, nullable=True),
    Column("max_redemptions", Integer, nullable=True),
    Column("times_redeemed", Integer, nullable=False, server_default="0"),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("expired_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("duration IN ('once', 'repeating', 'forever')", name="duration"),
    CheckConstraint("times_redeemed >= 0", name="times_redeemed"),
    CheckConstraint(_MAX, name="max_redemptions"),
)
# `discount_billing.expire_due`: unexpired coupons by redeem-by date, read before every billing run.
Index("ix_coupons_expiry", coupons.c.expired_at, coupons.c.redeem_by, coupons.c.organization_id)

promotion_codes = Table(
    "promotion_codes",
    metadata,
    _pk(),
    _org(),
    Column("coupon_id", Id, ForeignKey("coupons.id"), nullable=False, index=True),
    # stored upper-case: codes are case-insensitive and unique per organisation
    Column("code", String(64), nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("max_redemptions", Integer, nullable=True),
    Column("times_redeemed", Integer, nullable=False, server_default="0"),
    Column("first_purchase_only", Boolean, nullable=False, server_default=text("false")),
    Column("minimum_amount_minor", BigInteger, nullable=True),
    Column("minimum_currency", String(3), nullable=True),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("organization_id", "code"),
    CheckConstraint("times_redeemed >= 0", name="times_redeemed"),
    CheckConstraint(_MAX, name="max_redemptions"),
)

discounts = Table(
    "discounts",
    metadata,
    _pk(),
    _org(),
    Column("coupon_id", Id, ForeignKey("coupons.id"), nullable=False),
    Column("promotion_code_id", Id, ForeignKey("promotion_codes.id"), nullable=True),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    # NULL: on the customer (every subscription and order of theirs); else on that subscription only
    Column("subscription_id", Id, ForeignKey("subscriptions.id"), nullable=True, index=True),
    # the documents it has reduced so far; a once/repeating discount ends when it reaches the coupon's
    Column("periods_applied", Integer, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
    CheckConstraint("status IN ('active', 'ended', 'removed')", name="status"),
    CheckConstraint("periods_applied >= 0", name="periods_applied"),
)

redemptions = Table(
    "redemptions",
    metadata,
    _pk(),
    _org(),
    Column("coupon_id", Id, ForeignKey("coupons.id"), nullable=False, index=True),
    Column("promotion_code_id", Id, ForeignKey("promotion_codes.id"), nullable=True, index=True),
    Column("discount_id", Id, ForeignKey("discounts.id"), nullable=False, unique=True),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False),
    Column("subscription_id", Id, ForeignKey("subscriptions.id"), nullable=True),
    Column("redeemed_at", UtcDateTime, nullable=False),
    # one redemption per code and target: the same code twice on one subscription is refused
    UniqueConstraint("promotion_code_id", "customer_id", "subscription_id"),
)

document_allowances = Table(
    "document_allowances",
    metadata,
    _pk(),
    _org(),
    Column("document_id", Id, ForeignKey("documents.id"), nullable=False, index=True),
    # the line (document_lines.position) it reduces: EN 16931 BG-27 line allowance
    Column("line_position", Integer, nullable=False),
    Column("discount_id", Id, ForeignKey("discounts.id"), nullable=True),
    Column("coupon_id", Id, ForeignKey("coupons.id"), nullable=True),
    # a promotional credit taken as a discount (ADR 0009)
    Column("wallet_grant_id", Id, nullable=True),
    Column("reason", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    CheckConstraint("amount_minor > 0", name="amount"),
    UniqueConstraint("document_id", "line_position", "discount_id"),
)

discount_settings = Table(
    "discount_settings",
    metadata,
    Column("organization_id", Id, ForeignKey("organizations.id"), primary_key=True),
    Column("stacking", String(16), nullable=False, server_default="sequential"),
    CheckConstraint("stacking IN ('sequential', 'none')", name="stacking"),
)

Index("ix_discounts_active", discounts.c.organization_id, discounts.c.customer_id, discounts.c.status)

# --- wallets (prepaid credits, ADR 0009) ---------------------------------------------------------------

LEDGER_KINDS = "kind IN ('granted', 'consumed', 'expired', 'refunded', 'restored')"

wallets = Table(
    "wallets",
    metadata,
    _pk(),
    _org(),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False),
    Column("currency", String(3), nullable=False),
    # Σ remaining of the wallet's grants = Σ its ledger; locked (FOR UPDATE) by every debit
    Column("balance_minor", BigInteger, nullable=False, server_default="0"),
    Column("low_balance_minor", BigInteger, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("customer_id", "currency"),
    CheckConstraint("balance_minor >= 0", name="balance"),
)

wallet_grants = Table(
    "wallet_grants",
    metadata,
    _pk(),
    _org(),
    Column("wallet_id", Id, ForeignKey("wallets.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("remaining_minor", BigInteger, nullable=False),
    # lower first; then the soonest expiry, then the oldest
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("product_ids", Json, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("kind IN ('promotional', 'paid')", name="kind"),
    CheckConstraint("status IN ('active', 'depleted', 'expired', 'refunded')", name="status"),
    CheckConstraint("amount_minor > 0", name="amount"),
    CheckConstraint("remaining_minor >= 0 AND remaining_minor <= amount_minor", name="remaining"),
)
# `discount_billing.expire_due`: active grants by expiry date, read before every billing run.
Index(
    "ix_wallet_grants_expiry",
    wallet_grants.c.status,
    wallet_grants.c.expires_at,
    wallet_grants.c.organization_id,
    wallet_grants.c.wallet_id,
)

wallet_ledger = Table(
    "wallet_ledger",
    metadata,
    _pk(),
    _org(),
    Column("wallet_id", Id, ForeignKey("wallets.id"), nullable=False, index=True),
    Column("grant_id", Id, ForeignKey("wallet_grants.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    # + granted, restored (a voided document's consumption given back); − consumed, expired, refunded.
    # Never updated or deleted.
    Column("amount_minor", BigInteger, nullable=False),
    # indexed: voiding any document looks up the credit it consumed (`wallets.restore_consumed`)
    Column("document_id", Id, ForeignKey("documents.id"), nullable=True, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint(LEDGER_KINDS, name="kind"),
    CheckConstraint("amount_minor <> 0", name="amount"),
)

wallet_topups = Table(
    "wallet_topups",
    metadata,
    _pk(),
    _org(),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    # the top-up invoice (taxed when issued, ADR 0009); paid, it grants `amount_minor` of paid credit
    Column("document_id", Id, ForeignKey("documents.id"), nullable=False, unique=True),
    Column("amount_minor", BigInteger, nullable=False),
    # set once, in the payment's transaction: the unique key keeps a second credit from ever happening
    Column("grant_id", Id, ForeignKey("wallet_grants.id"), nullable=True, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("credited_at", UtcDateTime, nullable=True),
    CheckConstraint("amount_minor > 0", name="amount"),
)
