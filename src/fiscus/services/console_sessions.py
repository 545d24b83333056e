"""Console sign-in: login with throttling and lockout, optional TOTP, server-side sessions.

Sessions are server-side rows, the cookie holding only a random token whose SHA-256 is stored. Chosen
over a self-contained signed cookie because logout, a lockout, a disabled operator or a stolen cookie
must end a session at once, which a signed cookie cannot do before it expires; the row also gives idle
expiry. Every login makes a new token (the old cookie is never promoted), so a planted session id is
worthless (fixation).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import pyotp
from sqlalchemy import func, insert, select, update

from fiscus.adapters.db import tables_console as tc
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.errors import InvalidFieldError
from fiscus.services.operators import normalize_email, token_hash, verify_password

IDLE_TIMEOUT: Final = timedelta(minutes=30)
ABSOLUTE_TIMEOUT: Final = timedelta(hours=12)
TOUCH_EVERY: Final = timedelta(minutes=1)
"""last_seen_at is written at most this often (not on every page)."""
MAX_FAILURES: Final = 5
FAILURE_WINDOW: Final = timedelta(minutes=15)
LOCKOUT: Final = timedelta(minutes=15)
MAX_ADDRESS_FAILURES: Final = 20
"""Failures from one client address within FAILURE_WINDOW (whatever the e-mails tried) after which that
address is refused until they age out: guessing across many accounts from one place is slowed too."""


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str | None
    error: str | None
    """`invalid` (e-mail, password or code wrong: one message, no oracle), `code_required`, `locked`."""


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: int
    operator_id: int
    email: str
    token_hash: str


def _record(db: Database, email: str, now: datetime, ok: bool, reason: str, ip: str | None) -> None:
    with db.write() as conn:
        conn.execute(
            insert(tc.login_attempts).values(
                email=email[:254], at=now, succeeded=ok, reason=reason, client_ip=ip
            )
        )


def login(
    db: Database,
    clock: Clock,
    email: str,
    password: str,
    code: str | None = None,
    *,
    client_ip: str | None = None,
) -> LoginResult:
    """Check the credentials and open a session. After MAX_FAILURES failures within FAILURE_WINDOW the
    operator is locked for LOCKOUT (a correct password does not help meanwhile); after
    MAX_ADDRESS_FAILURES failures from `client_ip` within the window, every login from it is refused
    as locked until they age out."""
    now = clock.now()
    ip = client_ip[:45] if client_ip else None
    try:
        address = normalize_email(email)
    except InvalidFieldError:
        address = email.strip().lower()[:254]
    o, a = tc.operators.c, tc.login_attempts.c
    with db.read() as conn:
        row = conn.execute(select(tc.operators).where(o.email == address)).mappings().first()
        failures = conn.execute(
            select(func.count())
            .select_from(tc.login_attempts)
            .where(
                a.email == address, a.at > now - FAILURE_WINDOW, a.succeeded.is_(False), a.reason == "invalid"
            )
        ).scalar_one()
        from_address = 0
        if ip is not None:
            from_address = conn.execute(
                select(func.count())
                .select_from(tc.login_attempts)
                .where(
                    a.client_ip == ip,
                    a.at > now - FAILURE_WINDOW,
                    a.succeeded.is_(False),
                    a.reason == "invalid",
                )
            ).scalar_one()
    if from_address >= MAX_ADDRESS_FAILURES:
        _record(db, address, now, False, "address_locked", ip)
        return LoginResult(None, "locked")
    if row is not None and row["locked_until"] is not None and row["locked_until"] > now:
        _record(db, address, now, False, "locked", ip)
        return LoginResult(None, "locked")
    password_ok = verify_password(row["password_hash"] if row else None, password)
    if row is None or not password_ok or row["disabled"]:
        _failed(db, address, now, failures + 1, row["id"] if row else None, ip)
        return LoginResult(None, "invalid")
    if row["totp_secret"]:
        if not code:
            return LoginResult(None, "code_required")
        if not pyotp.TOTP(row["totp_secret"]).verify(code.strip(), for_time=now, valid_window=1):
            _failed(db, address, now, failures + 1, row["id"], ip)
            return LoginResult(None, "invalid")
    token = secrets.token_urlsafe(32)
    with db.write() as conn:
        conn.execute(
            insert(tc.console_sessions).values(
                token_hash=token_hash(token),
                operator_id=row["id"],
                created_at=now,
                last_seen_at=now,
                expires_at=now + ABSOLUTE_TIMEOUT,
            )
        )
        conn.execute(
            insert(tc.login_attempts).values(email=address, at=now, succeeded=True, reason="ok", client_ip=ip)
        )
    return LoginResult(token, None)


def _failed(
    db: Database, address: str, now: datetime, failures: int, operator_id: int | None, ip: str | None
) -> None:
    _record(db, address, now, False, "invalid", ip)
    if operator_id is not None and failures >= MAX_FAILURES:
        with db.write() as conn:
            conn.execute(
                update(tc.operators)
                .where(tc.operators.c.id == operator_id)
                .values(locked_until=now + LOCKOUT)
            )


def session_of(db: Database, clock: Clock, token: str | None) -> SessionInfo | None:
    """The live session a cookie names, or None (unknown, revoked, idle too long, too old, operator
    disabled). Moves its idle clock."""
    if not token or len(token) > 200:
        return None
    now = clock.now()
    s, o = tc.console_sessions.c, tc.operators.c
    hashed = token_hash(token)
    with db.read() as conn:
        row = conn.execute(
            select(s.id, s.operator_id, s.last_seen_at, s.expires_at, s.revoked_at, o.email, o.disabled)
            .join(tc.operators, o.id == s.operator_id)
            .where(s.token_hash == hashed)
        ).first()
    if row is None or row.revoked_at is not None or row.disabled:
        return None
    if row.expires_at <= now or row.last_seen_at + IDLE_TIMEOUT <= now:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        with db.write() as conn:
            conn.execute(update(tc.console_sessions).where(s.id == row.id).values(last_seen_at=now))
    return SessionInfo(row.id, row.operator_id, row.email, hashed)


def logout(db: Database, clock: Clock, token: str | None) -> None:
    """End the session the cookie names (a no-op for an unknown one)."""
    if not token or len(token) > 200:
        return
    s = tc.console_sessions.c
    with db.write() as conn:
        conn.execute(
            update(tc.console_sessions)
            .where(s.token_hash == token_hash(token), s.revoked_at.is_(None))
            .values(revoked_at=clock.now())
        )
