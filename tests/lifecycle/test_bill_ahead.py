"""`fiscus bill` ahead of now: `--dry-run` lists what would be issued and writes nothing; without a
terminal it refuses unless `--yes`; on a terminal it asks, and only a yes bills."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.orders import create_order
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.builders import make_customer, make_tenant


def _fiscus(url: str, *args: str, stdin: int = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fiscus.cli", *args],
        env={**os.environ, "FISCUS_DATABASE_URL": url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
        stdin=stdin,
    )


def _rows(db: Database) -> tuple[int, int, int]:
    with db.read() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (t.documents, t.billing_runs, t.subscription_periods)
        )


def _setup(db: Database) -> str:
    """A subscription starting today on the real clock (the CLI's), and a pending order; returns an
    instant 40 days ahead, when the next period is due too."""
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FixedClock(now - timedelta(minutes=1))
    tenant = make_tenant(db, clock, "bg")
    cid = make_customer(db, clock, tenant)
    create_subscription(db, clock, tenant.org_id, cid, [ItemSpec(tenant.monthly, 1)])
    create_order(db, clock, tenant.org_id, cid, [ItemSpec(tenant.one_off, 2)])
    return (now + timedelta(days=40)).isoformat()


def test_dry_run_lists_and_writes_nothing(db: Database, db_url: str) -> None:
    ahead = _setup(db)
    before = _rows(db)
    r = _fiscus(db_url, "bill", "--at", ahead, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "nothing is written" in r.stdout
    assert "would issue 3 documents" in r.stdout  # two periods and the order
    assert "subscription" in r.stdout
    assert "order" in r.stdout
    assert _rows(db) == before


def test_ahead_without_a_terminal_needs_yes(db: Database, db_url: str) -> None:
    ahead = _setup(db)
    before = _rows(db)
    refused = _fiscus(db_url, "bill", "--at", ahead, "--quiet")
    assert refused.returncode == 2
    assert "ahead of now" in refused.stderr
    assert "--yes" in refused.stderr
    assert _rows(db) == before
    done = _fiscus(db_url, "bill", "--at", ahead, "--quiet", "--yes")
    assert done.returncode == 0, done.stderr
    assert _rows(db)[0] == 3


def test_on_a_terminal_it_asks_and_only_yes_bills(db: Database, db_url: str) -> None:
    ahead = _setup(db)
    before = _rows(db)
    for answer, code in (("n", 1), ("y", 0)):
        primary, secondary = pty.openpty()
        try:
            os.write(primary, f"{answer}\n".encode())
            r = _fiscus(db_url, "bill", "--at", ahead, "--quiet", stdin=secondary)
        finally:
            os.close(secondary)
            os.close(primary)
        assert r.returncode == code, (r.stdout, r.stderr)
        assert "Issue these 3 documents now?" in r.stdout + r.stderr
        if answer == "n":
            assert _rows(db) == before
    assert _rows(db)[0] == 3
