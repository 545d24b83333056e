"""Billing-run throughput on SQLite and PostgreSQL, with durable settings. Prints figures, asserts nothing.

    .venv/bin/python bench/billing_run.py [--sizes 10000,100000] [--db sqlite,postgresql]
                                          [--batch-size 250] [--profile]

For each database and size N: a fresh database, migrations, one organisation and catalog through the
services, N customers with one due monthly subscription each (bulk-inserted, see _setup.py), then a
timed `run_billing` at an instant where exactly one period per subscription is due. Afterwards cheap
SQL counts check the outcome, and `reconcile` runs (on SQLite up to --reconcile-max). The baseline is the same
run with `batch_size=1` (one transaction per invoice) on min(N, 2,000) subscriptions.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import platform
import pstats
import shutil
import signal
import sqlite3
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy
from _setup import AT, Catalog, create_database_schema, expected_for, populate, settle
from rich.console import Console
from rich.table import Table
from sqlalchemy import event, func, select, text

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.billing_run import BillingRunSummary, count_due, run_billing
from fiscus.services.reconcile import reconcile
from fiscus.testing.pgcluster import PostgresUnavailable, ThrowawayPostgres

GOALS: dict[str, int] = {"postgresql": 2_000, "sqlite": 1_000}
"""Invoices per second the issue asks for: information only, never an exit code."""
BASELINE_MAX = 2_000
PROFILE_N = 10_000

console = Console(highlight=False, width=140)


def say(message: str = "") -> None:
    console.print(message, markup=False, soft_wrap=True)


# --------------------------------------------------------------------------- databases


class Target:
    """Where fresh databases come from."""

    name: str

    def fresh(self, label: str) -> tuple[Database, float]:
        """A new, migrated database; returns it with the migration time."""
        raise NotImplementedError

    def discard(self, db: Database) -> None:
        raise NotImplementedError

    def describe(self) -> list[str]:
        raise NotImplementedError


class SqliteTarget(Target):
    name = "sqlite"

    def __init__(self) -> None:
        # tempfile's default directory (/tmp unless TMPDIR says otherwise): on disk, not tmpfs.
        self.root = Path(tempfile.mkdtemp(prefix="fiscus-bench-"))
        self._paths: dict[int, Path] = {}

    def fresh(self, label: str) -> tuple[Database, float]:
        path = self.root / f"{label}.db"
        url = f"sqlite:///{path}"
        migrate = create_database_schema(url)
        db = Database(url)
        self._paths[id(db)] = path
        return db, migrate

    def discard(self, db: Database) -> None:
        db.dispose()
        path = self._paths.pop(id(db))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    def describe(self) -> list[str]:
        db, _ = self.fresh("probe")
        try:
            with db.read() as conn:
                sync = conn.exec_driver_sql("PRAGMA synchronous").scalar_one()
                journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()
        finally:
            self.discard(db)
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return [
            f"SQLite      {sqlite3.sqlite_version} (Database defaults: journal_mode={journal}, "
            f"synchronous={names.get(int(sync), sync)})",
            f"            files in {self.root} ({filesystem_of(self.root)})",
        ]

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class PostgresTarget(Target):
    name = "postgresql"

    def __init__(self) -> None:
        self.cluster = ThrowawayPostgres(durable=True)
        self.cluster.start()
        self._names: dict[int, str] = {}
        self._count = 0

    def fresh(self, label: str) -> tuple[Database, float]:
        self._count += 1
        name = f"bench_{self._count}_{label}".lower()[:63]
        url = self.cluster.create_database(name)
        migrate = create_database_schema(url)
        db = Database(url)
        self._names[id(db)] = name
        return db, migrate

    def discard(self, db: Database) -> None:
        db.dispose()
        self.cluster.drop_database(self._names.pop(id(db)))

    def describe(self) -> list[str]:
        with _pg(self.cluster.url()) as conn:
            version = conn.execute(text("SELECT version()")).scalar_one()
            shown = {
                k: conn.execute(text(f"SHOW {k}")).scalar_one()
                for k in ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method")
            }
        settings = ", ".join(f"{k}={v}" for k, v in shown.items())
        base = _cluster_dir(self.cluster)
        return [
            f"PostgreSQL  {version}",
            f"            {settings} (ThrowawayPostgres(durable=True))",
            f"            cluster in {base} ({filesystem_of(base) if base else '?'})",
        ]

    def close(self) -> None:
        self.cluster.stop()

    def server_cpu(self) -> float | None:
        """CPU seconds of the cluster so far: the postmaster and its children (backends, WAL writer,
        checkpointer), from /proc. A backend that exited takes its CPU with it, so read this around
        a run whose connections stay open."""
        base = _cluster_dir(self.cluster)
        pid_file = next(base.rglob("postmaster.pid"), None) if base else None
        if pid_file is None:
            return None
        postmaster = int(pid_file.read_text().split()[0])
        tick, total = os.sysconf("SC_CLK_TCK"), 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat.parent.name) == postmaster or int(fields[1]) == postmaster:
                total += int(fields[11]) + int(fields[12])
        return total / tick


@contextlib.contextmanager
def _pg(url: str) -> Iterator[sqlalchemy.Connection]:
    db = Database(url, pool_size=1)
    try:
        with db.read() as conn:
            yield conn
    finally:
        db.dispose()


def _cluster_dir(cluster: ThrowawayPostgres) -> Path | None:
    base = getattr(cluster, "_base_dir", None)
    return base if isinstance(base, Path) else None


def filesystem_of(path: Path) -> str:
    """The file system type holding `path` (from /proc/mounts), to show the data is not in RAM."""
    try:
        mounts = [line.split()[:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "file system unknown"
    resolved = str(path.resolve())
    best = ("", "?", "?")
    for device, mount, fstype in mounts:
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best[0]):
            best = (mount, fstype, device)
    return f"{best[1]} on {best[2]}, mounted at {best[0]}"


# --------------------------------------------------------------------------- one measurement


@dataclass(slots=True)
class Baseline:
    n: int
    documents: int
    seconds: float
    rate: float


@dataclass(slots=True)
class Result:
    db: str
    n: int
    batch_size: int
    migrate_seconds: float
    setup_seconds: float
    summary: BillingRunSummary
    timing: Timing
    checks: dict[str, tuple[int, int]] = field(default_factory=dict)
    reconcile: str = ""
    baseline: Baseline | None = None

    @property
    def verified(self) -> bool:
        return (
            all(got == want for got, want in self.checks.values()) and not self.summary.failed_subscriptions
        )


def prepare(target: Target, label: str, n: int) -> tuple[Database, Catalog, float, float]:
    db, migrate = target.fresh(label)
    started = time.perf_counter()
    catalog = populate(db, n)
    settle(db)
    return db, catalog, migrate, time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class Timing:
    wall: float
    cpu: float
    """CPU seconds of this process (the Python side; PostgreSQL's backend is another process)."""
    load: tuple[float, float, float]
    """Load averages at the end: other work on the machine slows the figures."""
    server: float | None = None
    """CPU seconds of the PostgreSQL cluster during the run (None on SQLite: it is in this process)."""

    def describe(self) -> str:
        cpus = os.cpu_count() or 1
        busy = "  MACHINE BUSY: figures unreliable" if self.load[0] > cpus else ""
        return (
            f"wall {self.wall:.2f}s incl. run bookkeeping, this process's CPU {self.cpu:.2f}s, "
            + (f"PostgreSQL's CPU {self.server:.2f}s, " if self.server is not None else "")
            + f"load average {self.load[0]:.1f}/{self.load[1]:.1f} on {cpus} CPUs{busy}"
        )


def timed_run(
    db: Database, batch_size: int, target: Target | None = None
) -> tuple[BillingRunSummary, Timing]:
    server_cpu = getattr(target, "server_cpu", lambda: None)
    server0 = server_cpu()
    started, cpu = time.perf_counter(), time.process_time()
    summary = run_billing(db, FixedClock(AT), at=AT, batch_size=batch_size)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    server1 = server_cpu()
    server = server1 - server0 if server0 is not None and server1 is not None else None
    load = os.getloadavg()
    return summary, Timing(wall, cpu, (load[0], load[1], load[2]), server)


def verify(db: Database, n: int) -> dict[str, tuple[int, int]]:
    """(found, expected) for a handful of counts that a correct run must produce."""
    exp = expected_for(n)
    d, lines, periods = t.documents.c, t.document_lines.c, t.subscription_periods.c
    with db.read() as conn:

        def count(query: Any) -> int:
            return int(conn.execute(query).scalar_one())

        checks = {
            "documents": (count(select(func.count()).select_from(t.documents)), n),
            "subscription_periods": (count(select(func.count()).select_from(t.subscription_periods)), n),
            "issued invoices, numbered": (
                count(
                    select(func.count())
                    .select_from(t.documents)
                    .where(d.type == "invoice", d.status == "open", d.number.is_not(None))
                ),
                n,
            ),
            "periods starting at the anchor": (
                count(
                    select(func.count(func.distinct(periods.subscription_id))).where(
                        periods.period_start < AT
                    )
                ),
                n,
            ),
            "document_lines": (count(select(func.count()).select_from(t.document_lines)), exp.lines),
            "reverse-charge lines": (
                count(select(func.count()).where(lines.tax_treatment == "reverse_charge")),
                exp.reverse_charge_lines,
            ),
        }
    checks["still due"] = (count_due(db, AT)[0], 0)
    return checks


def run_reconcile(db: Database, n: int, limit: int) -> str:
    """On SQLite only up to `limit`: its issued_documents_have_audit check scans audit_events once
    per document there (quadratic: ~8 s at 10k, would be ~15 min at 100k); PostgreSQL hash-joins."""
    if db.is_sqlite and n > limit:
        return (
            f"skipped on SQLite for N > --reconcile-max {limit:,} (issued_documents_have_audit is quadratic)"
        )
    started = time.perf_counter()
    report = reconcile(db)
    bad = {name: len(rows) for name, rows in report.items() if rows}
    took = time.perf_counter() - started
    return f"clean ({len(report)} checks, {took:.1f}s)" if not bad else f"VIOLATIONS {bad} ({took:.1f}s)"


def measure(target: Target, n: int, args: argparse.Namespace) -> Result:
    say(f"[{target.name} N={n:,}] setting up ...")
    db, _cat, migrate, setup = prepare(target, f"run_{n}", n)
    try:
        say(f"[{target.name} N={n:,}] migrations {migrate:.2f}s, data set-up {setup:.2f}s (not timed below)")
        summary, timing = timed_run(db, args.batch_size, target)
        result = Result(target.name, n, args.batch_size, migrate, setup, summary, timing)
        say(
            f"[{target.name} N={n:,}] run_billing(batch_size={args.batch_size}): "
            f"{summary.documents:,} documents in {summary.seconds:.2f}s = {summary.rate:,.0f} invoices/s "
            f"(totals {summary.totals})"
        )
        say(f"    {timing.describe()}")
        if summary.documents:
            per = 1e6 / summary.documents
            server = f", PostgreSQL {timing.server * per:,.0f} us" if timing.server is not None else ""
            say(f"    CPU per invoice: client {timing.cpu * per:,.0f} us{server}")
        result.checks = verify(db, n)
        for name, (got, want) in result.checks.items():
            mark = "ok" if got == want else "MISMATCH"
            say(f"    check {name:<32} {got:>9,} (expected {want:,}) {mark}")
        if summary.failed_subscriptions:
            say(f"    FAILED subscriptions: {len(summary.failed_subscriptions)}")
        result.reconcile = run_reconcile(db, n, args.reconcile_max)
        say(f"    reconcile: {result.reconcile}")
    finally:
        target.discard(db)
    return result


def measure_baseline(target: Target, n: int) -> Baseline:
    size = min(n, BASELINE_MAX)
    say(f"[{target.name} baseline N={size:,}] setting up ...")
    db, _cat, _migrate, _setup = prepare(target, f"baseline_{size}", size)
    try:
        summary, timing = timed_run(db, 1)
        checks = verify(db, size)
        bad = [k for k, (got, want) in checks.items() if got != want]
    finally:
        target.discard(db)
    say(
        f"[{target.name} baseline N={size:,}] run_billing(batch_size=1): {summary.documents:,} documents "
        f"in {summary.seconds:.2f}s = {summary.rate:,.0f} invoices/s"
        + (f"  CHECKS FAILED: {bad}" if bad else "  (counts ok)")
    )
    say(f"    {timing.describe()}")
    return Baseline(size, summary.documents, summary.seconds, summary.rate)


# --------------------------------------------------------------------------- profile


@dataclass(slots=True)
class SqlTimes:
    """Time spent inside cursor.execute/executemany, per statement (the first words of its SQL)."""

    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def attach(self, db: Database) -> Callable[[], None]:
        started: list[float] = []

        def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
            started.append(time.perf_counter())

        def after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
            key = " ".join(statement.split())[:90]
            self.calls[key] += 1
            # executemany: a list of parameter sets; one statement (insertmanyvalues too): flat values
            batch = (
                many and isinstance(params, list | tuple) and params and isinstance(params[0], dict | tuple)
            )
            self.rows[key] += len(params) if batch else 0
            self.seconds[key] += time.perf_counter() - started.pop()

        event.listen(db.engine, "before_cursor_execute", before)
        event.listen(db.engine, "after_cursor_execute", after)

        def detach() -> None:
            event.remove(db.engine, "before_cursor_execute", before)
            event.remove(db.engine, "after_cursor_execute", after)

        return detach


def profile(target: Target, batch_size: int) -> None:
    say()
    say(f"=== cProfile of run_billing on {target.name}, N={PROFILE_N:,}, batch_size={batch_size} ===")
    say("(a separate run on a fresh database: the profiler's overhead is not in the figures above)")
    db, _cat, _migrate, _setup = prepare(target, "profile", PROFILE_N)
    sql = SqlTimes()
    detach = sql.attach(db)
    prof = cProfile.Profile()
    try:
        prof.enable()
        summary = run_billing(db, FixedClock(AT), at=AT, batch_size=batch_size)
        prof.disable()
    finally:
        detach()
        target.discard(db)
    say(f"{summary.documents:,} documents in {summary.seconds:.2f}s under the profiler")
    for order, top in (("cumulative", 25), ("tottime", 20)):
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(top)
        say(f"--- top {top} by {order} time ---")
        body = out.getvalue()
        say(body[body.find("   ncalls") :].rstrip())
    total_sql = sum(sql.seconds.values())
    table = Table(title=f"SQL statements (cursor time {total_sql:.2f}s of {summary.seconds:.2f}s)")
    for col in ("seconds", "calls", "executemany rows", "statement"):
        table.add_column(col, justify="left" if col == "statement" else "right")
    for key in sorted(sql.seconds, key=sql.seconds.__getitem__, reverse=True)[:15]:
        rows = f"{sql.rows[key]:,}" if sql.rows[key] else "-"
        table.add_row(f"{sql.seconds[key]:.3f}", f"{sql.calls[key]:,}", rows, key)
    console.print(table)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )

    def ints(value: str) -> list[int]:
        return [int(v.replace("_", "")) for v in value.split(",") if v.strip()]

    def dbs(value: str) -> list[str]:
        chosen = [v.strip() for v in value.split(",") if v.strip()]
        unknown = set(chosen) - set(GOALS)
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown database(s) {sorted(unknown)}; use sqlite,postgresql")
        return chosen

    parser.add_argument(
        "--sizes", type=ints, default=[10_000, 100_000], help="N values (default 10000,100000)"
    )
    parser.add_argument("--db", type=dbs, default=["sqlite", "postgresql"], help="sqlite,postgresql")
    parser.add_argument("--batch-size", type=int, default=250, help="run_billing batch size (default 250)")
    parser.add_argument(
        "--reconcile-max",
        type=int,
        default=10_000,
        help="on SQLite, run reconcile only for N up to this (default 10000); PostgreSQL: always",
    )
    parser.add_argument("--runs", type=int, default=1, help="timed runs per N, each on a fresh database")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the batch_size=1 baseline (slow when disk is busy)"
    )
    parser.add_argument(
        "--profile", action="store_true", help=f"also cProfile an N={PROFILE_N:,} run (top 25 cumulative)"
    )
    parser.add_argument(
        "--profile-db",
        choices=sorted(GOALS),
        default="sqlite",
        help="the database of the --profile run (default sqlite)",
    )
    return parser.parse_args(argv)


def header(args: argparse.Namespace, targets: list[Target]) -> None:
    say("=== Fiscus billing-run benchmark ===")
    say(f"Machine     {os.cpu_count()} CPUs, {platform.platform()}, {platform.machine()}")
    load = os.getloadavg()
    say(
        f"Load        {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start"
        " (other work on the machine skews the figures)"
    )
    say(f"Python      {platform.python_implementation()} {platform.python_version()}")
    say(f"Libraries   SQLAlchemy {sqlalchemy.__version__}, psycopg {psycopg.__version__}")
    for target in targets:
        for line in target.describe():
            say(line)
    say(f"Run         batch_size={args.batch_size}, N={', '.join(f'{n:,}' for n in args.sizes)}")
    say(
        "Data        1 organisation (BG, EUR, Europe/Sofia, VAT 20%), 1 product, 2 monthly prices;"
        " N customers (10% DE with VAT ID: reverse charge),\n            N active monthly subscriptions"
        f" (half with 2 items), all due at {AT.isoformat()}"
    )
    say(f"Baseline    the same run with batch_size=1 on min(N, {BASELINE_MAX:,}) subscriptions")
    say()


def summary_table(results: list[Result]) -> Table:
    table = Table(title="billing run: invoices per second (goals are information, not a pass/fail)")
    for col in (
        "database",
        "N",
        "set-up s",
        "run s",
        "invoices/s",
        "baseline (batch 1)",
        "ratio",
        "goal",
        "checks",
    ):
        table.add_column(col, justify="left" if col in ("database", "goal", "checks") else "right")
    for r in results:
        goal = GOALS[r.db]
        rate = r.summary.rate
        base = r.baseline
        table.add_row(
            r.db,
            f"{r.n:,}",
            f"{r.setup_seconds:.1f}",
            f"{r.summary.seconds:.2f}",
            f"{rate:,.0f}",
            f"{base.rate:,.0f}/s (N={base.n:,})" if base else "-",
            f"{rate / base.rate:.1f}x" if base and base.rate else "-",
            f"≥ {goal:,}/s: {'goal met' if rate >= goal else 'below goal'}",
            ("counts ok" if r.verified else "MISMATCH")
            + (
                ""
                if r.reconcile.startswith("clean")
                else ", reconcile skipped"
                if "skipped" in r.reconcile
                else ", RECONCILE!"
            ),
        )
    return table


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through `finally`: the PostgreSQL cluster is stopped


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    targets: list[Target] = []
    try:
        for name in args.db:
            if name == "sqlite":
                targets.append(SqliteTarget())
            else:
                try:
                    targets.append(PostgresTarget())
                except PostgresUnavailable as exc:
                    say(f"PostgreSQL unavailable, skipped: {exc}")
        header(args, targets)
        results: list[Result] = []
        baselines: dict[tuple[str, int], Baseline] = {}
        for target in targets:
            for n in args.sizes * args.runs:
                result = measure(target, n, args)
                results.append(result)
                if args.no_baseline:
                    say()
                    continue
                key = (target.name, min(n, BASELINE_MAX))
                if key not in baselines:
                    baselines[key] = measure_baseline(target, n)
                else:
                    say(f"[{target.name} baseline N={key[1]:,}] same as above, reused")
                result.baseline = baselines[key]
                base = result.baseline
                rate = result.summary.rate
                say(
                    f"[{target.name} N={n:,}] batched/baseline = {rate:,.0f} / {base.rate:,.0f} "
                    f"= {rate / base.rate:.1f}x"
                )
                say()
        console.print(summary_table(results))
        if args.profile:
            chosen = next((x for x in targets if x.name == args.profile_db), None)
            if chosen is None:
                chosen = SqliteTarget() if args.profile_db == "sqlite" else PostgresTarget()
                targets.append(chosen)
            profile(chosen, args.batch_size)
    finally:
        for target in targets:
            if isinstance(target, SqliteTarget | PostgresTarget):
                target.close()


if __name__ == "__main__":
    main()
