"""Credentials: organisation API keys and customer tokens.

A secret is shown once, at creation, and stored only as its SHA-256 (secrets are 190 random bits, so a
plain hash is enough; no slow hash is needed, unlike passwords). Keys carry their mode in the prefix
(`fsk_live_…`, `fsk_test_…`) and reach only organisations of the same mode, so test and live data stay
apart. Customer tokens (`fct_…`) are read-only and scoped to one customer of one organisation.
Admin keys (`fak_…`) are the platform's: they manage organisations and reach none of their data.

Test-mode secrets (keys of a test-mode organisation and its customers' tokens) are also kept in plain
text so they can be shown again (`stored_test_keys`, `stored_customer_tokens`), as Stripe shows test
keys at any time: they reach only test data (made-up customers, the test gateway), which the same
database holds in the clear anyway, so encrypting them with a key kept beside them would protect
nothing. A live key's secret is never stored (a CHECK constraint refuses it).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Connection, Table, insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import append_audit, audit_row
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.errors import InvalidFieldError, InvalidStateError, NotFoundError
from fiscus.services import validation as v
from fiscus.services.common import get_scoped

KEY_PREFIX = "fsk_"
TOKEN_PREFIX = "fct_"
ADMIN_PREFIX = "fak_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


class PrincipalKind(StrEnum):
    ORGANIZATION = "organization"
    CUSTOMER = "customer"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an organisation (through an API key) or one of its customers (a token)."""

    kind: PrincipalKind
    organization_id: int
    credential_id: int
    customer_id: int | None = None
    mode: str = "live"

    @property
    def is_customer(self) -> bool:
        return self.kind is PrincipalKind.CUSTOMER

    @property
    def actor(self) -> str:
        if self.is_customer:
            return f"customer_token:{self.credential_id}"
        return f"api_key:{self.credential_id}"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedSecret:
    id: int
    secret: str
    prefix: str


def create_api_key(
    db: Database, clock: Clock, org_id: int, *, name: str = "default", actor: str = "cli"
) -> IssuedSecret:
    with db.write() as conn:
        return insert_api_key(conn, clock, org_id, name=name, actor=actor)


def insert_api_key(
    conn: Connection, clock: Clock, org_id: int, *, name: str = "default", actor: str = "cli"
) -> IssuedSecret:
    """A new key of the organisation's mode, inside the caller's transaction."""
    now = clock.now()
    mode = conn.execute(
        select(t.organizations.c.mode).where(t.organizations.c.id == org_id)
    ).scalar_one_or_none()
    if mode is None:
        raise InvalidFieldError("org", f"organization {org_id} does not exist")
    secret = f"{KEY_PREFIX}{mode}_{secrets.token_urlsafe(24)}"
    prefix = secret[: len(KEY_PREFIX) + len(mode) + 5] + "…"
    key_id = conn.execute(
        insert(t.api_keys)
        .values(
            organization_id=org_id,
            name=v.text("name", name, max_len=100),
            mode=mode,
            prefix=prefix,
            secret_hash=_hash(secret),
            secret=secret if mode == "test" else None,
            created_at=now,
        )
        .returning(t.api_keys.c.id)
    ).scalar_one()
    append_audit(
        conn,
        [
            audit_row(
                org_id,
                "api_key",
                key_id,
                "created",
                actor,
                now,
                None,
                {"prefix": prefix, "name": name, "mode": mode},
            )
        ],
    )
    return IssuedSecret(int(key_id), secret, prefix)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What a list shows of a key: never the secret (it is not stored)."""

    id: int
    organization_id: int | None
    name: str
    mode: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def list_api_keys(db: Database, org_id: int, *, include_revoked: bool = False) -> list[KeyInfo]:
    k = t.api_keys.c
    query = select(t.api_keys).where(k.organization_id == org_id).order_by(k.id)
    if not include_revoked:
        query = query.where(k.revoked_at.is_(None))
    with db.read() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        KeyInfo(
            r["id"],
            r["organization_id"],
            r["name"],
            r["mode"],
            r["prefix"],
            r["created_at"],
            r["last_used_at"],
            r["revoked_at"],
        )
        for r in rows
    ]


# --- platform-level credentials -------------------------------------------------------------------


def create_admin_key(db: Database, clock: Clock, *, name: str = "admin") -> IssuedSecret:
    """A platform key: manages organisations (create, list, read, update), reads none of their data."""
    secret = f"{ADMIN_PREFIX}{secrets.token_urlsafe(24)}"
    prefix = secret[: len(ADMIN_PREFIX) + 5] + "…"
    with db.write() as conn:
        key_id = conn.execute(
            insert(t.admin_keys)
            .values(
                name=v.text("name", name, max_len=100),
                prefix=prefix,
                secret_hash=_hash(secret),
                created_at=clock.now(),
            )
            .returning(t.admin_keys.c.id)
        ).scalar_one()
    return IssuedSecret(int(key_id), secret, prefix)


def list_admin_keys(db: Database, *, include_revoked: bool = False) -> list[KeyInfo]:
    k = t.admin_keys.c
    query = select(t.admin_keys).order_by(k.id)
    if not include_revoked:
        query = query.where(k.revoked_at.is_(None))
    with db.read() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        KeyInfo(
            r["id"],
            None,
            r["name"],
            "admin",
            r["prefix"],
            r["created_at"],
            r["last_used_at"],
            r["revoked_at"],
        )
        for r in rows
    ]


def revoke_admin_key(db: Database, clock: Clock, key_id: int) -> None:
    with db.write() as conn:
        row = conn.execute(
            select(t.admin_keys.c.revoked_at).where(t.admin_keys.c.id == key_id).with_for_update()
        ).one_or_none()
        if row is None:
            raise NotFoundError("admin_key", key_id)
        if row.revoked_at is not None:
            raise InvalidStateError(f"admin key {key_id} is already revoked")
        conn.execute(update(t.admin_keys).where(t.admin_keys.c.id == key_id).values(revoked_at=clock.now()))


def authenticate_admin(db: Database, clock: Clock, secret: str) -> int | None:
    """The id of a live admin key presented as `secret`, or None."""
    if not secret.startswith(ADMIN_PREFIX):
        return None
    k = t.admin_keys.c
    with db.read() as conn:
        row = conn.execute(
            select(k.id, k.revoked_at, k.last_used_at).where(k.secret_hash == _hash(secret))
        ).one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    _touch(db, clock, t.admin_keys, row.id, row.last_used_at)
    return int(row.id)


def revoke_api_key(db: Database, clock: Clock, org_id: int, key_id: int, *, actor: str = "cli") -> None:
    now = clock.now()
    with db.write() as conn:
        key = get_scoped(conn, t.api_keys, org_id, key_id, lock=True)
        if key["revoked_at"] is not None:
            raise InvalidStateError(f"API key {key_id} is already revoked")
        conn.execute(update(t.api_keys).where(t.api_keys.c.id == key_id).values(revoked_at=now))
        append_audit(conn, [audit_row(org_id, "api_key", key_id, "revoked", actor, now, None, None)])


def create_customer_token(
    db: Database,
    clock: Clock,
    org_id: int,
    customer_id: int,
    *,
    ttl: timedelta | None = None,
    actor: str = "cli",
) -> IssuedSecret:
    now = clock.now()
    with db.write() as conn:
        get_scoped(conn, t.customers, org_id, customer_id, field="customer_id")
        mode = conn.execute(select(t.organizations.c.mode).where(t.organizations.c.id == org_id)).scalar_one()
        secret = f"{TOKEN_PREFIX}{secrets.token_urlsafe(24)}"
        prefix = secret[: len(TOKEN_PREFIX) + 5] + "…"
        token_id = conn.execute(
            insert(t.customer_tokens)
            .values(
                organization_id=org_id,
                customer_id=customer_id,
                prefix=prefix,
                secret_hash=_hash(secret),
                secret=secret if mode == "test" else None,
                created_at=now,
                expires_at=now + ttl if ttl else None,
            )
            .returning(t.customer_tokens.c.id)
        ).scalar_one()
        append_audit(
            conn,
            [
                audit_row(
                    org_id,
                    "customer_token",
                    token_id,
                    "created",
                    actor,
                    now,
                    None,
                    {"prefix": prefix, "customer_id": customer_id},
                )
            ],
        )
    return IssuedSecret(int(token_id), secret, prefix)


def stored_test_keys(db: Database, org_id: int, *, name: str | None = None) -> list[IssuedSecret]:
    """The unrevoked test-mode keys of an organisation whose secret was kept (oldest first)."""
    k = t.api_keys.c
    query = select(k.id, k.secret, k.prefix).where(
        k.organization_id == org_id, k.mode == "test", k.secret.is_not(None), k.revoked_at.is_(None)
    )
    if name is not None:
        query = query.where(k.name == name)
    with db.read() as conn:
        return [IssuedSecret(int(r.id), str(r.secret), r.prefix) for r in conn.execute(query.order_by(k.id))]


def stored_customer_tokens(db: Database, clock: Clock, org_id: int) -> dict[int, str]:
    """Per customer of a test-mode organisation, the newest usable token whose secret was kept."""
    c = t.customer_tokens.c
    now = clock.now()
    query = (
        select(c.customer_id, c.secret, c.expires_at)
        .where(c.organization_id == org_id, c.secret.is_not(None), c.revoked_at.is_(None))
        .order_by(c.id)
    )
    with db.read() as conn:
        return {
            int(r.customer_id): str(r.secret)
            for r in conn.execute(query)
            if r.expires_at is None or r.expires_at > now
        }


def revoke_customer_token(
    db: Database, clock: Clock, org_id: int, token_id: int, *, actor: str = "cli"
) -> None:
    now = clock.now()
    with db.write() as conn:
        get_scoped(conn, t.customer_tokens, org_id, token_id, lock=True)
        conn.execute(
            update(t.customer_tokens).where(t.customer_tokens.c.id == token_id).values(revoked_at=now)
        )
        append_audit(conn, [audit_row(org_id, "customer_token", token_id, "revoked", actor, now, None, None)])


def authenticate(db: Database, clock: Clock, secret: str) -> Principal | None:
    """The principal of a presented secret, or None (unknown, revoked, expired, or mode mismatch)."""
    if secret.startswith(KEY_PREFIX):
        k, o = t.api_keys.c, t.organizations.c
        with db.read() as conn:
            row = conn.execute(
                select(
                    k.id, k.organization_id, k.mode, k.revoked_at, k.last_used_at, o.mode.label("org_mode")
                )
                .join(t.organizations, o.id == k.organization_id)
                .where(k.secret_hash == _hash(secret))
            ).one_or_none()
        if row is None or row.revoked_at is not None or row.mode != row.org_mode:
            return None
        _touch(db, clock, t.api_keys, row.id, row.last_used_at)
        return Principal(PrincipalKind.ORGANIZATION, row.organization_id, row.id, mode=row.mode)
    if secret.startswith(TOKEN_PREFIX):
        c = t.customer_tokens.c
        with db.read() as conn:
            found = conn.execute(
                select(
                    c.id,
                    c.organization_id,
                    c.customer_id,
                    c.revoked_at,
                    c.expires_at,
                    c.last_used_at,
                    t.organizations.c.mode,
                )
                .join(t.organizations, t.organizations.c.id == c.organization_id)
                .where(c.secret_hash == _hash(secret))
            ).one_or_none()
        now = clock.now()
        if (
            found is None
            or found.revoked_at is not None
            or (found.expires_at is not None and found.expires_at <= now)
        ):
            return None
        _touch(db, clock, t.customer_tokens, found.id, found.last_used_at)
        return Principal(
            PrincipalKind.CUSTOMER,
            found.organization_id,
            found.id,
            customer_id=found.customer_id,
            mode=found.mode,
        )
    return None


def _touch(db: Database, clock: Clock, table: Table, ident: int, last_used: datetime | None) -> None:
    """Record use at most once a minute per credential, so reads do not turn into writes."""
    now = clock.now()
    if last_used is not None and now - last_used < LAST_USED_RESOLUTION:
        return
    with db.write() as conn:
        conn.execute(update(table).where(table.c.id == ident).values(last_used_at=now))
