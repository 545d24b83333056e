"""Operators and their roles: the permission table, the service-layer refusal, login throttling and
lockout, TOTP, sessions (expiry, logout, a new id per login), and the CLI."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_console as tc
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.errors import ConflictError, InvalidFieldError, NotFoundError
from fiscus.services import console_sessions as sessions
from fiscus.services import operator_actions as actions
from fiscus.services import operators as ops
from fiscus.services.operators import Actor, PermissionDenied, Role
from fiscus.web.console.labels import OWN
from tests.builders import make_tenant

PASSWORD = "correct horse battery"


def test_permission_table() -> None:
    """A viewer only reads; support helps customers; finance moves money; admin does everything."""
    assert {r for r in Role if ops.allowed(r, "console.read")} == set(Role)
    assert {r for r in Role if ops.allowed(r, "refunds.create")} == {Role.ADMIN, Role.FINANCE}
    assert {r for r in Role if ops.allowed(r, "credit_notes.issue")} == {Role.ADMIN, Role.FINANCE}
    assert {r for r in Role if ops.allowed(r, "payments.retry")} == {Role.ADMIN, Role.FINANCE, Role.SUPPORT}
    assert {r for r in Role if ops.allowed(r, "operators.manage")} == {Role.ADMIN}
    assert not any(ops.allowed(r, "no.such.permission") for r in Role)


def test_every_console_text_is_translated() -> None:
    """bg, ru and kk carry every English key of the console (nothing falls back to English)."""
    for lang in ("bg", "ru", "kk"):
        assert set(OWN[lang]) == set(OWN["en"]), lang
        assert all(text.strip() for text in OWN[lang].values()), lang


def test_service_refuses_a_role_before_touching_anything(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock)
    viewer = Actor(1, tenant.org_id, Role.VIEWER)
    with pytest.raises(PermissionDenied):
        actions.void_document(db, clock, viewer, 999_999)  # refused before the lookup: no 404
    with pytest.raises(PermissionDenied):
        actions.issue_credit_note(
            db,
            clock,
            Actor(1, tenant.org_id, Role.SUPPORT),
            1,
            mode="full",
            amount=None,
            reason="x",
            disposition="reduce_due",
        )
    with pytest.raises(NotFoundError):  # allowed, so it reaches the service, which finds nothing
        actions.void_document(db, clock, Actor(1, tenant.org_id, Role.FINANCE), 999_999)


def test_operator_lifecycle(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock)
    other = make_tenant(db, clock, "us", slug="other")
    operator_id, token = ops.create_operator(
        db, clock, email=" Ada@Example.COM ", org_id=tenant.org_id, role="finance"
    )
    assert token is not None
    with pytest.raises(ConflictError):
        ops.create_operator(db, clock, email="ada@example.com", org_id=tenant.org_id, role="viewer")
    with pytest.raises(InvalidFieldError) as bad:
        ops.create_operator(db, clock, email="x@example.com", org_id=tenant.org_id, role="owner")
    assert bad.value.field == "role"
    assert sessions.login(db, clock, "ada@example.com", PASSWORD).error == "invalid"  # no password yet
    with pytest.raises(InvalidFieldError):
        ops.set_password_with_token(db, clock, token, "short")
    ops.set_password_with_token(db, clock, token, PASSWORD)
    with pytest.raises(InvalidFieldError):  # one time only
        ops.set_password_with_token(db, clock, token, PASSWORD)
    ops.grant_role(db, clock, email="ada@example.com", org_id=other.org_id, role="viewer")
    with db.read() as conn:
        assert [(m.organization_id, m.role) for m in ops.memberships(conn, operator_id)] == [
            (tenant.org_id, Role.FINANCE),
            (other.org_id, Role.VIEWER),
        ]
        assert ops.acting(conn, operator_id, other.org_id).role is Role.VIEWER
        with pytest.raises(NotFoundError):
            ops.acting(conn, operator_id, 10_000)
        actors = conn.execute(
            select(t.audit_events.c.action, t.audit_events.c.actor).where(
                t.audit_events.c.entity_type == "operator"
            )
        ).all()
    assert ("created", "cli") in actors
    assert ("granted", "cli") in actors


def test_login_sessions_throttling_totp(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock)
    operator_id, _ = ops.create_operator(
        db, clock, email="ops@example.com", org_id=tenant.org_id, role="admin", password=PASSWORD
    )
    first = sessions.login(db, clock, "OPS@example.com", PASSWORD)
    second = sessions.login(db, clock, "ops@example.com", PASSWORD)
    assert first.token
    assert second.token
    assert first.token != second.token
    info = sessions.session_of(db, clock, first.token)
    assert info is not None
    assert info.operator_id == operator_id
    sessions.logout(db, clock, first.token)
    assert sessions.session_of(db, clock, first.token) is None
    assert sessions.session_of(db, clock, second.token) is not None
    clock.advance(sessions.IDLE_TIMEOUT + timedelta(seconds=1))
    assert sessions.session_of(db, clock, second.token) is None  # idle too long

    for _ in range(sessions.MAX_FAILURES):
        assert sessions.login(db, clock, "ops@example.com", "wrong password!!").error == "invalid"
    assert sessions.login(db, clock, "ops@example.com", PASSWORD).error == "locked"
    clock.advance(sessions.LOCKOUT + timedelta(seconds=1))
    assert sessions.login(db, clock, "ops@example.com", PASSWORD).token

    secret = ops.enable_totp(db, operator_id)
    assert sessions.login(db, clock, "ops@example.com", PASSWORD).error == "code_required"
    assert sessions.login(db, clock, "ops@example.com", PASSWORD, "000000").error == "invalid"
    code = pyotp.TOTP(secret).at(clock.now())
    assert sessions.login(db, clock, "ops@example.com", PASSWORD, code).token


def test_login_throttling_per_client_address(
    db: Database, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failures spread over many e-mails from one address lock that address (not the accounts): the
    right password from it is refused until the failures age out, while another address gets in."""
    monkeypatch.setattr(sessions, "MAX_ADDRESS_FAILURES", 3)
    tenant = make_tenant(db, clock)
    ops.create_operator(
        db, clock, email="ip@example.com", org_id=tenant.org_id, role="viewer", password=PASSWORD
    )
    for n in range(3):
        result = sessions.login(
            db, clock, f"guess{n}@example.com", "wrong password!!", client_ip="203.0.113.9"
        )
        assert result.error == "invalid"
    assert sessions.login(db, clock, "ip@example.com", PASSWORD, client_ip="203.0.113.9").error == "locked"
    assert sessions.login(db, clock, "ip@example.com", PASSWORD, client_ip="198.51.100.7").token
    clock.advance(sessions.FAILURE_WINDOW + timedelta(seconds=1))
    assert sessions.login(db, clock, "ip@example.com", PASSWORD, client_ip="203.0.113.9").token
    with db.read() as conn:
        la = tc.login_attempts.c
        reasons = conn.execute(select(la.reason).where(la.client_ip == "203.0.113.9")).scalars().all()
    assert reasons.count("address_locked") == 1


def test_cli_users(db_url: str, monkeypatch: pytest.MonkeyPatch, clock: FixedClock) -> None:
    from fiscus.cli import app

    db = Database(db_url)
    tenant = make_tenant(db, clock)
    monkeypatch.setenv("FISCUS_DATABASE_URL", db_url)
    runner = CliRunner()
    made = runner.invoke(
        app,
        [
            "users",
            "create",
            "--email",
            "fin@example.com",
            "--role",
            "finance",
            "--org",
            str(tenant.org_id),
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
    )
    assert made.exit_code == 0, made.output
    link = runner.invoke(
        app,
        ["users", "create", "--email", "new@example.com", "--role", "viewer", "--org", str(tenant.org_id)],
    )
    assert link.exit_code == 0
    assert "/console/set-password?token=" in link.output
    listed = runner.invoke(app, ["users", "list"])
    assert "fin@example.com" in listed.output
    assert f"finance@{tenant.org_id}" in listed.output
    assert sessions.login(db, FixedClock(clock.now()), "fin@example.com", PASSWORD).token
    db.dispose()


def test_demo_operator_is_made_once(db: Database, clock: FixedClock) -> None:
    from fiscus.adapters.db import tables_console as tc
    from fiscus.demo.console import ensure_demo_operator

    a = make_tenant(db, clock)
    b = make_tenant(db, clock, "us", slug="demo-b")
    email, password = ensure_demo_operator(db, clock, [a.org_id, b.org_id])
    with db.read() as conn:
        before = conn.execute(select(tc.operator_memberships.c.id)).all()
    assert ensure_demo_operator(db, clock, [a.org_id, b.org_id]) == (email, password)
    with db.read() as conn:
        assert conn.execute(select(tc.operator_memberships.c.id)).all() == before
        operator_id = conn.execute(select(tc.operators.c.id)).scalar_one()
        assert {m.role for m in ops.memberships(conn, operator_id)} == {Role.ADMIN}
    assert sessions.login(db, clock, email, password).token
