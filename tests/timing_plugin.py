"""Opt-in per-test timing: wall clock against CPU, to find tests that wait instead of compute.

Enabled by `FISCUS_TEST_CPU=/path/out.tsv` (tests/conftest.py registers it). Each test's setup, call
and teardown together give one row: wall, CPU of this (worker) process (RUSAGE_SELF), CPU of the child
processes reaped meanwhile (RUSAGE_CHILDREN: `fiscus` subprocesses, Chromium once it exits) and
wait = wall - cpu. The CPU of the PostgreSQL server and of children still running is not seen, so a
PostgreSQL-heavy test shows some wait that is the server working. Under xdist every worker appends to
the same file (one line per write, O_APPEND); sort by the wait column:
`sort -t$'\t' -k6 -gr out.tsv | head`.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Generator

import pytest

HEADER = "nodeid\twall_s\tself_cpu_s\tchildren_cpu_s\tcpu_s\twait_s\tworker\n"


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class CpuTiming:
    """Accumulates a test's three phases and writes one row when its teardown ends."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.totals: dict[str, list[float]] = {}
        if self.worker in ("main", "gw0") and not os.path.exists(path):
            with open(path, "a", encoding="utf-8") as out:
                out.write(HEADER)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
        wall0, self0, kids0 = time.perf_counter(), _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
        try:
            return (yield)
        finally:
            wall = time.perf_counter() - wall0
            own = _cpu(resource.RUSAGE_SELF) - self0
            kids = _cpu(resource.RUSAGE_CHILDREN) - kids0
            row = f"{item.nodeid}\t{wall:.2f}\t{own:.2f}\t{kids:.2f}\t{own + kids:.2f}\t{wall - own - kids:.2f}\t{self.worker}\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, row.encode())
            finally:
                os.close(fd)
