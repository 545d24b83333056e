"""Fixtures: every database test runs on SQLite and on a throwaway PostgreSQL cluster.

Each pytest(-xdist) worker starts its own cluster on a free loopback port (on tmpfs when there is
one) and removes it at the end. A migrated template database (PostgreSQL) or file (SQLite) is made
once per worker; each test gets a fresh copy. Where no PostgreSQL binaries exist, only the PostgreSQL
leg is skipped, with the reason in the report.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.migrations import upgrade
from fiscus.domain.clock import FixedClock
from fiscus.testing.pgcluster import PostgresUnavailable, ThrowawayPostgres, find_pg_bin
from tests.demo_support import _gateway_demo_stack, demo_db, gateway_demo  # noqa: F401  (fixtures: the seeded demos)
from tests.en16931 import CII_XSLT, UBL_XSLT, Schematron, missing_reason

if Path("/dev/shm").is_dir():
    os.environ.setdefault("FISCUS_PG_TMPDIR", "/dev/shm")
    if "TMPDIR" not in os.environ and os.access("/dev/shm", os.W_OK | os.X_OK):
        # tmp_path too (SQLite test databases, the gateway's ledger, rendered files): SQLite runs with
        # synchronous=FULL, and an fsync per commit costs ~10 ms on a CI disk, nothing on tmpfs.
        # Set before pytest picks its base directory (xdist's controller does, for its workers).
        os.environ["TMPDIR"] = "/dev/shm"
        tempfile.tempdir = "/dev/shm"

BACKENDS = ["sqlite", "postgresql"]


class _PgState:
    cluster: ThrowawayPostgres | None = None
    template: str | None = None
    error: str | None = None


@pytest.fixture(scope="session")
def pg_cluster() -> ThrowawayPostgres:
    if find_pg_bin() is None:
        pytest.skip(
            "PostgreSQL leg skipped: no PostgreSQL server binaries (set FISCUS_PG_BIN or install postgresql)"
        )
    if _PgState.error:
        pytest.skip(f"PostgreSQL leg skipped: {_PgState.error}")
    if _PgState.cluster is None:
        cluster = ThrowawayPostgres()
        try:
            cluster.start()
        except PostgresUnavailable as exc:
            _PgState.error = str(exc)
            pytest.skip(f"PostgreSQL leg skipped: {exc}")
        _PgState.cluster = cluster
    return _PgState.cluster


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _PgState.cluster is not None:
        _PgState.cluster.stop()
        _PgState.cluster = None


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _pg_template(cluster: ThrowawayPostgres) -> str:
    if _PgState.template is None:
        name = "fiscus_template"
        url = cluster.create_database(name)
        upgrade(url)
        Database(url).dispose()
        _PgState.template = name
    return _PgState.template


def new_database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database of `backend` for one test."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / f"fiscus-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    cluster: ThrowawayPostgres = request.getfixturevalue("pg_cluster")
    template_name = _pg_template(cluster)
    return cluster.create_database(f"t_{uuid.uuid4().hex[:16]}", template=template_name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return new_database_url(backend, request, tmp_path)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 1, 15, 9, 30, tzinfo=UTC))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long tests (marked slow) first: `make test` hands tests out in collection order (`--dist
    loadgroup`), so the run ends on short tests on both workers, not on one long test on one."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    _apply_xdist_groups(config, items)


def _apply_xdist_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`xdist_group` as pytest-xdist means it: xdist 3.8 marks a grouped test by setting `_nodeid`,
    which pytest 9 no longer reads (the id lives in `_id`), so every group was silently split over
    both workers (module fixtures built twice). On a `--dist loadgroup` worker, the same suffix."""
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import NodeId

    for item in items:
        names = sorted(
            {
                str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                for m in item.iter_markers("xdist_group")
            }
        )
        if names and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(names)}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    passed = terminalreporter.stats.get("passed", [])
    skipped = terminalreporter.stats.get("skipped", [])
    on_pg = sum(1 for r in passed if "postgresql" in r.nodeid)
    on_sqlite = sum(1 for r in passed if "sqlite" in r.nodeid)
    pg_skipped = sum(1 for r in skipped if "postgresql" in getattr(r, "nodeid", ""))
    terminalreporter.write_line(
        f"database legs: {on_sqlite} tests passed on SQLite, {on_pg} passed on PostgreSQL"
        + (f", {pg_skipped} PostgreSQL tests skipped" if pg_skipped else "")
    )


@pytest.fixture(scope="session")
def en16931() -> tuple[Schematron, Schematron]:
    """The official EN 16931 validators (CII, UBL), compiled once per session (per xdist worker)."""
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    return Schematron(CII_XSLT), Schematron(UBL_XSLT)


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """One Chromium per test session (per xdist worker) for the browser tests that share it (the
    portal's story, the emailed update-card link); skipped where Playwright or Chromium is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from tests.pages.support import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def pytest_configure(config: pytest.Config) -> None:
    """`FISCUS_TEST_CPU=/path/out.tsv` records wall and CPU per test (tests/timing_plugin.py)."""
    path = os.environ.get("FISCUS_TEST_CPU")
    if path:
        from tests.timing_plugin import CpuTiming

        config.pluginmanager.register(CpuTiming(path), "fiscus-cpu-timing")
