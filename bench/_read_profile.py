"""api_read.py --profile: the ASGI app driven in-process, CPU time split per phase, cProfile, SQL."""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import importlib
import io
import pstats
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

from _read_common import PHASES, Endpoint, Fixture, Non2xxError, console, say
from _read_server import Measurement
from billing_run import SqlTimes
from rich.table import Table
from starlette.types import Message

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
) -> float:
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
    for label in dict.fromkeys(label for label, _module, _attribute in PHASES):
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
    return real_total.cpu / requests * 1e6
