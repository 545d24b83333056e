"""Access to the customer portal: one-time links that open a cookie session bound to one customer of
one organisation, and magic-link login by email.

- The business's app asks for a link (`create_session_link`, `POST /api/v1/customers/{id}/portal_sessions`,
  like Stripe's billing portal sessions): valid for `SESSION_LINK_TTL` to open, once.
- A customer asks for one on `/portal/{org}/login` (`request_login_link`): the same answer whether or not
  the email is known, rate-limited per email and per client address, valid `LOGIN_LINK_TTL`, once.
  The link goes to a `LoginLinkSender` (a port): by default a `portal_login` email in the email
  outbox (`EmailLoginLinks`), which `fiscus worker` sends. It is never an outbox event: those become
  the business's webhooks, and a login link is the customer's secret, not the business's.
- Opening a link (`open_link`) marks it used and starts a new session, revoking the one the browser had
  (the session id is rotated on every login). Links and sessions are random secrets stored only as
  their SHA-256, so the database alone opens nothing.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from sqlalchemy import Connection, func, insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_portal as tp
from fiscus.adapters.db.documents import append_audit, audit_row
from fiscus.adapters.db.email_queue import queue_login_link
from fiscus.adapters.db.engine import Database
from fiscus.domain import organization as o
from fiscus.domain.clock import Clock
from fiscus.domain.errors import DomainError, InvalidFieldError, NotFoundError
from fiscus.services.common import get_scoped

SESSION_LINK_TTL: Final = timedelta(hours=1)
LOGIN_LINK_TTL: Final = timedelta(minutes=15)
SESSION_TTL: Final = timedelta(hours=8)
"""A working day, like the CSRF tokens of its forms; then the customer opens a new link."""
MAX_RETURN_URL: Final = 2048
LOGIN_WINDOW: Final = timedelta(hours=1)
LOGINS_PER_EMAIL: Final = 5
LOGINS_PER_ADDRESS: Final = 20
MAX_CUSTOMERS_PER_EMAIL: Final = 5
"""One email may be several customers of one organisation (a person with two accounts): a link each."""
ACTOR_PREFIX: Final = "portal:customer:"
_URL_CHAR: Final = r"(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})"
RETURN_URL: Final = re.compile(
    rf"^[Hh][Tt][Tt][Pp][Ss]?://{_URL_CHAR}+"
    r"(?::0*(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})?)?"
    rf"(?:[/?#](?:{_URL_CHAR}|[:@/?#])*)?$"
)
"""A return URL as the API document states it (the same pattern): http(s), a host name or IPv4 address
(no credentials, no IPv6 literal), a port up to 65535, then RFC 3986 characters (`%` only before two
hex digits). Matched like pydantic matches field patterns (`re.match`)."""
_EMAIL: Final = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,252}$")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def portal_actor(customer_id: int) -> str:
    """Who the audit trail names for what a customer does in the portal."""
    return f"{ACTOR_PREFIX}{customer_id}"


class LoginRateLimitedError(DomainError):
    """Too many login links asked for one email or from one address in the window."""

    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many login links asked for; try again later")
        self.retry_after = retry_after


def check_return_url(value: str | None) -> str | None:
    """Where the portal's "back" link goes: an absolute http(s) URL, printable, without credentials,
    at most `MAX_RETURN_URL` characters (no `javascript:`, `data:` or relative trickery)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_RETURN_URL:
        raise InvalidFieldError(
            "return_url", f"must be an http(s) URL of at most {MAX_RETURN_URL} characters"
        )
    if not RETURN_URL.match(value):
        raise InvalidFieldError(
            "return_url", "must be an absolute http(s) URL: a host name, no credentials, RFC 3986 characters"
        )
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:  # the pattern excludes what urlsplit refuses; kept so nothing becomes a 500
        raise InvalidFieldError("return_url", "is not a valid URL") from None
    if not parts.hostname:
        raise InvalidFieldError("return_url", "must name a host")
    return value


def _locale(value: str | None) -> str | None:
    return None if value is None else o.document_locale("locale", value)


# --- links from the API ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedLink:
    """A link just made: its path carries the secret, shown this once."""

    link_id: int
    slug: str
    token: str
    expires_at: datetime
    return_url: str | None

    @property
    def path(self) -> str:
        return f"/portal/{self.slug}/session/{self.token}"


def _slug(conn: Connection, org_id: int) -> str:
    return str(
        conn.execute(select(t.organizations.c.slug).where(t.organizations.c.id == org_id)).scalar_one()
    )


def _insert_link(
    conn: Connection,
    org_id: int,
    customer_id: int,
    purpose: str,
    now: datetime,
    ttl: timedelta,
    actor: str,
    return_url: str | None = None,
    locale: str | None = None,
) -> IssuedLink:
    token = secrets.token_urlsafe(32)
    expires = now + ttl
    link_id = conn.execute(
        insert(tp.portal_links)
        .values(
            organization_id=org_id,
            customer_id=customer_id,
            purpose=purpose,
            token_hash=_hash(token),
            return_url=return_url,
            locale=locale,
            created_at=now,
            expires_at=expires,
            actor=actor,
        )
        .returning(tp.portal_links.c.id)
    ).scalar_one()
    return IssuedLink(int(link_id), _slug(conn, org_id), token, expires, return_url)


def create_session_link(
    db: Database,
    clock: Clock,
    org_id: int,
    customer_id: int,
    *,
    return_url: str | None = None,
    locale: str | None = None,
    actor: str = "api",
) -> IssuedLink:
    """A one-time link that opens the portal as this customer (`SESSION_LINK_TTL` to open it)."""
    checked_url = check_return_url(return_url)
    checked_locale = _locale(locale)
    now = clock.now()
    with db.write() as conn:
        get_scoped(conn, t.customers, org_id, customer_id)
        link = _insert_link(
            conn, org_id, customer_id, "session", now, SESSION_LINK_TTL, actor, checked_url, checked_locale
        )
        after = {
            "link_id": link.link_id,
            "expires_at": link.expires_at.isoformat(),
            "return_url": checked_url,
        }
        append_audit(
            conn, [audit_row(org_id, "customer", customer_id, "portal_link_created", actor, now, None, after)]
        )
    return link


# --- sessions ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortalSession:
    """A signed-in customer: one customer of one organisation, until `expires_at`."""

    id: int
    organization_id: int
    customer_id: int
    slug: str
    return_url: str | None
    locale: str | None
    expires_at: datetime

    @property
    def actor(self) -> str:
        return portal_actor(self.customer_id)


@dataclass(frozen=True, slots=True)
class OpenedSession:
    secret: str
    session: PortalSession


def slug_ok(slug: str) -> bool:
    """Whether a path segment could be an organisation slug at all (printable ASCII, not too long):
    anything else, a NUL above all (PostgreSQL refuses it in a query), matches no organisation."""
    return 0 < len(slug) <= 64 and slug.isascii() and slug.isprintable()


def _org_id(conn: Connection, slug: str) -> int | None:
    if not slug_ok(slug):
        return None
    value = conn.execute(
        select(t.organizations.c.id).where(t.organizations.c.slug == slug)
    ).scalar_one_or_none()
    return None if value is None else int(value)


def link_purpose(db: Database, clock: Clock, slug: str, token: str) -> str | None:
    """What a still usable link is for ("session" or "login"), without using it; None if it opens
    nothing. A login link is opened by a button press, not by the GET: mail scanners that fetch links
    to check them would otherwise spend it before the customer clicks."""
    if not token or len(token) > 200 or not slug_ok(slug):
        return None
    pl, org = tp.portal_links.c, t.organizations.c
    with db.read() as conn:
        row = conn.execute(
            select(pl.purpose, pl.used_at, pl.expires_at)
            .join(t.organizations, org.id == pl.organization_id)
            .where(pl.token_hash == _hash(token), org.slug == slug)
        ).one_or_none()
    if row is None or row.used_at is not None or row.expires_at <= clock.now():
        return None
    return str(row.purpose)


def open_link(
    db: Database, clock: Clock, slug: str, token: str, *, previous_secret: str | None = None
) -> OpenedSession | None:
    """Use a link (once) and start a session; None for an unknown, used, expired or other
    organisation's link. The browser's previous session, if any, is revoked: a new id each login."""
    if not token or len(token) > 200:
        return None
    now = clock.now()
    pl = tp.portal_links.c
    with db.write() as conn:
        org_id = _org_id(conn, slug)
        if org_id is None:
            return None
        link = (
            conn.execute(
                select(tp.portal_links).where(pl.token_hash == _hash(token), pl.organization_id == org_id)
            )
            .mappings()
            .one_or_none()
        )
        if link is None or link["used_at"] is not None or link["expires_at"] <= now:
            return None
        used = conn.execute(
            update(tp.portal_links).where(pl.id == link["id"], pl.used_at.is_(None)).values(used_at=now)
        )
        if used.rowcount != 1:
            return None  # opened at the same moment by another request
        if previous_secret:
            _revoke(conn, previous_secret, now)
        secret = secrets.token_urlsafe(32)
        expires = now + SESSION_TTL
        session_id = conn.execute(
            insert(tp.portal_sessions)
            .values(
                organization_id=org_id,
                customer_id=link["customer_id"],
                link_id=link["id"],
                secret_hash=_hash(secret),
                return_url=link["return_url"],
                locale=link["locale"],
                created_at=now,
                expires_at=expires,
            )
            .returning(tp.portal_sessions.c.id)
        ).scalar_one()
        actor = portal_actor(int(link["customer_id"]))
        append_audit(
            conn,
            [
                audit_row(
                    org_id,
                    "customer",
                    int(link["customer_id"]),
                    "portal_login",
                    actor,
                    now,
                    None,
                    {"session_id": int(session_id), "link_id": int(link["id"]), "via": link["purpose"]},
                )
            ],
        )
    session = PortalSession(
        int(session_id), org_id, int(link["customer_id"]), slug, link["return_url"], link["locale"], expires
    )
    return OpenedSession(secret, session)


def session_of(db: Database, clock: Clock, slug: str, secret: str | None) -> PortalSession | None:
    """The live session a cookie names on this organisation's portal, or None."""
    if not secret or len(secret) > 200 or not slug_ok(slug):
        return None
    ps, org = tp.portal_sessions.c, t.organizations.c
    with db.read() as conn:
        row = (
            conn.execute(
                select(tp.portal_sessions, org.slug)
                .join(t.organizations, org.id == ps.organization_id)
                .where(ps.secret_hash == _hash(secret), org.slug == slug)
            )
            .mappings()
            .one_or_none()
        )
    if row is None or row["revoked_at"] is not None or row["expires_at"] <= clock.now():
        return None
    return PortalSession(
        int(row["id"]),
        int(row["organization_id"]),
        int(row["customer_id"]),
        str(row["slug"]),
        row["return_url"],
        row["locale"],
        row["expires_at"],
    )


def _revoke(conn: Connection, secret: str, now: datetime) -> None:
    ps = tp.portal_sessions.c
    conn.execute(
        update(tp.portal_sessions)
        .where(ps.secret_hash == _hash(secret), ps.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def end_session(db: Database, clock: Clock, secret: str) -> None:
    """Sign out: the session's cookie opens nothing any more."""
    with db.write() as conn:
        _revoke(conn, secret, clock.now())


# --- magic links by email ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginLinkMessage:
    """What a login email carries: to whom, in which language, the link and until when it works."""

    organization_id: int
    customer_id: int
    link_id: int
    email: str
    locale: str
    url: str
    expires_at: datetime


class LoginLinkSender(Protocol):
    """Delivers a login link, in the transaction that made it (so a link is queued iff it exists)."""

    def queue(self, conn: Connection, message: LoginLinkMessage) -> None: ...


class EmailLoginLinks:
    """The default sender: a `portal_login` email in the email outbox (same transaction as the link),
    sent by `fiscus worker` like every other customer email. A suppressed (bounced) address is
    recorded as such and gets nothing."""

    def queue(self, conn: Connection, message: LoginLinkMessage) -> None:
        created_at = conn.execute(
            select(tp.portal_links.c.created_at).where(tp.portal_links.c.id == message.link_id)
        ).scalar_one()
        queue_login_link(
            conn,
            created_at,
            organization_id=message.organization_id,
            customer_id=message.customer_id,
            link_id=message.link_id,
            url=message.url,
            expires_at=message.expires_at,
        )


def normalize_login_email(value: str) -> str:
    """The address as typed, trimmed and lower-cased; a clear error for what is not an address."""
    email = (value or "").strip().lower()
    if len(email) > 254 or not _EMAIL.match(email) or not email.isprintable():
        raise InvalidFieldError("email", "enter the email address your invoices are sent to")
    return email


def _retry_after(conn: Connection, column: Any, value: str, limit: int, since: datetime) -> int | None:
    r = tp.portal_login_requests.c
    rows = conn.execute(
        select(r.created_at)
        .where(column == value, r.created_at > since)
        .order_by(r.created_at.desc())
        .limit(limit)
    ).scalars()
    times = list(rows)
    if len(times) < limit:
        return None
    oldest: datetime = times[-1]
    return max(1, math.ceil((oldest - since).total_seconds()))  # when the oldest counted one leaves


def request_login_link(
    db: Database,
    clock: Clock,
    slug: str,
    email: str,
    client_address: str,
    *,
    base_url: str,
    sender: LoginLinkSender | None = None,
) -> None:
    """Queue a login link for each customer of this organisation with this email; nothing for an
    unknown one. The caller answers the same either way. Raises `LoginRateLimitedError` past
    `LOGINS_PER_EMAIL` (per organisation and email) or `LOGINS_PER_ADDRESS` (per client) an hour."""
    address = normalize_login_email(email)
    out = sender or EmailLoginLinks()
    now = clock.now()
    since = now - LOGIN_WINDOW
    r, cu = tp.portal_login_requests.c, t.customers.c
    with db.write() as conn:
        org_id = _org_id(conn, slug)
        if org_id is None:
            raise NotFoundError("portal", slug)
        email_hash = _hash(f"{org_id}:{address}")
        ip_hash = _hash(client_address or "unknown")
        for column, value, limit in (
            (r.email_hash, email_hash, LOGINS_PER_EMAIL),
            (r.ip_hash, ip_hash, LOGINS_PER_ADDRESS),
        ):
            wait = _retry_after(conn, column, value, limit, since)
            if wait is not None:
                raise LoginRateLimitedError(wait)
        conn.execute(
            insert(tp.portal_login_requests).values(
                organization_id=org_id, email_hash=email_hash, ip_hash=ip_hash, created_at=now
            )
        )
        customers = conn.execute(
            select(cu.id, cu.email, cu.locale)
            .where(cu.organization_id == org_id, func.lower(cu.email) == address)
            .order_by(cu.id)
            .limit(MAX_CUSTOMERS_PER_EMAIL)
        ).all()
        for customer in customers:
            actor = portal_actor(int(customer.id))
            link = _insert_link(conn, org_id, int(customer.id), "login", now, LOGIN_LINK_TTL, actor)
            out.queue(
                conn,
                LoginLinkMessage(
                    org_id,
                    int(customer.id),
                    link.link_id,
                    str(customer.email),
                    str(customer.locale),
                    f"{base_url.rstrip('/')}{link.path}",
                    link.expires_at,
                ),
            )
            append_audit(
                conn,
                [
                    audit_row(
                        org_id,
                        "customer",
                        int(customer.id),
                        "portal_login_link_sent",
                        actor,
                        now,
                        None,
                        {"link_id": link.link_id, "expires_at": link.expires_at.isoformat()},
                    )
                ],
            )
