"""The schema. Every table carries `organization_id` and every query filters on it (tenant isolation,
and the distribution key should PostgreSQL ever be sharded by tenant).

Settled money is `*_minor` BIGINT in the document's currency; unit prices, quantities and rates are
`ExactDecimal`; instants are `UtcDateTime`; calendar dates (issue, due) are DATE in the issuer's zone.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from fiscus.adapters.db.types import ExactDecimal, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = BigInteger().with_variant(Integer(), "sqlite")
"""Surrogate keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite."""
Json = JSON().with_variant(JSONB(), "postgresql")


def _pk() -> Column[int]:
    return Column("id", Id, primary_key=True, autoincrement=True)


def _org() -> Column[int]:
    return Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False, index=True)


organizations = Table(
    "organizations",
    metadata,
    _pk(),
    Column("slug", String(64), nullable=False, unique=True),
    Column("legal_name", String(200), nullable=False),
    Column("email", String(254), nullable=True),
    Column("address_line1", String(200), nullable=False, server_default=""),
    Column("address_line2", String(200), nullable=False, server_default=""),
    Column("city", String(100), nullable=False, server_default=""),
    Column("postal_code", String(20), nullable=False, server_default=""),
    Column("country", String(2), nullable=False),
    Column("vat_id", String(32), nullable=True),
    Column("tax_id", String(32), nullable=True),
    Column("timezone", String(64), nullable=False),
    Column("default_currency", String(3), nullable=False),
    Column("locale", String(16), nullable=False, server_default="en"),
    Column("vat_registered", Boolean, nullable=False),
    Column("tax_rounding", String(16), nullable=False, server_default="document"),
    Column("subscription_document", String(16), nullable=False, server_default="invoice"),
    Column("order_document", String(16), nullable=False, server_default="invoice"),
    Column("auto_issue", Boolean, nullable=False, server_default=text("true")),
    Column("payment_terms_days", Integer, nullable=False, server_default="14"),
    # EN 16931: issue PDFs as PDF/A-3b with a Factur-X (CII) XML attached.
    Column("facturx_enabled", Boolean, nullable=False, server_default=text("false")),
    # A test-mode organisation is a sandbox: only `fsk_test_` keys reach it, only `fsk_live_` keys a live one.
    Column("mode", String(8), nullable=False, server_default="live"),
    # Payments: charge issued documents automatically from the customer's method; sale (one step) or
    # authorise now and capture later; the retry schedule (days after the first failure) and what happens
    # after its last failure.
    Column("auto_collect", Boolean, nullable=False, server_default=text("true")),
    Column("capture_mode", String(16), nullable=False, server_default="sale"),
    Column("retry_days", Json, nullable=False, server_default=text("'[1, 3, 5, 7]'")),
    Column("retry_final_action", String(24), nullable=False, server_default="leave_open"),
    Column("created_at", UtcDateTime, nullable=False),
    # Settings (migration 0008): what the next document's seller snapshot carries.
    Column("trading_name", String(200), nullable=True),
    Column("region", String(100), nullable=False, server_default=""),
    # "a4" or "letter"; NULL follows the country (US, CA, MX… print on Letter).
    Column("paper_size", String(8), nullable=True),
    # [{label, iban, bic, account_number, routing_number, bank_name, currency}], in print order.
    Column("bank_accounts", Json, nullable=False, server_default=text("'[]'")),
    # Footer / legal text per locale: {"en": "...", "bg": "..."}.
    Column("footers", Json, nullable=False, server_default=text("'{}'")),
    # The current logo (organization_logos.sha256); documents freeze the hash, the bytes stay stored.
    Column("logo_sha256", String(64), nullable=True),
    # A test-mode sandbox made alongside a live organisation (`fiscus init`) points at it.
    Column("sandbox_of", Id, ForeignKey("organizations.id"), nullable=True),
    Column("updated_at", UtcDateTime, nullable=True),
    # Migration 0009: cancelling a subscription now voids ("void") or credits ("credit_note") a document
    # already issued for a later period; a void only while nothing was paid and no card payment is in flight.
    Column("cancel_issued_ahead", String(16), nullable=False, server_default="credit_note"),
    # Issue 17: customers may enter a promotion code in the portal and on the hosted page.
    Column("customer_promotion_codes", Boolean, nullable=False, server_default=text("false")),
    CheckConstraint("paper_size IN ('a4', 'letter')", name="paper_size"),
    CheckConstraint("capture_mode IN ('sale', 'authorize')", name="capture_mode"),
    CheckConstraint(
        "retry_final_action IN ('leave_open', 'mark_uncollectible', 'cancel_subscription')",
        name="retry_final_action",
    ),
    CheckConstraint("subscription_document IN ('invoice', 'proforma')", name="subscription_document"),
    CheckConstraint("order_document IN ('invoice', 'proforma')", name="order_document"),
    CheckConstraint("tax_rounding IN ('document', 'line')", name="tax_rounding"),
)

number_series = Table(
    "number_series",
    metadata,
    _pk(),
    _org(),
    Column("document_type", String(16), nullable=False),
    Column("series", String(32), nullable=False),
    Column("format", String(64), nullable=False),
    # The next value to hand out. Advanced only by UPDATE … RETURNING inside the issuing transaction,
    # so a rollback gives the number back: gapless by construction (no database sequence).
    Column("next_value", BigInteger, nullable=False),
    Column("start_value", BigInteger, nullable=False),
    UniqueConstraint("organization_id", "document_type", "series"),
    CheckConstraint("next_value >= start_value AND start_value >= 1", name="next_value"),
)

tax_rates = Table(
    "tax_rates",
    metadata,
    _pk(),
    _org(),
    Column("country", String(2), nullable=False),
    Column("category", String(16), nullable=False),
    Column("rate", ExactDecimal, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    UniqueConstraint("organization_id", "country", "category"),
)

products = Table(
    "products",
    metadata,
    _pk(),
    _org(),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("slug", String(200), nullable=False),
    Column("comment", Text, nullable=False, server_default=""),
    Column("slogan", Text, nullable=False, server_default=""),
    Column("type", String(32), nullable=False, server_default="integration"),
    Column("detail", Text, nullable=False, server_default=""),
    Column("icon", String(500), nullable=False, server_default=""),
    Column("image", String(500), nullable=False, server_default=""),
    Column("image_alt", String(500), nullable=False, server_default=""),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    Column("extra", Json, nullable=True),
    Column("demo_enabled", Boolean, nullable=False, server_default=text("false")),
    Column("demo_duration", String(32), nullable=False, server_default=""),
    Column("tags", Json, nullable=False),
    Column("modules", Json, nullable=False),
    Column("visible", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("organization_id", "code"),
)

variants = Table(
    "variants",
    metadata,
    _pk(),
    _org(),
    Column("product_id", Id, ForeignKey("products.id"), nullable=False, index=True),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("limits", Json, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("organization_id", "product_id", "code"),
)

prices = Table(
    "prices",
    metadata,
    _pk(),
    _org(),
    Column("variant_id", Id, ForeignKey("variants.id"), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    # Immutable once created (a new price replaces an old one), so billed amounts never drift.
    Column("unit_amount", ExactDecimal, nullable=False),
    Column("interval", String(8), nullable=True),
    Column("interval_count", Integer, nullable=False, server_default="1"),
    Column("tax_inclusive", Boolean, nullable=False, server_default=text("false")),
    Column("tax_category", String(16), nullable=False, server_default="standard"),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint(
        "interval IS NULL OR interval IN ('day', 'week', 'month', 'quarter', 'year')", name="interval"
    ),
    CheckConstraint("interval_count >= 1", name="interval_count"),
)

customers = Table(
    "customers",
    metadata,
    _pk(),
    _org(),
    Column("name", String(200), nullable=False),
    Column("email", String(254), nullable=False),
    Column("address_line1", String(200), nullable=False, server_default=""),
    Column("address_line2", String(200), nullable=False, server_default=""),
    Column("city", String(100), nullable=False, server_default=""),
    Column("postal_code", String(20), nullable=False, server_default=""),
    Column("country", String(2), nullable=False),
    Column("vat_id", String(32), nullable=True),
    Column("locale", String(16), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    # No foreign key: payment_methods refers back to customers; the service checks the owner.
    Column("default_payment_method_id", Id, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The customer's id in the organisation's own system (usage events may name it; migration 0019).
    Column("external_id", String(128), nullable=True),
    Index("uq_customers_external_id", "organization_id", "external_id", unique=True),
)

BILLABLE = "status IN ('trialing', 'active', 'past_due')"
"""The billable-status predicate as literal SQL: the partial index `ix_subscriptions_due` is declared
with this exact text, and SQLite uses a partial index only for a query that repeats its predicate
(bound parameters would not match)."""

subscriptions = Table(
    "subscriptions",
    metadata,
    _pk(),
    _org(),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("interval", String(8), nullable=False),
    Column("interval_count", Integer, nullable=False),
    Column("billing_anchor", UtcDateTime, nullable=False),
    Column("start_at", UtcDateTime, nullable=False),
    Column("trial_end", UtcDateTime, nullable=True),
    # Meaning: the start of the first period not yet billed. A period is due once this is ≤ the
    # run's instant; billing it advances this to the period's end in the same transaction.
    Column("next_period_start", UtcDateTime, nullable=False),
    Column("current_period_start", UtcDateTime, nullable=True),
    Column("current_period_end", UtcDateTime, nullable=True),
    Column("cancel_at", UtcDateTime, nullable=True),
    Column("canceled_at", UtcDateTime, nullable=True),
    Column("ended_at", UtcDateTime, nullable=True),
    # Overrides the customer's default payment method for this subscription's documents.
    Column("payment_method_id", Id, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("status IN ('trialing', 'active', 'past_due', 'canceled', 'ended')", name="status"),
    Index(
        "ix_subscriptions_due",
        "next_period_start",
        "id",
        sqlite_where=text(BILLABLE),
        postgresql_where=text(BILLABLE),
    ),
)

subscription_items = Table(
    "subscription_items",
    metadata,
    _pk(),
    _org(),
    Column("subscription_id", Id, ForeignKey("subscriptions.id"), nullable=False, index=True),
    Column("price_id", Id, ForeignKey("prices.id"), nullable=False),
    Column("quantity", ExactDecimal, nullable=False),
)

DISCARDED = "status = 'void' AND sequence IS NULL"
"""A draft discarded unissued: void, never numbered (its subscription was cancelled before it was issued)."""

documents = Table(
    "documents",
    metadata,
    _pk(),
    _org(),
    Column("type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("series", String(32), nullable=False),
    # Assigned at issue from number_series, never at draft. `sequence` is the gapless integer,
    # `number` its printed form.
    Column("sequence", BigInteger, nullable=True),
    Column("number", String(64), nullable=True),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("subscription_id", Id, ForeignKey("subscriptions.id"), nullable=True, index=True),
    Column("currency", String(3), nullable=False),
    Column("subtotal_minor", BigInteger, nullable=False),
    Column("tax_minor", BigInteger, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("amount_paid_minor", BigInteger, nullable=False, server_default="0"),
    Column("period_start", UtcDateTime, nullable=True),
    Column("period_end", UtcDateTime, nullable=True),
    Column("issue_date", Date, nullable=True),
    Column("issued_at", UtcDateTime, nullable=True),
    Column("due_date", Date, nullable=True),
    Column("seller", Json, nullable=False),
    Column("buyer", Json, nullable=False),
    Column("notes", Json, nullable=False),
    Column("converted_from_id", Id, ForeignKey("documents.id"), nullable=True, unique=True),
    # Credit notes: the invoice corrected, why, and what the credit does (reduce what is due, go with a
    # refund, or become customer credit). Invoices: the sum of their issued credit notes.
    Column("corrected_document_id", Id, ForeignKey("documents.id"), nullable=True, index=True),
    # The open proforma this one replaced (a customer's promotion code, `promotion_checkout`; 0028):
    # set as it is created, never changed; the replaced one's successor is found through it.
    Column("replaces_id", Id, nullable=True),
    Column("reason", Text, nullable=True),
    Column("credit_disposition", String(16), nullable=True),
    Column("amount_credited_minor", BigInteger, nullable=False, server_default="0"),
    # Payments: `amount_paid_minor` is every capture received (gross), `amount_refunded_minor` what went
    # back; the next automatic charge or retry is due at `next_payment_attempt_at` (NULL: none planned).
    Column("amount_refunded_minor", BigInteger, nullable=False, server_default="0"),
    Column("next_payment_attempt_at", UtcDateTime, nullable=True),
    Column("billing_run_id", Id, nullable=True),
    Column("paid_at", UtcDateTime, nullable=True),
    Column("voided_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # Moves by one with every UPDATE of the row (rendered into the statement by SQLAlchemy): what a
    # cached rendering is keyed by, exact even when two changes share an instant.
    Column("revision", Integer, nullable=False, server_default="1", onupdate=literal_column("revision") + 1),
    UniqueConstraint("organization_id", "type", "series", "sequence"),
    CheckConstraint("type IN ('proforma', 'invoice', 'credit_note')", name="type"),
    CheckConstraint(
        "status IN ('draft', 'open', 'paid', 'void', 'uncollectible', 'converted')", name="status"
    ),
    CheckConstraint("total_minor = subtotal_minor + tax_minor", name="total"),
    # A draft has no number, an issued document has one; a draft discarded unissued is void unnumbered.
    CheckConstraint(
        "(status = 'draft') = (sequence IS NULL) OR (status = 'void' AND sequence IS NULL)",
        name="numbered_iff_issued",
    ),
    # Covers the page-number dialects' id-only seek (type and status read from the index, ADR 0004).
    Index("ix_documents_org_seek", "organization_id", "id", "type", "status"),
    # Covers the dialects' counts and filtered pages (type/status per organisation) without row lookups.
    Index("ix_documents_listing", "organization_id", "type", "status", "id"),
    # The console's sortable columns: a keyset page on (column, id) reads the index in order.
    Index("ix_documents_sort_total", "organization_id", "total_minor", "id"),
    Index("ix_documents_sort_created", "organization_id", "created_at", "id"),
    Index("ix_documents_sort_status", "organization_id", "status", "id"),
    Index("ix_documents_sort_currency", "organization_id", "currency", "id"),
    Index("ix_documents_sort_type", "organization_id", "type", "id"),
    Index("ix_documents_replaces", "replaces_id", unique=True),
    # Drafts discarded unissued (void, never numbered; migration 0028), which issued-only lists leave out.
    Index(
        "ix_documents_discarded",
        "organization_id",
        "id",
        sqlite_where=text(DISCARDED),
        postgresql_where=text(DISCARDED),
    ),
    # Covers the console's totals of a filtered set (count, total and due per currency and type): an
    # index-only read in group order instead of a pass over the table.
    Index(
        "ix_documents_totals",
        "organization_id",
        "currency",
        "type",
        "status",
        "total_minor",
        "amount_paid_minor",
        "amount_refunded_minor",
        "amount_credited_minor",
    ),
    Index(
        "ix_documents_collection_due",
        "next_payment_attempt_at",
        sqlite_where=text("next_payment_attempt_at IS NOT NULL"),
        postgresql_where=text("next_payment_attempt_at IS NOT NULL"),
    ),
)

document_lines = Table(
    "document_lines",
    metadata,
    _pk(),
    _org(),
    Column("document_id", Id, ForeignKey("documents.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("description", Text, nullable=False),
    Column("product_id", Id, ForeignKey("products.id"), nullable=True),
    Column("variant_id", Id, ForeignKey("variants.id"), nullable=True),
    Column("price_id", Id, ForeignKey("prices.id"), nullable=True),
    Column("subscription_period_id", Id, nullable=True),
    Column("order_id", Id, nullable=True),
    Column("period_start", UtcDateTime, nullable=True),
    Column("period_end", UtcDateTime, nullable=True),
    Column("quantity", ExactDecimal, nullable=False),
    Column("unit_price", ExactDecimal, nullable=False),
    Column("ratio", String(64), nullable=False, server_default="1"),
    Column("tax_inclusive", Boolean, nullable=False),
    Column("tax_treatment", String(16), nullable=False),
    Column("tax_rate", ExactDecimal, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("tax_minor", BigInteger, nullable=False),
    UniqueConstraint("document_id", "position"),
)

document_taxes = Table(
    "document_taxes",
    metadata,
    _pk(),
    _org(),
    Column("document_id", Id, ForeignKey("documents.id"), nullable=False, index=True),
    Column("treatment", String(16), nullable=False),
    Column("rate", ExactDecimal, nullable=False),
    Column("base_minor", BigInteger, nullable=False),
    Column("tax_minor", BigInteger, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
)

subscription_periods = Table(
    "subscription_periods",
    metadata,
    _pk(),
    _org(),
    Column("subscription_id", Id, ForeignKey("subscriptions.id"), nullable=False),
    Column("period_start", UtcDateTime, nullable=False),
    Column("period_end", UtcDateTime, nullable=False),
    Column("document_id", Id, ForeignKey("documents.id"), nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    # The backstop of "one period is billed once": a second document for the same period cannot exist.
    UniqueConstraint("subscription_id", "period_start"),
    CheckConstraint("period_end > period_start", name="ordered"),
)

pending_items = Table(
    "pending_items",
    metadata,
    _pk(),
    _org(),
    Column("subscription_id", Id, ForeignKey("subscriptions.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("description", Text, nullable=False),
    Column("price_id", Id, ForeignKey("prices.id"), nullable=False),
    Column("quantity", ExactDecimal, nullable=False),
    Column("ratio", String(64), nullable=False),
    Column("sign", Integer, nullable=False),
    Column("period_start", UtcDateTime, nullable=False),
    Column("period_end", UtcDateTime, nullable=False),
    Column("document_id", Id, ForeignKey("documents.id"), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("sign IN (-1, 1)", name="sign"),
)

PENDING = "status = 'pending'"
"""Rows not processed yet, as literal SQL shared by the partial indexes and the claims (see BILLABLE)."""

orders = Table(
    "orders",
    metadata,
    _pk(),
    _org(),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("billed_at", UtcDateTime, nullable=True),
    CheckConstraint("status IN ('pending', 'billed', 'canceled')", name="status"),
    Index(
        "ix_orders_pending",
        "id",
        sqlite_where=text(PENDING),
        postgresql_where=text(PENDING),
    ),
)

order_items = Table(
    "order_items",
    metadata,
    _pk(),
    _org(),
    Column("order_id", Id, ForeignKey("orders.id"), nullable=False, index=True),
    Column("price_id", Id, ForeignKey("prices.id"), nullable=False),
    Column("quantity", ExactDecimal, nullable=False),
)

document_orders = Table(
    "document_orders",
    metadata,
    Column("document_id", Id, ForeignKey("documents.id"), primary_key=True),
    Column("order_id", Id, ForeignKey("orders.id"), primary_key=True),
    _org(),
    Index("ix_document_orders_order", "order_id"),
)

audit_events = Table(
    "audit_events",
    metadata,
    _pk(),
    _org(),
    Column("entity_type", String(32), nullable=False),
    Column("entity_id", Id, nullable=False),
    Column("action", String(32), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("before", Json, nullable=True),
    Column("after", Json, nullable=True),
    Index("ix_audit_events_entity", "organization_id", "entity_type", "entity_id"),
)

outbox_events = Table(
    "outbox_events",
    metadata,
    _pk(),
    _org(),
    Column("type", String(64), nullable=False),
    Column("entity_type", String(32), nullable=False),
    Column("entity_id", Id, nullable=False),
    Column("payload", Json, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # Set once the event has been fanned out into webhook_deliveries (one per matching endpoint).
    Column("dispatched_at", UtcDateTime, nullable=True),
    Index(
        "ix_outbox_events_undispatched",
        "id",
        sqlite_where=text("dispatched_at IS NULL"),
        postgresql_where=text("dispatched_at IS NULL"),
    ),
)

billing_runs = Table(
    "billing_runs",
    metadata,
    _pk(),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=True),
    Column("at", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("documents_created", Integer, nullable=False, server_default="0"),
    Column("subscriptions_billed", Integer, nullable=False, server_default="0"),
    Column("orders_billed", Integer, nullable=False, server_default="0"),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("totals", Json, nullable=False),
    Column("expected", Integer, nullable=False, server_default="0"),
    Column("requested_by", String(100), nullable=True),
    CheckConstraint("status IN ('pending', 'running', 'finished', 'failed')", name="status"),
)

# --- access: organisation API keys and customer tokens -------------------------------------------

api_keys = Table(
    "api_keys",
    metadata,
    _pk(),
    _org(),
    Column("name", String(100), nullable=False),
    Column("mode", String(8), nullable=False),
    # What is shown in lists ("fsk_live_AbCd…"); the secret itself is stored only as its SHA-256.
    Column("prefix", String(32), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    # A test-mode key's secret, kept so it can be shown again (test data only, as Stripe's dashboard
    # does); a live key's is never stored, which the database enforces.
    Column("secret", String(64), nullable=True),
    CheckConstraint("mode IN ('live', 'test')", name="mode"),
    CheckConstraint("mode = 'test' OR secret IS NULL", name="secret_test_only"),
)

admin_keys = Table(
    "admin_keys",
    metadata,
    _pk(),
    # Platform-level credentials (`fak_…`): manage organisations, reach no organisation's data.
    Column("name", String(100), nullable=False),
    Column("prefix", String(32), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
)

customer_tokens = Table(
    "customer_tokens",
    metadata,
    _pk(),
    _org(),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("prefix", String(32), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    # Kept only for tokens of test-mode organisations (services/access.py), like test keys.
    Column("secret", String(64), nullable=True),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    _pk(),
    _org(),
    Column("key", String(255), nullable=False),
    Column("method", String(8), nullable=False),
    Column("path", String(500), nullable=False),
    # SHA-256 of the raw request body: the same key with other bytes is a mismatch (422).
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("response_status", Integer, nullable=True),
    Column("response_body", Text, nullable=True),
    Column("response_content_type", String(100), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("locked_until", UtcDateTime, nullable=True),
    UniqueConstraint("organization_id", "key"),
    CheckConstraint("status IN ('in_progress', 'done')", name="status"),
)

# --- outbound webhooks -----------------------------------------------------------------------------

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    _pk(),
    _org(),
    Column("url", String(2000), nullable=False),
    Column("description", String(500), nullable=False, server_default=""),
    Column("event_types", Json, nullable=False),
    Column("secret", String(100), nullable=False),
    # Secret rotation: deliveries are signed with both secrets until the old one expires.
    Column("previous_secret", String(100), nullable=True),
    Column("previous_secret_expires_at", UtcDateTime, nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    _pk(),
    _org(),
    Column("endpoint_id", Id, ForeignKey("webhook_endpoints.id"), nullable=False, index=True),
    Column("event_id", Id, ForeignKey("outbox_events.id"), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("last_attempt_at", UtcDateTime, nullable=True),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("endpoint_id", "event_id"),
    CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
    Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        sqlite_where=text(PENDING),
        postgresql_where=text(PENDING),
    ),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    _pk(),
    _org(),
    Column("delivery_id", Id, ForeignKey("webhook_deliveries.id"), nullable=False, index=True),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("response_body", Text, nullable=True),
)


# --- documents: rendered files and customer credit -----------------------------------------------

document_files = Table(
    "document_files",
    metadata,
    _pk(),
    _org(),
    Column("document_id", Id, ForeignKey("documents.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    # Rendered once after issue (never inside the issuing transaction) and never again: the bytes'
    # SHA-256 is recorded, and re-rendering the same document must give the same bytes.
    Column("sha256", String(64), nullable=False),
    Column("path", String(500), nullable=False),
    Column("size", Integer, nullable=False),
    Column("template_version", String(32), nullable=False),
    Column("rendered_at", UtcDateTime, nullable=False),
    UniqueConstraint("document_id", "kind"),
)

customer_credits = Table(
    "customer_credits",
    metadata,
    _pk(),
    _org(),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    # A ledger: + credit granted (by a credit note), - credit applied (to an invoice). Balance = sum.
    Column("amount_minor", BigInteger, nullable=False),
    Column("document_id", Id, ForeignKey("documents.id"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)


# --- payments ------------------------------------------------------------------------------------------

payment_methods = Table(
    "payment_methods",
    metadata,
    _pk(),
    _org(),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    # A payment profile: the customer's way to pay on a named network (a card network, a bank rail).
    Column("type", String(16), nullable=False),
    Column("network", String(32), nullable=False),
    Column("provider", String(32), nullable=False),
    # The provider's token for the instrument; never a card number (that stays with the provider).
    Column("provider_token", String(100), nullable=False),
    Column("brand", String(32), nullable=True),
    Column("last4", String(4), nullable=True),
    Column("exp_month", Integer, nullable=True),
    Column("exp_year", Integer, nullable=True),
    Column("fingerprint", String(100), nullable=True),
    Column("holder", String(200), nullable=False, server_default=""),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # One gateway serves every organisation: a token is one customer's card wherever it is attached.
    UniqueConstraint("provider", "provider_token"),
    CheckConstraint("type IN ('card', 'bank_account', 'external')", name="type"),
    CheckConstraint("status IN ('active', 'detached')", name="status"),
)

IN_FLIGHT = "status IN ('pending', 'unknown', 'authorized')"
"""An attempt whose money is not settled yet; at most one per document (a partial unique index), so a
document can never be charged twice at once."""

payment_attempts = Table(
    "payment_attempts",
    metadata,
    _pk(),
    _org(),
    Column("document_id", Id, ForeignKey("documents.id"), nullable=False, index=True),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False),
    # NULL for a payment received outside Fiscus (provider "external").
    Column("payment_method_id", Id, ForeignKey("payment_methods.id"), nullable=True),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("capture_mode", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    # Sent with the provider call; the same key can never charge twice, and it finds an unknown outcome.
    Column("idempotency_key", String(100), nullable=False, unique=True),
    Column("provider", String(32), nullable=False),
    Column("provider_charge_id", String(100), nullable=True),
    Column("authorized_minor", BigInteger, nullable=False, server_default="0"),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("hard_decline", Boolean, nullable=False, server_default=text("false")),
    Column("trigger", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("settled_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("provider", "provider_charge_id"),
    CheckConstraint(
        "status IN ('pending', 'unknown', 'authorized', 'succeeded', 'failed', 'canceled')", name="status"
    ),
    CheckConstraint("capture_mode IN ('sale', 'authorize')", name="capture_mode"),
    CheckConstraint("amount_minor > 0", name="amount"),
    CheckConstraint("authorized_minor >= 0 AND authorized_minor <= amount_minor", name="authorized"),
    Index(
        "ix_payment_attempts_in_flight",
        "document_id",
        unique=True,
        sqlite_where=text(IN_FLIGHT),
        postgresql_where=text(IN_FLIGHT),
    ),
    Index(
        "ix_payment_attempts_unsettled",
        "created_at",
        sqlite_where=text("status IN ('pending', 'unknown')"),
        postgresql_where=text("status IN ('pending', 'unknown')"),
    ),
)

MOVEMENT_STATUS = "status IN ('pending', 'succeeded', 'failed')"

payment_captures = Table(
    "payment_captures",
    metadata,
    _pk(),
    _org(),
    Column("attempt_id", Id, ForeignKey("payment_attempts.id"), nullable=False, index=True),
    # The document the money pays: the attempt's, or the final invoice a paid proforma became.
    Column("document_id", Id, ForeignKey("documents.id"), nullable=False, index=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("idempotency_key", String(100), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("settled_at", UtcDateTime, nullable=True),
    CheckConstraint(MOVEMENT_STATUS, name="status"),
    CheckConstraint("amount_minor > 0", name="amount"),
)

payment_refunds = Table(
    "payment_refunds",
    metadata,
    _pk(),
    _org(),
    Column("attempt_id", Id, ForeignKey("payment_attempts.id"), nullable=False, index=True),
    Column("document_id", Id, ForeignKey("documents.id"), nullable=False, index=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("idempotency_key", String(100), nullable=False, unique=True),
    Column("provider_refund_id", String(100), nullable=True),
    UniqueConstraint("attempt_id", "provider_refund_id"),
    # The credit note that documents the refund on a final invoice (issued when the money went back).
    Column("credit_note_id", Id, ForeignKey("documents.id"), nullable=True),
    Column("reason", Text, nullable=False, server_default=""),
    Column("error_message", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("settled_at", UtcDateTime, nullable=True),
    CheckConstraint(MOVEMENT_STATUS, name="status"),
    CheckConstraint("amount_minor > 0", name="amount"),
)

inbound_events = Table(
    "inbound_events",
    metadata,
    _pk(),
    Column("provider", String(32), nullable=False),
    Column("event_id", String(100), nullable=False),
    Column("type", String(64), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    UniqueConstraint("provider", "event_id"),
)

organization_logos = Table(
    "organization_logos",
    metadata,
    _pk(),
    _org(),
    # Sanitised bytes (SVG re-serialised from a whitelist; PNG as uploaded after its checks). Never
    # deleted while a document's snapshot may name the hash, so an old document renders its own logo.
    Column("sha256", String(64), nullable=False),
    Column("content_type", String(32), nullable=False),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("organization_id", "sha256"),
    CheckConstraint("content_type IN ('image/png', 'image/svg+xml')", name="content_type"),
)

instance_secrets = Table(
    "instance_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    # Generated once per installation (e.g. the key that signs hosted payment links).
    Column("value", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
