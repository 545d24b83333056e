"""`fiscus demo` as `make demo` runs it, a real process: it seeds, serves and runs the worker beside the
server, so an invoice issued by a billing run after the seed is charged and rendered with no manual
call; Ctrl-C (SIGINT) leaves no child process; a second `fiscus demo --no-serve` changes no row of
any table nor of the gateway's ledger, and prints the same (kept) test keys.

The seeded history ends three weeks ago (`--at`), so the worker, on the wall clock, has periods to bill
at once; one seeded demo serves every check (seeding is the expensive part)."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from tests.api_support import free_port

pytestmark = pytest.mark.slow  # long: collected first (conftest)

SEED_TIMEOUT = 600.0
WORKER_INTERVAL = 2.0
KEY = re.compile(r"test API key (fsk_test_\S+)")


def _children(pid: int) -> dict[int, str]:
    """Live child processes of `pid` with their command lines (from /proc)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out[int(entry.name)] = cmdline
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _counts(db: Database, ledger: Path) -> dict[str, int]:
    """Rows of every table of Fiscus's database and of the gateway's ledger."""
    with db.read() as conn:
        out = {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in t.metadata.sorted_tables
        }
    with sqlite3.connect(ledger) as gateway:
        names = [r[0] for r in gateway.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for name in names:
            out[f"gateway.{name}"] = int(gateway.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
    return out


def _worker_charged_and_rendered(db: Database, after: datetime) -> list[int]:
    """Invoices the worker's billing run issued (after the seeded history), charged and rendered."""
    d, a, f = t.documents.c, t.payment_attempts.c, t.document_files.c
    with db.read() as conn:
        return list(
            conn.execute(
                select(d.id)
                .where(
                    d.type == "invoice",
                    d.created_at > after,
                    d.billing_run_id.is_not(None),
                    d.id.in_(select(a.document_id).where(a.status == "succeeded")),
                    d.id.in_(select(f.document_id).where(f.kind == "pdf")),
                )
                .order_by(d.id)
            ).scalars()
        )


def test_demo_serves_with_a_worker_stops_on_ctrl_c_and_a_second_run_changes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "var" / "gateway.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FISCUS_")},
        "FISCUS_DATABASE_URL": db_url,
        "FISCUS_DOCUMENTS_DIR": str(tmp_path / "documents"),
        "FISCUS_PORT": str(free_port()),
        "FISCUS_ACCESS_LOG": "false",
        "COLUMNS": "200",
    }
    history_end = (datetime.now(UTC) - timedelta(days=21)).replace(microsecond=0)
    log_path = tmp_path / "demo.log"
    args = [sys.executable, "-m", "fiscus.cli", "demo", "--gateway-db", str(ledger)]
    with log_path.open("wb") as log:
        demo = subprocess.Popen(
            [*args, "--worker-interval", str(WORKER_INTERVAL), "--at", history_end.isoformat()],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    db = Database(db_url)
    children: dict[int, str] = {}
    try:
        deadline = time.monotonic() + SEED_TIMEOUT
        while "Worker:" not in log_path.read_text() and time.monotonic() < deadline:
            assert demo.poll() is None, log_path.read_text()
            time.sleep(0.5)
        assert "Worker:" in log_path.read_text(), log_path.read_text()
        seeded = time.monotonic()
        printed = KEY.findall(log_path.read_text())
        assert len(printed) == 3

        # within two worker cycles: a billing run's invoice charged and its PDF rendered, untouched by us
        found: list[int] = []
        while not found and time.monotonic() - seeded < 120:
            found = _worker_charged_and_rendered(db, history_end)
            time.sleep(0.5)
        elapsed = time.monotonic() - seeded
        assert found, f"nothing charged and rendered in {elapsed:.0f} s:\n{log_path.read_text()[-3000:]}"
        print(f"first invoice billed, charged and rendered by the worker {elapsed:.1f} s after the seed")

        children = _children(demo.pid)
        assert any(" worker " in c for c in children.values()), children
        assert any(" gateway " in c for c in children.values()), children
        demo.send_signal(signal.SIGINT)
        demo.wait(60)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [c for p, c in children.items() if _alive(p)]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

    try:
        before = _counts(db, ledger)
        assert before["documents"] > 700
        assert before["gateway.charges"] > 0
        again = subprocess.run(
            [*args, "--no-serve", "--json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=SEED_TIMEOUT,
            check=True,
        )
        assert _counts(db, ledger) == before
        shown = json.loads(again.stdout)
        assert [o["api_key"] for o in shown["organizations"]] == printed
        assert {o["livemode"] for o in shown["organizations"]} == {False}
    finally:
        db.dispose()
