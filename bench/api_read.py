"""Read throughput of the HTTP API (the real server, one worker on one core) on SQLite and PostgreSQL.
Prints figures, asserts nothing about timings.

    .venv/bin/python bench/api_read.py [--db sqlite,postgresql] [--duration 8] [--connections 16,50]
                                       [--profile] [--profile-db sqlite] [--profile-endpoint 0]

For each database: a fresh database (SQLite file with the default engine settings; PostgreSQL in a
ThrowawayPostgres(durable=True)), migrations, one organisation and catalog through the services,
1,000 customers with one monthly subscription each (bulk-inserted), three billing runs a month apart
(~3,000 issued one-line invoices) and an API key. Then `fiscus serve --workers 1` pinned to CPU 0
(taskset) with the rate limiter out of the way, and for each endpoint of ENDPOINTS and each connection
count: a 3 s warm-up, then `wrk -t1 -cN -dDs --latency` pinned to CPU 1. Any non-2xx response makes
the script exit 1 (figures of 401s or 404s are worthless). `/healthz` (no database, no auth) is the
baseline: the ratio column says how far an endpoint is from the framework's own ceiling.

With --profile, one endpoint also runs in-process on the same data (the ASGI app driven directly, no
HTTP): wall time per request split into phases (queries, presentation, encoding, framework, threadpool
hops), then cProfile's view of the same loop and the SQL statements it ran.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import importlib
import io
import json
import os
import platform
import pstats
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy
from _scale import depth_check, depth_paths, multiply_documents
from _setup import ANCHOR, CREATED, TZ, create_catalog, settle
from billing_run import PostgresTarget, SqliteTarget, SqlTimes, Target
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from starlette.types import Message

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from fiscus.services.billing_run import run_billing
from fiscus.testing.bulk import bulk_customers, bulk_subscriptions
from fiscus.testing.pgcluster import PostgresUnavailable

ROOT = Path(__file__).resolve().parent.parent
FISCUS = ROOT / ".venv" / "bin" / "fiscus"
SERVER_CPU = "0"
WRK_CPU = "1"
CUSTOMERS = 1_000
BILLING_RUNS = 3
WARMUP_SECONDS = 3
GOAL_RPS = 3_000
"""Requests per second per worker core the issue asks for (information only, never an exit code)."""
GOAL_P99_MS = 30.0
GOAL_CONNECTIONS = 50
DATABASES = ("sqlite", "postgresql")

console = Console(highlight=False, width=130)


def say(message: str = "") -> None:
    console.print(message, markup=False, soft_wrap=True)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One measured GET. `path` may name fields of Fixture in braces ({document_id}, {customer_id})."""

    label: str
    path: str
    baseline: bool = False


ENDPOINTS: list[Endpoint] = [
    Endpoint("native list of 20", "/api/v1/documents?limit=20"),
    Endpoint("native get one", "/api/v1/documents/{document_id}"),
    Endpoint("seed 000 list (DRF, 20)", "/v1/billing/invoices/?pageSize=20"),
    Endpoint("seed 001 list (cursor, 20)", "/invoices?limit=20"),
    Endpoint("seed 002 list (Laravel, 30)", "/v1/invoices?page=2"),
    Endpoint("hello: /healthz", "/healthz", baseline=True),
]
"""What is measured, in this order; add a row to measure another endpoint. Exactly one baseline."""

PHASES: list[tuple[str, str, str]] = [
    ("auth: authenticate() (on an auth-cache miss only)", "fiscus.api.deps", "authenticate"),
    ("queries: page_document_ids", "fiscus.api.routes.documents", "page_document_ids"),
    ("queries: load_documents", "fiscus.api.routes.documents", "load_documents"),
    ("queries: get_document", "fiscus.api.routes.documents", "get_document"),
    ("presenting: presenters.document", "fiscus.api.presenters", "document"),
    ("encoding: presenters.json_response (msgspec)", "fiscus.api.presenters", "json_response"),
]
"""--profile: (label, module, attribute) of the functions the request path calls through a module
attribute, timed by wrapping that attribute. None of them nests inside another."""


# --------------------------------------------------------------------------- data set-up


@dataclass(frozen=True, slots=True)
class Fixture:
    url: str
    org_id: int
    customer_id: int
    document_id: int
    secret: str
    key_prefix: str
    invoices: int
    lines: int
    migrate_seconds: float
    setup_seconds: float

    def path(self, endpoint: Endpoint) -> str:
        return endpoint.path.format(document_id=self.document_id, customer_id=self.customer_id)


def run_instant(month: int) -> datetime:
    """One hour after the start of the month-th monthly period (0: the anchor), in Sofia."""
    local = ANCHOR.astimezone(TZ)
    years, month0 = divmod(local.month - 1 + month, 12)
    start = local.replace(year=local.year + years, month=month0 + 1)
    return start.astimezone(UTC) + timedelta(hours=1)


def prepare(target: Target) -> tuple[Database, Fixture]:
    """Migrations, organisation and catalog, customers and subscriptions, three billing runs, a key."""
    db, migrate = target.fresh("api_read")
    started = time.perf_counter()
    clock = FixedClock(CREATED)
    cat = create_catalog(db, clock)  # BG, EUR, Europe/Sofia, 20% VAT, vat_id BG175074752
    customers = bulk_customers(db, cat.org_id, CUSTOMERS, now=clock.now())
    bulk_subscriptions(db, cat.org_id, customers, [cat.price_a], start=ANCHOR, now=clock.now())
    for month in range(BILLING_RUNS):
        at = run_instant(month)
        summary = run_billing(db, FixedClock(at), at=at)
        failed = f", {len(summary.failed_subscriptions)} FAILED" if summary.failed_subscriptions else ""
        say(
            f"[{target.name}] billing run at {at.isoformat()}: {summary.documents:,} invoices in "
            f"{summary.seconds:.2f}s, totals {summary.totals}{failed}"
        )
    key = create_api_key(db, FixedClock(run_instant(BILLING_RUNS - 1)), cat.org_id, name="bench")
    settle(db)
    d = t.documents.c
    with db.read() as conn:
        invoices = conn.execute(
            select(func.count()).where(d.type == "invoice", d.status == "open", d.number.is_not(None))
        ).scalar_one()
        lines = conn.execute(select(func.count()).select_from(t.document_lines)).scalar_one()
        # "some id": a document from the middle of the table, neither the newest nor the oldest.
        middle = select(func.min(d.id) + (func.max(d.id) - func.min(d.id)) / 2)
        document_id = conn.execute(middle).scalar_one()
    fixture = Fixture(
        url=db.url,
        org_id=cat.org_id,
        customer_id=customers[len(customers) // 2],
        document_id=int(document_id),
        secret=key.secret,
        key_prefix=key.prefix,
        invoices=int(invoices),
        lines=int(lines),
        migrate_seconds=migrate,
        setup_seconds=time.perf_counter() - started,
    )
    return db, fixture


# --------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


class Server:
    """`fiscus serve --workers 1` as a subprocess pinned to one CPU; its output goes to a log file."""

    def __init__(self, database_url: str, log_dir: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"server-{self.port}.log"
        self.env = {
            **os.environ,
            "FISCUS_DATABASE_URL": database_url,
            "FISCUS_RATE_LIMIT_PER_SECOND": "1000000",
            "FISCUS_RATE_LIMIT_BURST": "1000000",
            "FISCUS_ACCESS_LOG": "false",
            "FISCUS_LOG_LEVEL": "WARNING",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        serve = [str(FISCUS), "serve", "--port", str(self.port), "--workers", "1"]
        return ["taskset", "-c", SERVER_CPU, *serve]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> float:
        """Start and wait for /readyz; returns the seconds that took."""
        started = time.perf_counter()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                status, _ = self.get("/readyz")
                if status == 200:
                    return time.perf_counter() - started
            time.sleep(0.1)
        raise RuntimeError(f"the server was not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def get(self, path: str, secret: str | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path)
        if secret:
            request.add_header("Authorization", f"Bearer {secret}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")

    def cpu_seconds(self) -> tuple[float, float]:
        """User and system CPU time of the server so far (taskset execs: the child's pid is the server's)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"

    def stop(self) -> str:
        """SIGTERM (uvicorn shuts down gracefully, then re-raises the signal), SIGKILL after 15 s."""
        if self.proc is None:
            return "not started"
        if self.proc.poll() is not None:
            return f"had already exited with {self.proc.returncode}:\n{self.log_tail()}"
        self.proc.terminate()
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return "did not stop within 15 s of SIGTERM: killed"
        if code in (0, -signal.SIGTERM):
            return "stopped cleanly on SIGTERM"
        return f"exited with {code} on SIGTERM:\n{self.log_tail()}"


# --------------------------------------------------------------------------- wrk

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TIME = r"([\d.]+)(us|ms|s|m|h)"
_MEAN = re.compile(rf"^\s*Latency\s+{_TIME}", re.MULTILINE)
_P99 = re.compile(rf"^\s*99(?:\.0+)?%\s+{_TIME}\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(rf"(\d+) requests in {_TIME}")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def seconds_of(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p99_ms: float
    mean_ms: float
    non_2xx: int
    """wrk's "Non-2xx or 3xx responses" (it counts statuses above 399)."""
    socket_errors: dict[str, int]
    output: str


def parse_wrk(output: str) -> WrkResult:
    rps, p99, total = _RPS.search(output), _P99.search(output), _TOTAL.search(output)
    mean = _MEAN.search(output)
    if not (rps and p99 and total and mean):
        raise RuntimeError(f"could not parse wrk's output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    sock = _SOCKET.search(output)
    names = ("connect", "read", "write", "timeout")
    errors = dict(zip(names, map(int, sock.groups()), strict=True)) if sock else {}
    return WrkResult(
        requests=int(total.group(1)),
        seconds=seconds_of(total.group(2), total.group(3)),
        rps=float(rps.group(1)),
        p99_ms=seconds_of(p99.group(1), p99.group(2)) * 1000,
        mean_ms=seconds_of(mean.group(1), mean.group(2)) * 1000,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors={k: v for k, v in errors.items() if v},
        output=output,
    )


def wrk(url: str, connections: int, seconds: int, secret: str) -> WrkResult:
    command = ["taskset", "-c", WRK_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    command += ["--timeout", "10s"]  # a million-document COUNT under load exceeds wrk's default 2 s
    command += ["-H", f"Authorization: Bearer {secret}", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


class Non2xxError(RuntimeError):
    """Error responses: the figures would measure the error path, not the endpoint."""


@dataclass(slots=True)
class Measurement:
    endpoint: Endpoint
    db: str
    connections: int
    result: WrkResult
    server_cpu: float
    """Server CPU seconds per wall second during the timed run (1.0: its core was busy all along)."""
    server_sys: float
    """The kernel's (system) part of server_cpu."""
    baseline_rps: float | None = None

    @property
    def ratio(self) -> float | None:
        return self.result.rps / self.baseline_rps if self.baseline_rps else None


def measure(
    server: Server, fixture: Fixture, db: str, endpoint: Endpoint, connections: int, seconds: int
) -> Measurement:
    url = server.base + fixture.path(endpoint)
    tag = f"[{db} {endpoint.label} c={connections}]"
    for phase, length in (("warm-up", WARMUP_SECONDS), ("timed", seconds)):
        load = load_average()
        (user0, sys0), wall0 = server.cpu_seconds(), time.perf_counter()
        result = wrk(url, connections, length, fixture.secret)
        (user1, sys1), wall = server.cpu_seconds(), time.perf_counter() - wall0
        cpu, kernel = (user1 - user0 + sys1 - sys0) / wall, (sys1 - sys0) / wall
        if server.proc is not None and server.proc.poll() is not None:
            raise RuntimeError(f"{tag} the server died ({server.proc.returncode}):\n{server.log_tail()}")
        if result.non_2xx or result.requests == 0:
            say(f"{tag} {phase}: {result.non_2xx:,} NON-2xx RESPONSES of {result.requests:,}")
            say(result.output.rstrip())
            status, body = server.get(fixture.path(endpoint), fixture.secret)
            say(f"one request by hand: HTTP {status}: {str(body)[:500]}")
            raise Non2xxError(
                f"{tag} {phase}: {result.non_2xx:,} non-2xx responses: the figures are worthless"
            )
    errors = f", socket errors {result.socket_errors}" if result.socket_errors else ""
    say(
        f"{tag} {result.requests:,} requests in {result.seconds:.2f}s = {result.rps:,.0f} req/s, "
        f"mean {result.mean_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, server CPU {cpu:.0%} "
        f"(system {kernel:.0%}), 0 non-2xx{errors} "
        f"(load avg {load})"
    )
    return Measurement(endpoint, db, connections, result, cpu, kernel)


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


def run_database(target: Target, args: argparse.Namespace, log_dir: Path) -> list[Measurement]:
    say(f"[{target.name}] setting up ...")
    db, fixture = prepare(target)
    measurements: list[Measurement] = []
    try:
        if args.documents > fixture.invoices:
            total, seconds = multiply_documents(db, fixture.org_id, args.documents)
            say(f"[{target.name}] bulk copy to {total:,} documents in {seconds:.1f}s (one transaction)")
        paths = depth_paths(db, fixture.org_id) if args.documents > fixture.invoices else []
        db.dispose()  # the server has the database to itself
        say(
            f"[{target.name}] migrations {fixture.migrate_seconds:.2f}s, data set-up "
            f"{fixture.setup_seconds:.2f}s: organisation {fixture.org_id}, {CUSTOMERS:,} customers and "
            f"subscriptions, {fixture.invoices:,} issued invoices ({fixture.lines:,} lines), "
            f"API key {fixture.key_prefix}"
        )
        server = Server(fixture.url, log_dir)
        try:
            ready = server.start(timeout=300.0)
            say(f"[{target.name}] server pid {server.pid} ready in {ready:.1f}s: {' '.join(server.command)}")
            check_endpoints(server, fixture)
            if paths:
                depth_check(server.base, fixture.secret, paths, say)
            for endpoint in ENDPOINTS:
                for connections in args.connections:
                    found = measure(server, fixture, target.name, endpoint, connections, args.duration)
                    measurements.append(found)
        finally:
            say(f"[{target.name}] server {server.stop()}")
        baselines = {m.connections: m.result.rps for m in measurements if m.endpoint.baseline}
        for m in measurements:
            m.baseline_rps = baselines.get(m.connections)
        if args.profile and target.name in args.profile_db:
            endpoint = ENDPOINTS[args.profile_endpoint]
            served = [m for m in measurements if m.endpoint == endpoint]
            profile(fixture, target.name, endpoint, args.profile_requests, served)
    finally:
        target.discard(db)
    say()
    return measurements


# --------------------------------------------------------------------------- profile


@dataclass(slots=True)
class Spent:
    """Time spent, added up over a loop: wall, and CPU of the thread (phases) or the process (totals)."""

    wall: float = 0.0
    cpu: float = 0.0


@contextlib.contextmanager
def timed_phases(spent: dict[str, Spent]) -> Iterator[None]:
    """Wrap each PHASES attribute so that its wall and thread CPU time add up in `spent[label]`."""

    def timed(label: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                phase = spent[label]
                phase.wall += time.perf_counter() - wall
                phase.cpu += time.thread_time() - cpu

        return wrapper

    saved: list[tuple[Any, str, Any]] = []
    try:
        for label, module_name, attribute in PHASES:
            module = importlib.import_module(module_name)
            original = getattr(module, attribute, None)
            if callable(original):
                saved.append((module, attribute, original))
                setattr(module, attribute, timed(label, original))
        yield
    finally:
        for module, attribute, original in saved:
            setattr(module, attribute, original)


@contextlib.contextmanager
def inlined_threadpool(hops: list[int]) -> Iterator[None]:
    """FastAPI runs sync dependencies and endpoints with starlette's `run_in_threadpool`: replaced here
    by a direct call (counted in `hops`), so that (a) the cost of the hops shows as the difference
    and (b) cProfile, which sees one thread only, sees the whole request."""
    import fastapi.dependencies.utils
    import fastapi.routing

    async def inline(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hops[0] += 1
        return func(*args, **kwargs)

    modules = (fastapi.dependencies.utils, fastapi.routing)
    saved = [m.run_in_threadpool for m in modules]
    try:
        for m in modules:
            m.run_in_threadpool = inline  # type: ignore[attr-defined]
        yield
    finally:
        for m, original in zip(modules, saved, strict=True):
            m.run_in_threadpool = original  # type: ignore[attr-defined]


def run_loop(main: Coroutine[Any, Any, Spent]) -> Spent:
    """On uvloop when installed, as uvicorn would run it."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def profile(
    fixture: Fixture, db_name: str, endpoint: Endpoint, requests: int, served: list[Measurement]
) -> None:
    """`endpoint` in-process on the data the server just served: the ASGI app driven directly (no HTTP,
    no client library, one request at a time), timed with the real threadpool, then with it inlined,
    then under cProfile. CPU time is what bounds a saturated worker; wall time adds the waits (thread
    wake-ups, PostgreSQL round trips) that concurrent requests overlap in the real server."""
    from fiscus.api.app import create_app
    from fiscus.bootstrap import build
    from fiscus.config import Settings

    settings = Settings(
        database_url=fixture.url,
        rate_limit_per_second=1e9,
        rate_limit_burst=1e9,
        access_log=False,
        log_level="WARNING",
    )
    container = build(settings)
    app = create_app(container)
    path, _, query = fixture.path(endpoint).partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {fixture.secret}".encode())],
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def loop(n: int, prof: cProfile.Profile | None = None) -> Spent:
        statuses: list[int] = []

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        wall, cpu = time.perf_counter(), time.process_time()
        if prof:
            prof.enable()
        for _ in range(n):
            await app(dict(scope), receive, send)
        if prof:
            prof.disable()
        spent = Spent(time.perf_counter() - wall, time.process_time() - cpu)
        bad = [s for s in statuses if not 200 <= s < 300]
        if bad:
            raise Non2xxError(f"profile: GET {fixture.path(endpoint)}: {len(bad)} non-2xx, e.g. {bad[0]}")
        return spent

    say()
    say(f"=== [{db_name}] in-process GET {fixture.path(endpoint)}, {requests:,} requests per figure ===")
    sql = SqlTimes()
    real: dict[str, Spent] = defaultdict(Spent)
    inlined: dict[str, Spent] = defaultdict(Spent)
    hops = [0]
    prof = cProfile.Profile()
    try:
        run_loop(loop(200))  # warm-up: statement caches, the auth cache, the pool
        with timed_phases(real):
            real_total = run_loop(loop(requests))
        with inlined_threadpool(hops):
            run_loop(loop(200))
            hops[0] = 0
            with timed_phases(inlined):
                inlined_total = run_loop(loop(requests))
            hops_per_request = hops[0] / requests
            detach = sql.attach(container.db)  # only now: its listeners cost time too
            try:
                profiled_total = run_loop(loop(requests, prof))
            finally:
                detach()
    finally:
        container.db.dispose()

    def us(seconds: float) -> str:
        return f"{seconds / requests * 1e6:,.0f}"

    table = Table(title=f"where the time goes, per request ({db_name}, {endpoint.label}; no profiler)")
    columns = ("phase", "CPU us, real threadpool", "CPU us, inlined", "wall us, inlined")
    for col in columns:
        table.add_column(col, justify="left" if col == "phase" else "right")
    for label, _module, _attribute in PHASES:
        if label in real or label in inlined:
            table.add_row(label, us(real[label].cpu), us(inlined[label].cpu), us(inlined[label].wall))
    table.add_row(
        "framework: middleware, routing, dependencies, auth cache, rate limit (the rest)",
        "",
        us(inlined_total.cpu - sum(x.cpu for x in inlined.values())),
        us(inlined_total.wall - sum(x.wall for x in inlined.values())),
    )
    table.add_row(
        f"threadpool hops ({hops_per_request:.0f} per request: sync dependencies + endpoint)",
        us(real_total.cpu - inlined_total.cpu),
        "0",
        "0",
    )
    table.add_row(
        "total in-process (process CPU; PostgreSQL's own CPU not included)",
        us(real_total.cpu),
        us(inlined_total.cpu),
        us(inlined_total.wall),
    )
    table.add_row("wall, one request at a time, real threadpool", "", "", us(real_total.wall))
    for m in served:
        wall = 1e6 / m.result.rps if m.result.rps else 0.0
        table.add_row(
            f"real server, c={m.connections}: CPU per request (adds HTTP, uvicorn, GIL; "
            f"{m.server_cpu:.0%} busy, {m.server_sys:.0%} system)",
            f"{wall * m.server_cpu:,.0f}",
            "",
            "",
        )
    console.print(table)
    say(f"under cProfile (threadpool inlined): {us(profiled_total.wall)} us/request wall")
    for order, top in (("tottime", 30), ("cumulative", 45)):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        body = out.getvalue()
        say(f"--- top {top} by {order} time ---")
        say(body[body.find("   ncalls") :].rstrip())
    cursor = sum(sql.seconds.values())
    total = us(profiled_total.wall)
    sql_table = Table(title=f"SQL per request under cProfile: cursor.execute {us(cursor)} us of {total} us")
    for col in ("us", "calls", "statement"):
        sql_table.add_column(col, justify="left" if col == "statement" else "right")
    for key in sorted(sql.seconds, key=sql.seconds.__getitem__, reverse=True)[:12]:
        sql_table.add_row(us(sql.seconds[key]), f"{sql.calls[key] / requests:.2f}", key)
    console.print(sql_table)


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
        type=int,
        default=0,
        help="grow the organisation to this many documents by bulk copy (e.g. 1000000) and compare "
        "page 1, page 10,000 and the last page of each list (default: the ~3,000 billed)",
    )
    parser.add_argument("--profile", action="store_true", help="also profile one endpoint in-process")
    parser.add_argument(
        "--profile-db", type=dbs, default=["sqlite"], help="database(s) of --profile (default sqlite)"
    )
    parser.add_argument(
        "--profile-endpoint",
        type=int,
        choices=range(len(ENDPOINTS)),
        default=0,
        help=f"index into ENDPOINTS for --profile (default 0: {ENDPOINTS[0].label})",
    )
    parser.add_argument(
        "--profile-requests", type=int, default=2_000, help="requests per --profile figure (default 2000)"
    )
    args = parser.parse_args(argv)
    if sum(e.baseline for e in ENDPOINTS) != 1:
        parser.error("ENDPOINTS must hold exactly one baseline")
    return args


def tool_version(command: list[str]) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        return (done.stdout + done.stderr).strip().splitlines()[0]
    return "not found"


def header(args: argparse.Namespace, targets: list[Target]) -> None:
    import fastapi
    import uvicorn

    say("=== Fiscus API read benchmark ===")
    say(f"Machine     {os.cpu_count()} CPUs, {platform.platform()}, {platform.machine()}")
    say(f"            load average {load_average()} (1/5 min) before the run: other work skews the figures")
    say(f"Python      {platform.python_implementation()} {platform.python_version()}")
    say(
        f"Libraries   FastAPI {fastapi.__version__}, uvicorn {uvicorn.__version__}, "
        f"SQLAlchemy {sqlalchemy.__version__}"
    )
    say(f"Load        {tool_version(['wrk', '-v'])}")
    for target in targets:
        for line in target.describe():
            say(line)
    say(f"Server      fiscus serve --workers 1 on CPU {SERVER_CPU} (taskset); wrk -t1 on CPU {WRK_CPU};")
    say(f"            stack: {server_stack()}")
    say("            PostgreSQL's backends are not pinned and share both CPUs")
    say(
        f"Run         {WARMUP_SECONDS}s warm-up + {args.duration}s timed per endpoint and connection count "
        f"({', '.join(map(str, args.connections))}); rate limit 1,000,000/s, access log off"
    )
    say(
        f"Data        1 organisation (BG, EUR, Europe/Sofia, VAT 20%), {CUSTOMERS:,} customers with a "
        f"monthly subscription,\n            {BILLING_RUNS} billing runs a month apart: "
        f"~{CUSTOMERS * BILLING_RUNS:,} issued one-line invoices"
    )
    say(
        f"Goal        ≥ {GOAL_RPS:,} req/s per worker core and p99 ≤ {GOAL_P99_MS:.0f} ms "
        f"at {GOAL_CONNECTIONS} connections"
    )
    say()


def server_stack() -> str:
    """What `fiscus serve` runs on: uvicorn picks uvloop and httptools when they are installed."""
    import uvicorn

    parts = [f"uvicorn {uvicorn.__version__}"]
    for name in ("uvloop", "httptools"):
        try:
            module = importlib.import_module(name)
            parts.append(f"{name} {getattr(module, '__version__', '?')}")
        except ImportError:
            parts.append(f"no {name} (asyncio / h11)")
    return ", ".join(parts)


def goal_of(m: Measurement) -> str:
    if m.endpoint.baseline:
        return "baseline"
    if m.connections != GOAL_CONNECTIONS:
        return f"(goal is at {GOAL_CONNECTIONS} conn.)"
    met = m.result.rps >= GOAL_RPS and m.result.p99_ms <= GOAL_P99_MS
    return "goal met" if met else "below goal"


def summary_table(measurements: list[Measurement]) -> Table:
    table = Table(
        title=f"API reads, one worker on one core (goal: ≥ {GOAL_RPS:,} req/s and p99 ≤ "
        f"{GOAL_P99_MS:.0f} ms at {GOAL_CONNECTIONS} connections; information, not a pass/fail)"
    )
    columns = (
        "endpoint",
        "db",
        "connections",
        "req/s",
        "mean ms",
        "p99 ms",
        "p99/mean",
        "vs /healthz",
        "server CPU (sys)",
        "goal",
    )
    for col in columns:
        table.add_column(col, justify="left" if col in ("endpoint", "db", "goal") else "right")
    for m in measurements:
        table.add_row(
            m.endpoint.label,
            m.db,
            str(m.connections),
            f"{m.result.rps:,.0f}",
            f"{m.result.mean_ms:.1f}",
            f"{m.result.p99_ms:.1f}",
            f"{m.result.p99_ms / m.result.mean_ms:.1f}x" if m.result.mean_ms else "-",
            f"{m.ratio:.2f}x" if m.ratio is not None else "-",
            f"{m.server_cpu:.0%} ({m.server_sys:.0%})",
            goal_of(m),
        )
    return table


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
        for target in targets:
            measurements += run_database(target, args, log_dir)
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
