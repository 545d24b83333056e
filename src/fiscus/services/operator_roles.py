"""An admin managing the operators of their organisation (`operators.manage`): invite one (a one-time
set-password link, or a role for a person who already has a login), change a role, remove a
membership, disable a login. Every change is audited with the admin as actor.

Two rules hold here, not in a page: an organisation never loses its last enabled admin (no one could
manage it any more), and a login that also opens organisations the admin does not administer is not
theirs to disable (they remove its membership instead)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, select, update

from fiscus.adapters.db import tables_console as tc
from fiscus.adapters.db.documents import append_audit, audit_row
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.errors import FieldConflictError, NotFoundError
from fiscus.services.operators import Actor, Role, _grant, _role, create_operator, normalize_email, require


@dataclass(frozen=True, slots=True)
class Member:
    """An operator as the organisation's operators page lists them."""

    id: int
    email: str
    name: str
    role: Role
    has_password: bool
    totp: bool
    disabled: bool


def members(db: Database, org_id: int) -> list[Member]:
    o, m = tc.operators.c, tc.operator_memberships.c
    with db.read() as conn:
        rows = conn.execute(
            select(o.id, o.email, o.name, m.role, o.password_hash, o.totp_secret, o.disabled)
            .join(tc.operator_memberships, m.operator_id == o.id)
            .where(m.organization_id == org_id)
            .order_by(o.id)
        ).all()
    return [
        Member(
            r.id,
            r.email,
            r.name,
            Role(r.role),
            r.password_hash is not None,
            r.totp_secret is not None,
            bool(r.disabled),
        )
        for r in rows
    ]


def invite(db: Database, clock: Clock, actor: Actor, *, email: str, role: str, name: str = "") -> str | None:
    """A new operator with `role` here and a one-time set-password link's token (returned once); a
    person who already has a login gets the role and no token."""
    require(actor, "operators.manage")
    address, the_role = normalize_email(email), _role(role)
    o = tc.operators.c
    with db.write() as conn:
        existing = conn.execute(select(o.id).where(o.email == address)).scalar()
        if existing is not None:
            if _membership(conn, int(existing), actor.organization_id) is not None:
                raise FieldConflictError(
                    "email", "this person is already an operator here; change their role"
                )
            _grant(conn, int(existing), actor.organization_id, the_role, actor.audit, clock.now())
            return None
    _, token = create_operator(
        db,
        clock,
        email=address,
        org_id=actor.organization_id,
        role=the_role.value,
        name=name,
        actor=actor.audit,
    )
    return token


def _membership(conn: Connection, operator_id: int, org_id: int) -> str | None:
    m = tc.operator_memberships.c
    role = conn.execute(
        select(m.role).where(m.operator_id == operator_id, m.organization_id == org_id).with_for_update()
    ).scalar()
    return None if role is None else str(role)


def _member_role(conn: Connection, operator_id: int, org_id: int) -> str:
    role = _membership(conn, operator_id, org_id)
    if role is None:
        raise NotFoundError("operator", operator_id)
    return role


def _keep_an_admin(conn: Connection, org_id: int, leaving: int, field: str) -> None:
    """Refuse when `leaving` is the organisation's last enabled admin."""
    o, m = tc.operators.c, tc.operator_memberships.c
    others = conn.execute(
        select(func.count())
        .select_from(tc.operator_memberships.join(tc.operators, o.id == m.operator_id))
        .where(
            m.organization_id == org_id,
            m.role == Role.ADMIN.value,
            m.operator_id != leaving,
            o.disabled.is_(False),
        )
    ).scalar_one()
    if not others:
        raise FieldConflictError(field, "the organisation would have no admin left; make another admin first")


def change_role(db: Database, clock: Clock, actor: Actor, operator_id: int, role: str) -> None:
    require(actor, "operators.manage")
    with db.write() as conn:
        current = _member_role(conn, operator_id, actor.organization_id)
        the_role = _role(role)
        if current == Role.ADMIN.value and the_role is not Role.ADMIN:
            _keep_an_admin(conn, actor.organization_id, operator_id, "role")
        _grant(conn, operator_id, actor.organization_id, the_role, actor.audit, clock.now())


def remove(db: Database, clock: Clock, actor: Actor, operator_id: int) -> None:
    """End the operator's membership here (their login and other organisations stay)."""
    require(actor, "operators.manage")
    m = tc.operator_memberships.c
    org_id = actor.organization_id
    with db.write() as conn:
        role = _member_role(conn, operator_id, org_id)
        if role == Role.ADMIN.value:
            _keep_an_admin(conn, org_id, operator_id, "operator")
        conn.execute(
            delete(tc.operator_memberships).where(m.operator_id == operator_id, m.organization_id == org_id)
        )
        append_audit(
            conn,
            [
                audit_row(
                    org_id, "operator", operator_id, "removed", actor.audit, clock.now(), {"role": role}, None
                )
            ],
        )


def disable(db: Database, clock: Clock, actor: Actor, operator_id: int) -> None:
    """Turn the login off (its sessions stop at their next request: a session of a disabled
    operator is refused). Only for a login whose every organisation the
    acting operator administers, and never the last admin of any of them."""
    require(actor, "operators.manage")
    m = tc.operator_memberships.c
    with db.write() as conn:
        _member_role(conn, operator_id, actor.organization_id)
        theirs = conn.execute(select(m.organization_id, m.role).where(m.operator_id == operator_id)).all()
        mine = set(
            conn.execute(
                select(m.organization_id).where(
                    m.operator_id == actor.operator_id, m.role == Role.ADMIN.value
                )
            ).scalars()
        )
        if any(r.organization_id not in mine for r in theirs):
            raise FieldConflictError(
                "operator",
                "this login also opens organisations you do not administer; remove their membership",
            )
        for r in theirs:
            if r.role == Role.ADMIN.value:
                _keep_an_admin(conn, r.organization_id, operator_id, "operator")
        done = conn.execute(
            update(tc.operators)
            .where(tc.operators.c.id == operator_id, tc.operators.c.disabled.is_(False))
            .values(disabled=True)
        ).rowcount
        if done:
            now = clock.now()
            append_audit(
                conn,
                [
                    audit_row(
                        r.organization_id, "operator", operator_id, "disabled", actor.audit, now, None, None
                    )
                    for r in theirs
                ],
            )
