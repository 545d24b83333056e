"""Email tables (migration 0012): the email outbox, suppressed addresses, and each organisation's email
and dunning settings. On the shared `metadata` of `tables.py`."""

from __future__ import annotations

from sqlalchemy import (
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

from fiscus.adapters.db.tables import Id, Json, metadata
from fiscus.adapters.db.types import UtcDateTime

EMAIL_STATUSES = ("queued", "sending", "sent", "failed", "bounced", "suppressed", "expired")

email_outbox = Table(
    "email_outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    # What the message is about (`invoice_issued:document:42`); with the recipient, it is sent once.
    Column("message_key", String(200), nullable=False),
    Column("recipient", String(254), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False),
    Column("document_id", Id, ForeignKey("documents.id"), nullable=True),
    # What the event said that the document alone does not (the failure code, the next try...).
    Column("data", Json, nullable=False),
    Column("status", String(16), nullable=False, server_default="queued"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    # Set when a worker claims the row ("sending"): the claim holds until then.
    Column("claimed_until", UtcDateTime, nullable=True),
    # The Message-ID it was (or is being) sent with: a resend after a crash carries the same one.
    Column("message_id", String(300), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("organization_id", "message_key", "recipient"),
    Index(
        "ix_email_outbox_due",
        "next_attempt_at",
        "id",
        sqlite_where=text("status IN ('queued', 'sending')"),
        postgresql_where=text("status IN ('queued', 'sending')"),
    ),
    Index("ix_email_outbox_document", "document_id"),
    Index("ix_email_outbox_customer", "customer_id"),
)

email_suppressions = Table(
    "email_suppressions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("address", String(254), nullable=False),
    # "bounced": nothing more is sent there; "unsubscribed": reminders stop, documents still go.
    Column("reason", String(16), nullable=False),
    Column("detail", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("organization_id", "address", "reason"),
)

organization_email_settings = Table(
    "organization_email_settings",
    metadata,
    Column("organization_id", Id, ForeignKey("organizations.id"), primary_key=True),
    Column("from_address", String(254), nullable=True),
    Column("from_name", String(200), nullable=True),
    Column("reply_to", String(254), nullable=True),
    Column("brand_color", String(7), nullable=True),
    # Kinds switched off (domain/email.py EmailKind values).
    Column("disabled", Json, nullable=False, server_default=text("'[]'")),
    # The dunning policy's email after each failed try; NULL: the default for the retry schedule.
    Column("dunning_emails", Json, nullable=True),
    Column("trial_notice_days", Integer, nullable=False, server_default="3"),
    Column("renewal_notice_days", Integer, nullable=False, server_default="14"),
    Column("updated_at", UtcDateTime, nullable=False),
)
