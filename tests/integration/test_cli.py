"""The command line as an operator uses it, in real processes, including `kill -9` mid-run; the follow-up
commands of a test run in-process through the same `fiscus.cli:main` (tests/cli_support.py)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.testing.bulk import bulk_customers, bulk_subscriptions
from tests.builders import make_tenant
from tests.cli_support import fiscus_here


def fiscus(url: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FISCUS_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "fiscus.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def documents(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(t.documents)).scalar_one())


def test_server_and_commands_refuse_an_unmigrated_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    served = fiscus(url, "serve", timeout=60)  # a real process: the server refuses to start
    assert served.returncode == 2
    assert "fiscus db upgrade" in served.stderr
    for command in (["bill"], ["reconcile"]):
        result = fiscus_here(url, *command)
        assert result.returncode == 2
        assert "fiscus db upgrade" in result.stderr
    assert fiscus_here(url, "db", "upgrade").returncode == 0
    assert fiscus_here(url, "reconcile").returncode == 0


def test_bill_and_reconcile_report(db: Database, db_url: str, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "kz")
    customers = bulk_customers(db, tenant.org_id, 30, now=clock.now())
    bulk_subscriptions(
        db, tenant.org_id, customers, [tenant.monthly], start=clock.now(), now=clock.now(), currency="KZT"
    )
    at = (clock.now() + timedelta(days=1)).isoformat()
    result = fiscus(db_url, "bill", "--at", at, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "documents created" in result.stdout
    assert "30" in result.stdout
    assert "KZT" in result.stdout
    assert fiscus_here(db_url, "bill", "--at", at, "--quiet").stdout.count("documents created") == 1
    assert documents(db) == 30
    assert fiscus_here(db_url, "reconcile").returncode == 0
    with db.write() as conn:  # a number taken but never used: a gap in the series
        conn.execute(update(t.number_series).values(next_value=t.number_series.c.next_value + 1))
    report = fiscus_here(db_url, "reconcile")
    assert report.returncode == 1
    assert "FAIL" in report.stdout
    assert "numbers_gapless_per_series" in report.stdout
    bad = fiscus_here(db_url, "bill", "--at", "yesterday")
    assert bad.returncode == 2
    assert "--at" in bad.stderr


@pytest.mark.slow
def test_kill_9_mid_run_then_restart_bills_every_period_once(
    db: Database, db_url: str, clock: FixedClock
) -> None:
    tenant = make_tenant(db, clock, "bg")
    start_at = datetime(2026, 1, 1, 10, tzinfo=UTC)
    customers = bulk_customers(db, tenant.org_id, 2000, now=clock.now(), eu_business_every=7)
    bulk_subscriptions(
        db, tenant.org_id, customers, [tenant.monthly, tenant.monthly_big], start=start_at, now=clock.now()
    )
    at = (start_at + timedelta(days=40)).isoformat()
    rng = random.Random(9)
    env = {**os.environ, "FISCUS_DATABASE_URL": db_url}
    interrupted = []
    for _ in range(4):
        before = documents(db)
        proc = subprocess.Popen(
            [sys.executable, "-m", "fiscus.cli", "bill", "--at", at, "--batch-size", "25", "--quiet"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        target = before + rng.randint(100, 600)
        while documents(db) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.random() * 0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        interrupted.append(documents(db))
    assert any(0 < n < 4000 for n in interrupted), interrupted
    final = fiscus_here(db_url, "bill", "--at", at, "--quiet")  # the restart: a process (above) is not needed
    assert final.returncode == 0, final.stderr
    with db.read() as conn:
        per_sub = conn.execute(
            select(t.subscription_periods.c.subscription_id, func.count()).group_by(
                t.subscription_periods.c.subscription_id
            )
        ).all()
    assert len(per_sub) == 2000
    assert {n for _s, n in per_sub} == {2}
    assert documents(db) == 4000
    report = fiscus_here(db_url, "reconcile")
    assert report.returncode == 0, report.stdout
