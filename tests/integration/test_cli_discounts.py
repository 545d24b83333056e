"""`fiscus coupons …` and `fiscus credits …` through the services (issue 17), run in-process by the CLI
runner (the process-level behaviour of the command line is `test_cli.py`'s)."""

from __future__ import annotations

import subprocess

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db.engine import Database
from fiscus.cli import app
from fiscus.domain.clock import FixedClock
from tests.builders import make_customer, make_tenant


def _runner(monkeypatch: pytest.MonkeyPatch, url: str) -> CliRunner:
    monkeypatch.setenv("FISCUS_DATABASE_URL", url)
    return CliRunner()


def test_operator_commands(
    db: Database, db_url: str, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _runner(monkeypatch, db_url)

    def fiscus(_url: str, *args: str) -> subprocess.CompletedProcess[str]:
        result = runner.invoke(app, list(args))
        code = (
            2
            if result.exception is not None and not isinstance(result.exception, SystemExit)
            else result.exit_code
        )
        return subprocess.CompletedProcess(args, code, result.stdout, repr(result.exception))

    tenant = make_tenant(db, clock, "bg", slug="cli-discounts")
    org = str(tenant.org_id)
    customer = str(make_customer(db, clock, tenant, 1))
    made = fiscus(
        db_url, "coupons", "create", "--org", org, "--name", "Launch", "--percent", "20", "--code", "go20"
    )
    assert made.returncode == 0, made.stderr
    assert "promotion code" in made.stdout
    listed = fiscus(db_url, "coupons", "list", "--org", org)
    assert "Launch" in listed.stdout
    assert "20 %" in listed.stdout
    bad = fiscus(db_url, "coupons", "create", "--org", org, "--name", "x", "--amount", "EUR=1.005")
    assert bad.returncode == 2
    assert "amounts_off.EUR" in bad.stderr
    grant = [
        "credits",
        "grant",
        "--org",
        org,
        "--customer",
        customer,
        "--amount",
        "7.50",
        "--currency",
        "EUR",
    ]
    assert fiscus(db_url, *grant).returncode == 0
    topup = [
        "credits",
        "topup",
        "--org",
        org,
        "--customer",
        customer,
        "--amount",
        "12.00",
        "--currency",
        "eur",
    ]
    assert "top-up invoice" in fiscus(db_url, *topup).stdout
    wallets = fiscus(db_url, "credits", "list", "--org", org, "--customer", customer)
    assert "7.50 EUR" in wallets.stdout
    with db.read() as conn:
        assert conn.execute(select(td.promotion_codes.c.code)).scalars().all() == ["GO20"]
        assert len(conn.execute(select(td.wallet_topups)).all()) == 1
