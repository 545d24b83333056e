"""The multiprocessing context of the tests whose children are real, separate processes (concurrency,
crashes): a fork server that imported Fiscus once, so each child is a fork of a clean, single-threaded
process (no pytest, no browser, no open connections) instead of a fresh interpreter that spends ~1.8 s
of CPU importing the same modules again. Each child still opens its own database engine."""

from __future__ import annotations

import multiprocessing as mp
import os
from multiprocessing.context import ForkServerContext

PRELOAD = [
    "tests.workers",
    "tests.discount_workers",
    "tests.webhook_workers",
    "fiscus.services.billing_run",
    "fiscus.services.documents",
    "fiscus.adapters.db.documents",
    "fiscus.services.discounts",
    "fiscus.worker.webhooks",
    "fiscus.cli",
    "fiscus.gateway.app",
    "uvicorn",
]


def context() -> ForkServerContext:
    """The shared fork-server context (one server per test process, started on the first child)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def serve_gateway(args: list[str], log_path: str, env: dict[str, str]) -> None:
    """`fiscus gateway *args` in a forked child, its output to its log, with the test's environment.
    Here, not beside its caller: a child imports its target's module, and this one imports nothing."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.update(env)
    from fiscus.cli import app

    app(args=args, prog_name="fiscus")
