"""The operator console's tables: operators (people, not API keys), their memberships in organisations
with a role, their server-side sessions, and login attempts (throttling and lockout).

Operators belong to the installation, not to one organisation (one person may run several), so
`operators` has no `organization_id`; every membership row names the organisation it grants.
"""

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, Column, ForeignKey, Index, String, Table, UniqueConstraint

from fiscus.adapters.db.tables import Id, metadata
from fiscus.adapters.db.types import UtcDateTime

ROLES = ("admin", "finance", "support", "viewer")

operators = Table(
    "operators",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # Stored lower-cased; unique per installation.
    Column("email", String(254), nullable=False, unique=True),
    Column("name", String(200), nullable=False, server_default=""),
    # argon2id PHC string; NULL until the operator sets a password through their one-time link.
    Column("password_hash", String(200), nullable=True),
    # sha256 of the one-time set-password token (shown once), and its expiry.
    Column("setup_token_hash", String(64), nullable=True, unique=True),
    Column("setup_expires_at", UtcDateTime, nullable=True),
    # Base32 TOTP secret (RFC 6238); NULL: no second factor.
    Column("totp_secret", String(64), nullable=True),
    Column("disabled", Boolean, nullable=False, server_default="0"),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

operator_memberships = Table(
    "operator_memberships",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("operator_id", Id, ForeignKey("operators.id"), nullable=False),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("operator_id", "organization_id"),
    CheckConstraint("role IN ('admin', 'finance', 'support', 'viewer')", name="role"),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # sha256 of the cookie's random token: a database leak gives no usable session.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("operator_id", Id, ForeignKey("operators.id"), nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    # Absolute end; idle expiry is last_seen_at + the idle timeout.
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
)

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Column("reason", String(32), nullable=False),
    # The client's address as the console saw it (IPv6 at most 45 characters); throttles by address too.
    Column("client_ip", String(45), nullable=True),
    Index("ix_login_attempts_email_at", "email", "at"),
    Index("ix_login_attempts_client_ip_at", "client_ip", "at"),
)
