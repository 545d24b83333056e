"""api_read.py's print-outs: the header (machine, libraries, server stack) and the summary table."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import platform
import subprocess

import sqlalchemy
from _read_common import (
    BILLING_RUNS,
    CUSTOMERS,
    GOAL_CONNECTIONS,
    GOAL_P99_MS,
    GOAL_RPS,
    SERVER_CPU,
    WARMUP_SECONDS,
    WRK_CPU,
    say,
)
from _read_server import Measurement, load_average
from billing_run import Target
from rich.table import Table


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
        "documents",
        "connections",
        "req/s",
        "mean ms",
        "p99 ms",
        "p99/mean",
        "vs /healthz",
        "CPU us/req",
        "vs /healthz (CPU)",
        "server CPU (sys)",
        "goal",
    )
    for col in columns:
        table.add_column(col, justify="left" if col in ("endpoint", "db", "goal") else "right")
    for m in measurements:
        table.add_row(
            m.endpoint.label,
            m.db,
            f"{m.documents:,}",
            str(m.connections),
            f"{m.result.rps:,.0f}",
            f"{m.result.mean_ms:.1f}",
            f"{m.result.p99_ms:.1f}",
            f"{m.result.p99_ms / m.result.mean_ms:.1f}x" if m.result.mean_ms else "-",
            f"{m.ratio:.2f}x" if m.ratio is not None else "-",
            f"{m.cpu_us:,.0f}",
            f"{m.cpu_ratio:.2f}x" if m.cpu_ratio is not None else "-",
            f"{m.server_cpu:.0%} ({m.server_sys:.0%})",
            goal_of(m),
        )
    return table
