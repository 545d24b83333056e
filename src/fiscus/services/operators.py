"""Operators: the people who run billing in the console, their roles per organisation, and the one
permission table every console action is checked against.

An operator acts as an `Actor` (operator, organisation, role) that only `acting` makes, from a
membership row; the services in `services/operator_actions.py` call `require(actor, permission)` before
they touch anything, so a refused action is refused here, whatever a page shows or hides. Audit rows
name the operator as `operator:<id>`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Final

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_console as tc
from fiscus.adapters.db.documents import append_audit, audit_row
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.errors import ConflictError, DomainError, InvalidFieldError, NotFoundError


class Role(StrEnum):
    ADMIN = "admin"
    FINANCE = "finance"
    SUPPORT = "support"
    VIEWER = "viewer"


_ALL = frozenset(Role)
_STAFF = frozenset({Role.ADMIN, Role.FINANCE, Role.SUPPORT})
_MONEY = frozenset({Role.ADMIN, Role.FINANCE})
_ADMIN = frozenset({Role.ADMIN})

PERMISSIONS: Final[dict[str, frozenset[Role]]] = {
    "console.read": _ALL,  # every list, detail page, dashboard and CSV export
    "customers.write": _STAFF,
    "payments.retry": _STAFF,  # charge what is due now with the saved card
    "subscriptions.change": _STAFF,  # plan or quantity, prorated
    "subscriptions.cancel": _STAFF,
    "documents.resend": _STAFF,  # the document's email again, through the email outbox
    "documents.issue": _MONEY,
    "documents.void": _MONEY,
    "documents.mark_paid": _MONEY,
    "credit_notes.issue": _MONEY,
    "refunds.create": _MONEY,
    "billing_runs.start": _MONEY,
    "subscriptions.pause_collection": _MONEY,  # stop or restart automatic charges: money owed
    "catalog.write": _MONEY,  # products, variants, prices (create, archive): what is charged
    "settings.write": _ADMIN,
    "api_keys.manage": _ADMIN,
    "operators.manage": _ADMIN,
}
"""Who may do what: the one table (docs/console.md prints it). A viewer sees; support helps customers
(edits them, retries a charge, changes or cancels a subscription); finance moves money (issues, voids,
marks paid, credits, refunds, runs billing); admin also manages settings, keys and operators."""

MIN_PASSWORD: Final = 12
SETUP_TTL: Final = timedelta(hours=24)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HASHER = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified against when the e-mail is unknown, so a login takes as long either way. Made on first
    use, not at import: argon2 is slow on purpose, and every process (each CLI call) would pay it."""
    return _HASHER.hash("not a password of anyone")


class PermissionDenied(DomainError):
    code = "forbidden"
    title = "Your role does not allow this"


@dataclass(frozen=True, slots=True)
class Actor:
    """An operator acting in one organisation with the role their membership gives there."""

    operator_id: int
    organization_id: int
    role: Role

    @property
    def audit(self) -> str:
        """How audit rows name this actor."""
        return f"operator:{self.operator_id}"

    def can(self, permission: str) -> bool:
        return allowed(self.role, permission)


@dataclass(frozen=True, slots=True)
class Membership:
    organization_id: int
    name: str
    mode: str
    role: Role


@dataclass(frozen=True, slots=True)
class OperatorInfo:
    id: int
    email: str
    name: str
    has_password: bool
    totp: bool
    disabled: bool
    memberships: list[tuple[int, Role]]


def allowed(role: Role, permission: str) -> bool:
    """Whether `role` may do `permission`; an unknown permission is allowed to nobody."""
    return role in PERMISSIONS.get(permission, frozenset())


def require(actor: Actor, permission: str) -> None:
    """Refuse (PermissionDenied) unless the actor's role allows `permission`."""
    if not actor.can(permission):
        raise PermissionDenied(f"the {actor.role.value} role may not do {permission}", permission=permission)


def hash_password(password: str) -> str:
    check_password(password)
    return _HASHER.hash(password)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidFieldError("password", f"must be at least {MIN_PASSWORD} characters")
    if len(password) > 1000:
        raise InvalidFieldError("password", "must be at most 1000 characters")


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches the stored argon2 hash (a missing hash still costs one verification)."""
    try:
        return _HASHER.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if not _EMAIL.match(value) or len(value) > 254:
        raise InvalidFieldError("email", "is not an e-mail address")
    return value


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidFieldError("role", f"must be one of {', '.join(r.value for r in Role)}") from None


def _require_org(conn: Connection, org_id: int) -> None:
    found = conn.execute(select(t.organizations.c.id).where(t.organizations.c.id == org_id)).scalar()
    if found is None:
        raise NotFoundError("organization", org_id, field="org")


def _grant(conn: Connection, operator_id: int, org_id: int, role: Role, actor: str, now: datetime) -> None:
    m = tc.operator_memberships.c
    existing = conn.execute(
        select(m.id, m.role).where(m.operator_id == operator_id, m.organization_id == org_id)
    ).first()
    if existing is None:
        conn.execute(
            insert(tc.operator_memberships).values(
                operator_id=operator_id, organization_id=org_id, role=role.value, created_at=now
            )
        )
        before = None
    elif existing.role == role.value:
        return
    else:
        conn.execute(update(tc.operator_memberships).where(m.id == existing.id).values(role=role.value))
        before = {"role": existing.role}
    append_audit(
        conn,
        [audit_row(org_id, "operator", operator_id, "granted", actor, now, before, {"role": role.value})],
    )


def create_operator(
    db: Database,
    clock: Clock,
    *,
    email: str,
    org_id: int,
    role: str,
    password: str | None = None,
    name: str = "",
    actor: str = "cli",
) -> tuple[int, str | None]:
    """A new operator with a role in `org_id`. Without a password, a one-time set-password token is
    returned (valid SETUP_TTL; only its hash is kept). Returns (operator id, token or None)."""
    address, the_role = normalize_email(email), _role(role)
    hashed = hash_password(password) if password is not None else None
    token = None if password is not None else secrets.token_urlsafe(32)
    now = clock.now()
    with db.write() as conn:
        _require_org(conn, org_id)
        try:
            with conn.begin_nested():
                operator_id = conn.execute(
                    insert(tc.operators)
                    .values(
                        email=address,
                        name=name.strip()[:200],
                        password_hash=hashed,
                        setup_token_hash=token_hash(token) if token else None,
                        setup_expires_at=now + SETUP_TTL if token else None,
                        disabled=False,
                        created_at=now,
                    )
                    .returning(tc.operators.c.id)
                ).scalar_one()
        except IntegrityError:
            raise ConflictError(
                f"an operator with e-mail {address} exists; add them with `users add`"
            ) from None
        append_audit(
            conn,
            [audit_row(org_id, "operator", operator_id, "created", actor, now, None, {"email": address})],
        )
        _grant(conn, operator_id, org_id, the_role, actor, now)
    return operator_id, token


def grant_role(db: Database, clock: Clock, *, email: str, org_id: int, role: str, actor: str = "cli") -> int:
    """Give an existing operator a role in an organisation (or change it); returns the operator id."""
    address, the_role = normalize_email(email), _role(role)
    with db.write() as conn:
        _require_org(conn, org_id)
        operator_id = conn.execute(select(tc.operators.c.id).where(tc.operators.c.email == address)).scalar()
        if operator_id is None:
            raise NotFoundError("operator", address, field="email")
        _grant(conn, operator_id, org_id, the_role, actor, clock.now())
    return int(operator_id)


def set_password_with_token(db: Database, clock: Clock, token: str, password: str) -> int:
    """Set the password through the one-time link (the token then stops working)."""
    hashed = hash_password(password)
    o = tc.operators.c
    now = clock.now()
    with db.write() as conn:
        row = conn.execute(
            select(o.id, o.setup_expires_at).where(o.setup_token_hash == token_hash(token)).with_for_update()
        ).first()
        if row is None or row.setup_expires_at is None or row.setup_expires_at < now:
            raise InvalidFieldError("token", "this link is unknown, used or expired; ask for a new one")
        conn.execute(
            update(tc.operators)
            .where(o.id == row.id)
            .values(password_hash=hashed, setup_token_hash=None, setup_expires_at=None)
        )
    return int(row.id)


def enable_totp(db: Database, operator_id: int) -> str:
    """Give the operator a TOTP secret (RFC 6238); returns it for their authenticator app."""
    secret = pyotp.random_base32()
    with db.write() as conn:
        done = conn.execute(
            update(tc.operators).where(tc.operators.c.id == operator_id).values(totp_secret=secret)
        ).rowcount
    if not done:
        raise NotFoundError("operator", operator_id)
    return secret


def acting(conn: Connection, operator_id: int, org_id: int) -> Actor:
    """The operator as an actor in `org_id`; an organisation they do not belong to does not exist for
    them (NotFoundError, a 404 like every other tenant's object)."""
    m = tc.operator_memberships.c
    role = conn.execute(
        select(m.role).where(m.operator_id == operator_id, m.organization_id == org_id)
    ).scalar()
    if role is None:
        raise NotFoundError("organization", org_id)
    return Actor(operator_id, org_id, Role(role))


def memberships(conn: Connection, operator_id: int) -> list[Membership]:
    """The organisations an operator may open, with their role in each (the org switcher)."""
    m, o = tc.operator_memberships.c, t.organizations.c
    rows = conn.execute(
        select(o.id, o.legal_name, o.mode, m.role)
        .join(t.organizations, o.id == m.organization_id)
        .where(m.operator_id == operator_id)
        .order_by(o.id)
    ).all()
    return [Membership(r.id, r.legal_name, r.mode, Role(r.role)) for r in rows]


def list_operators(db: Database, org_id: int | None = None) -> list[OperatorInfo]:
    """Every operator (of one organisation when given), with their memberships."""
    o, m = tc.operators.c, tc.operator_memberships.c
    with db.read() as conn:
        query = select(tc.operators).order_by(o.id)
        if org_id is not None:
            query = query.where(o.id.in_(select(m.operator_id).where(m.organization_id == org_id)))
        rows = conn.execute(query).mappings().all()
        grants: dict[int, list[tuple[int, Role]]] = {}
        for g in conn.execute(
            select(m.operator_id, m.organization_id, m.role).where(m.operator_id.in_([r["id"] for r in rows]))
        ):
            grants.setdefault(g.operator_id, []).append((g.organization_id, Role(g.role)))
    return [
        OperatorInfo(
            r["id"],
            r["email"],
            r["name"],
            r["password_hash"] is not None,
            r["totp_secret"] is not None,
            bool(r["disabled"]),
            sorted(grants.get(r["id"], [])),
        )
        for r in rows
    ]
