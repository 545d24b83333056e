"""The multiprocessing context of the tests whose children are real, separate processes (concurrency,
crashes): a fork server that imported Fiscus once, so each child is a fork of a clean, single-threaded
process (no pytest, no browser, no open connections) instead of a fresh interpreter that spends ~1.8 s
of CPU importing the same modules again. Each child still opens its own database engine."""

from __future__ import annotations

import multiprocessing as mp
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
]


def context() -> ForkServerContext:
    """The shared fork-server context (one server per test process, started on the first child)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx
