"""Read throughput of the HTTP API (the real server, one worker on one core) on SQLite and PostgreSQL.
Prints figures, asserts nothing about timings.

    .venv/bin/python bench/api_read.py [--db sqlite,postgresql] [--duration 8] [--connections 16,50]
                                       [--documents 0,1000000]
                                       [--profile] [--profile-db sqlite] [--profile-endpoint 0]

For each database: a fresh database (SQLite file with the default engine settings; PostgreSQL in a
ThrowawayPostgres(durable=True)), migrations, one organisation and catalog through the services,
1,000 customers with one monthly subscription each (bulk-inserted), three billing runs a month apart
(~3,000 issued one-line invoices) and an API key. Then `fiscus serve --workers 1` pinned to CPU 0
(taskset) with the rate limiter out of the way, and for each endpoint of ENDPOINTS and each connection
count: a 3 s warm-up, then `wrk -t1 -cN -dDs --latency` pinned to CPU 1. Any non-2xx response makes
the script exit 1 (figures of 401s or 404s are worthless). `/healthz` (no database, no auth) is the
baseline: the ratio column says how far an endpoint is from the framework's own ceiling. Every run also
prints the server's CPU per request (user + system from /proc over the requests served) and the same
ratio in CPU ("vs /healthz (CPU)"), which stays fair when other work shares the machine, and p99/mean.

The quiet-machine tables of issue 18 (every endpoint, both databases, 16 and 50 connections, ~3,000
and 1,000,000 documents) in one command:

    .venv/bin/python bench/api_read.py --db sqlite,postgresql --documents 0,1000000

With --profile, one endpoint also runs in-process on the same data (the ASGI app driven directly, no
HTTP): wall time per request split into phases (queries, presentation, encoding, framework, threadpool
hops), then cProfile's view of the same loop and the SQL statements it ran.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from _read_common import CUSTOMERS, DATABASES, ENDPOINTS, FISCUS, Fixture, Non2xxError, console, prepare, say
from _read_profile import profile
from _read_report import header, summary_table
from _read_server import Measurement, Server, measure
from _scale import depth_check, depth_paths, multiply_documents
from billing_run import PostgresTarget, SqliteTarget, Target

from fiscus.testing.pgcluster import PostgresUnavailable

# --------------------------------------------------------------------------- one database


def check_endpoints(server: Server, fixture: Fixture) -> None:
    """One request per endpoint by hand before wrk: a 200 (with the key) and what came back."""
    for endpoint in ENDPOINTS:
        path = fixture.path(endpoint)
        status, body = server.get(path, fixture.secret)
        if status != 200:
            raise Non2xxError(f"GET {path}: HTTP {status}: {str(body)[:500]}")
        if isinstance(body, dict) and body.get("object") == "list":
            shape = f"{len(body['data'])} items, has_more={body['has_more']}"
        else:
            shape = f"{len(body)} keys" if isinstance(body, dict) else type(body).__name__
        say(f"    GET {path}: 200, {shape}")


def run_database(
    target: Target, args: argparse.Namespace, log_dir: Path, documents: int
) -> list[Measurement]:
    say(
        f"[{target.name}] setting up ({documents:,} documents) ..."
        if documents
        else f"[{target.name}] setting up ..."
    )
    db, fixture = prepare(target)
    measurements: list[Measurement] = []
    try:
        if documents > fixture.invoices:
            total, seconds = multiply_documents(db, fixture.org_id, documents)
            say(f"[{target.name}] bulk copy to {total:,} documents in {seconds:.1f}s (one transaction)")
        paths = depth_paths(db, fixture.org_id) if documents > fixture.invoices else []
        db.dispose()  # the server has the database to itself
        say(
            f"[{target.name}] migrations {fixture.migrate_seconds:.2f}s, data set-up "
            f"{fixture.setup_seconds:.2f}s: organisation {fixture.org_id}, {CUSTOMERS:,} customers and "
            f"subscriptions, {fixture.invoices:,} issued invoices ({fixture.lines:,} lines), "
            f"API key {fixture.key_prefix}"
        )
        if not args.profile_only:
            server = Server(fixture.url, log_dir)
            try:
                ready = server.start(timeout=300.0)
                command = " ".join(server.command)
                say(f"[{target.name}] server pid {server.pid} ready in {ready:.1f}s: {command}")
                check_endpoints(server, fixture)
                if paths:
                    depth_check(server.base, fixture.secret, paths, say)
                for endpoint in ENDPOINTS:
                    for connections in args.connections:
                        found = measure(server, fixture, target.name, endpoint, connections, args.duration)
                        found.documents = max(documents, fixture.invoices)
                        measurements.append(found)
            finally:
                say(f"[{target.name}] server {server.stop()}")
        baselines = {m.connections: m for m in measurements if m.endpoint.baseline}
        for m in measurements:
            base = baselines.get(m.connections)
            m.baseline_rps = base.result.rps if base else None
            m.baseline_cpu_us = base.cpu_us if base else None
        if args.profile and target.name in args.profile_db:
            chosen = ENDPOINTS if args.profile_endpoint == "all" else [ENDPOINTS[int(args.profile_endpoint)]]
            cpu: dict[str, float] = {}
            for endpoint in chosen:
                served = [m for m in measurements if m.endpoint == endpoint]
                cpu[endpoint.label] = profile(fixture, target.name, endpoint, args.profile_requests, served)
            if len(cpu) > 1:
                say(f"[{target.name}] in-process CPU per request (real threadpool, no profiler):")
                for label, us in cpu.items():
                    say(f"    {label:<32} {us:8,.0f} us")
    finally:
        target.discard(db)
    say()
    return measurements


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )

    def ints(value: str) -> list[int]:
        return [int(v) for v in value.split(",") if v.strip()]

    def dbs(value: str) -> list[str]:
        chosen = [v.strip() for v in value.split(",") if v.strip()]
        unknown = set(chosen) - set(DATABASES)
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown database(s) {sorted(unknown)}; use sqlite,postgresql")
        return chosen

    parser.add_argument("--db", type=dbs, default=list(DATABASES), help="sqlite,postgresql")
    parser.add_argument("--duration", type=int, default=8, help="seconds per timed wrk run (default 8)")
    parser.add_argument(
        "--connections", type=ints, default=[16, 50], help="wrk connection counts (default 16,50)"
    )
    parser.add_argument(
        "--documents",
        type=ints,
        default=[0],
        help="comma-separated sizes; for each, grow the organisation to that many documents by bulk copy "
        "(e.g. 0,1000000: the ~3,000 billed, then a million) and compare "
        "page 1, page 10,000 and the last page of each list (default: the ~3,000 billed)",
    )
    parser.add_argument("--profile", action="store_true", help="also profile one endpoint in-process")
    parser.add_argument(
        "--profile-db", type=dbs, default=["sqlite"], help="database(s) of --profile (default sqlite)"
    )
    parser.add_argument(
        "--profile-endpoint",
        choices=[*map(str, range(len(ENDPOINTS))), "all"],
        default="0",
        help=f"index into ENDPOINTS for --profile, or all (default 0: {ENDPOINTS[0].label})",
    )
    parser.add_argument(
        "--profile-only",
        action="store_true",
        help="--profile without the server and wrk (CPU time per request stays fair on a loaded machine)",
    )
    parser.add_argument(
        "--profile-requests", type=int, default=2_000, help="requests per --profile figure (default 2000)"
    )
    args = parser.parse_args(argv)
    args.profile = args.profile or args.profile_only
    if sum(e.baseline for e in ENDPOINTS) != 1:
        parser.error("ENDPOINTS must hold exactly one baseline")
    return args


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through `finally`: the server and the cluster are stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            say(f"error: `{tool}` is not installed (apt-get install -y wrk util-linux)")
            return 2
    if not FISCUS.exists():
        say(f"error: {FISCUS} does not exist (make install)")
        return 2
    log_dir = Path(tempfile.mkdtemp(prefix="fiscus-api-bench-"))
    targets: list[Target] = []
    measurements: list[Measurement] = []
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
        for documents in args.documents:
            for target in targets:
                measurements += run_database(target, args, log_dir, documents)
        console.width = 200  # the summary table's columns
        console.print(summary_table(measurements))
    except Non2xxError as exc:
        say(f"FAILED: {exc}")
        return 1
    finally:
        for target in targets:
            if isinstance(target, SqliteTarget | PostgresTarget):
                target.close()
        shutil.rmtree(log_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
