"""Opt-in per-test timing: wall clock against CPU, to find tests that wait instead of compute.

Enabled by `FISCUS_TEST_CPU=/path/out.tsv` (tests/conftest.py registers it). Each test's setup, call
and teardown together give one row: wall, CPU of this (worker) process (RUSAGE_SELF), CPU of the child
processes reaped meanwhile (RUSAGE_CHILDREN: `fiscus` subprocesses), plus what the children still alive
at either end spent meanwhile, with the children they reaped (/proc: a module's gateway, the fork
server's workers, Playwright's driver) and wait = wall - cpu. Not seen: the PostgreSQL server (so a
PostgreSQL-heavy test shows some wait that is the server working) and Chromium's renderers while
alive. Under xdist every worker appends to the same file (one line per write, O_APPEND); sort by the
wait column:
`sort -t$'\t' -k6 -gr out.tsv | head`.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Generator

import pytest

HEADER = "nodeid\twall_s\tself_cpu_s\tchildren_cpu_s\tcpu_s\twait_s\tworker\n"
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _live_children() -> float:
    """CPU so far of this process's live children, with the children they reaped (utime..cstime)."""
    me, total = os.getpid(), 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:  # fields[1] is the ppid; 11..14 are utime, stime, cutime, cstime
            total += sum(int(f) for f in fields[11:15])
    return total / TICKS


def _children() -> float:
    """Reaped children plus live ones: a child alive at the start and reaped meanwhile is counted
    whole by RUSAGE_CHILDREN and its start value is subtracted, so each child counts once."""
    return _cpu(resource.RUSAGE_CHILDREN) + _live_children()


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
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, object, object]:
        wall0, self0, kids0 = time.perf_counter(), _cpu(resource.RUSAGE_SELF), _children()
        try:
            return (yield)
        finally:
            wall = time.perf_counter() - wall0
            own = _cpu(resource.RUSAGE_SELF) - self0
            kids = _children() - kids0
            figures = (wall, own, kids, own + kids, wall - own - kids)
            row = "\t".join([item.nodeid, *(f"{x:.2f}" for x in figures), self.worker]) + "\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, row.encode())
            finally:
                os.close(fd)
