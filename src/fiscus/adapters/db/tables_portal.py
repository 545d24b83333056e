"""The customer portal's tables (migration 0013): one-time links that open a session (from the API or a
magic-link email), the cookie sessions they open, the login requests that rate limiting counts, and
each organisation's portal configuration (login emails wait in `email_outbox`; migration 0018 dropped
`portal_login_messages`).

Secrets are stored only as their SHA-256 (like live API keys): the database never holds a working link
or session, except a login email's URL in its `email_outbox` row until the row is done.
"""

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, Column, ForeignKey, Index, String, Table, text

from fiscus.adapters.db.tables import Id, Json, _org, _pk, metadata
from fiscus.adapters.db.types import UtcDateTime

portal_links = Table(
    "portal_links",
    metadata,
    _pk(),
    _org(),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    # "session": made by the business's app through the API; "login": asked for by email on /login.
    Column("purpose", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("return_url", String(2048), nullable=True),
    Column("locale", String(16), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    # Set when the link opened a session: a link opens one session, once.
    Column("used_at", UtcDateTime, nullable=True),
    Column("actor", String(100), nullable=False),
    CheckConstraint("purpose IN ('session', 'login')", name="purpose"),
)

portal_sessions = Table(
    "portal_sessions",
    metadata,
    _pk(),
    _org(),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("link_id", Id, ForeignKey("portal_links.id"), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("return_url", String(2048), nullable=True),
    Column("locale", String(16), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
)

portal_login_requests = Table(
    "portal_login_requests",
    metadata,
    _pk(),
    _org(),
    # SHA-256 of the normalised email and of the client address: counted, never read back.
    Column("email_hash", String(64), nullable=False),
    Column("ip_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_portal_login_requests_email", "email_hash", "created_at"),
    Index("ix_portal_login_requests_ip", "ip_hash", "created_at"),
)

portal_settings = Table(
    "portal_settings",
    metadata,
    Column("organization_id", Id, ForeignKey("organizations.id"), primary_key=True, autoincrement=False),
    Column("allow_plan_change", Boolean, nullable=False, server_default=text("false")),
    Column("allow_quantity_change", Boolean, nullable=False, server_default=text("false")),
    Column("allow_cancel", Boolean, nullable=False, server_default=text("false")),
    # Price ids a customer may switch to (same interval as the subscription); [] offers none.
    Column("plans", Json, nullable=False, server_default=text("'[]'")),
    # "#rrggbb", or NULL for the default colour.
    Column("brand_color", String(7), nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)
