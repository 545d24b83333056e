"""The demo (a year of history, no gateway), seeded once per database per test process and copied for
each test that reads it: seeding is the costliest fixture of the suite, and the tests that check every
demo document (PDFs, the four APIs, EN 16931, Factur-X) only read it or add files of their own.

Its tests carry `xdist_group("demo")`, so one worker seeds it once per database for the whole run
(not each worker). A copy is a file copy on SQLite and `CREATE DATABASE ... TEMPLATE` on PostgreSQL,
like the migrated template of `conftest.new_database_url`. Calling `seed_demo` on a copy seeds
nothing and returns the same organisations and (kept, test-mode) keys, so tests call it as before.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Final

import pytest
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.engine import Database
from fiscus.demo import free_port, gateway_process, seed_demo
from fiscus.demo.summary import DemoResult
from fiscus.domain.clock import FixedClock
from fiscus.testing.pgcluster import ThrowawayPostgres

DEMO_NOW: Final = datetime(2026, 11, 23, 12, tzinfo=UTC)
"""The demo's "now" in the tests that read it (its year of history ends here)."""


class _Seeded:
    sqlite: Path | None = None
    postgresql: str | None = None
    first_runs: ClassVar[dict[str, DemoResult]] = {}


def _seed(url: str, backend: str) -> None:
    db = Database(url)
    try:
        result = seed_demo(db, FixedClock(DEMO_NOW), quiet=True)
        assert result.created
        _Seeded.first_runs[backend] = result
    finally:
        db.dispose()  # the last connection closed: SQLite's WAL is checkpointed into the file


def demo_first_run(backend: str) -> DemoResult:
    """What the seeding `seed_demo` returned (the run that created the demo copied by
    `demo_database_url`): for the test of the seed itself, which then checks a copy."""
    return _Seeded.first_runs[backend]


def demo_database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh copy of the seeded demo on `backend`, for one test."""
    from tests.conftest import new_database_url

    if backend == "sqlite":
        if _Seeded.sqlite is None:
            factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
            template = factory.mktemp("demo") / "demo.db"
            shutil.copyfile(request.getfixturevalue("sqlite_template"), template)
            _seed(f"sqlite:///{template}", "sqlite")
            assert not template.with_name("demo.db-wal").exists()  # all of it in the one file we copy
            _Seeded.sqlite = template
        path = tmp_path / f"demo-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(_Seeded.sqlite, path)
        return f"sqlite:///{path}"
    cluster: ThrowawayPostgres = request.getfixturevalue("pg_cluster")
    if _Seeded.postgresql is None:
        url = new_database_url("postgresql", request, tmp_path)
        _seed(url, "postgresql")
        _Seeded.postgresql = url.rsplit("/", 1)[1]
    return cluster.create_database(f"d_{uuid.uuid4().hex[:16]}", template=_Seeded.postgresql)


@pytest.fixture
def demo_db(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The seeded demo (clock at `DEMO_NOW`), a copy of its own for this test, on each database."""
    database = Database(demo_database_url(backend, request, tmp_path))
    yield database
    database.dispose()


@dataclass(frozen=True)
class GatewayDemo:
    """The demo seeded with its card payments over a live test gateway, and that first run's result."""

    db: Database
    result: DemoResult
    gateway_url: str


class _GatewayDemos:
    by_backend: ClassVar[dict[str, GatewayDemo]] = {}


@pytest.fixture(scope="session")
def _gateway_demo_stack() -> Iterator[ExitStack]:
    """Keeps the gateway processes (and databases) of the seeded gateway demos until the session ends."""
    with ExitStack() as stack:
        yield stack
    _GatewayDemos.by_backend.clear()


def gateway_demo_on(backend: str, request: pytest.FixtureRequest) -> GatewayDemo:
    """The demo with card payments over a live gateway, seeded once per database per test process (the
    costliest seed: a year of charges over HTTP) and SHARED, not copied: the gateway's ledger must match
    it. Its tests only read it (a second `seed_demo` on it changes nothing, which they check); keep
    them in `xdist_group("gateway_demo")` so one worker seeds it."""
    if backend not in _GatewayDemos.by_backend:
        from tests.conftest import new_database_url

        stack: ExitStack = request.getfixturevalue("_gateway_demo_stack")
        factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
        path = factory.mktemp(f"gateway-demo-{backend}")
        db = Database(new_database_url(backend, request, path))
        stack.callback(db.dispose)
        url = stack.enter_context(gateway_process(path / "gateway.db", free_port()))
        result = seed_demo(db, FixedClock(DEMO_NOW), quiet=True, gateway_url=url)
        _GatewayDemos.by_backend[backend] = GatewayDemo(db, result, url)
    return _GatewayDemos.by_backend[backend]


@pytest.fixture
def gateway_demo(backend: str, request: pytest.FixtureRequest) -> GatewayDemo:
    """`gateway_demo_on` on each database."""
    return gateway_demo_on(backend, request)


def stratified_sample(db: Database, *, drafts: bool = True) -> list[tuple[int, int]]:
    """(organisation id, document id) of the first and the last document of every stratum: organisation
    x type x status x the set of features the document carries (discount, bought or granted credit,
    usage, credit top-up, each tax treatment and line kind, tax-inclusive prices, a conversion from a
    proforma, a corrected document, partly paid, refunded). What a whole-demo check proves on one
    database, this proves on the other for every kind of document (~110 of the ~800)."""
    d, lines, allowances = t.documents.c, t.document_lines.c, td.document_allowances.c
    strata: dict[tuple[object, ...], list[int]] = {}
    with db.read() as conn:
        features: dict[int, set[str]] = {}

        def add(doc_id: Any, feature: str) -> None:
            features.setdefault(int(doc_id), set()).add(feature)

        for doc_id, kind, treatment, inclusive in conn.execute(
            select(lines.document_id, lines.kind, lines.tax_treatment, lines.tax_inclusive).distinct()
        ):
            add(doc_id, f"line:{kind}")
            add(doc_id, f"tax:{treatment}")
            if inclusive:
                add(doc_id, "tax_inclusive")
        for doc_id, coupon, grant in conn.execute(
            select(allowances.document_id, allowances.coupon_id, allowances.wallet_grant_id).distinct()
        ):
            add(doc_id, "discount" if coupon is not None else "credit" if grant is not None else "allowance")
        for doc_id in conn.execute(select(tu.usage_lines.c.document_id).distinct()).scalars():
            add(doc_id, "usage")
        for doc_id in conn.execute(select(td.wallet_topups.c.document_id).distinct()).scalars():
            if doc_id is not None:
                add(doc_id, "topup")
        query = select(
            d.id,
            d.organization_id,
            d.type,
            d.status,
            d.converted_from_id,
            d.corrected_document_id,
            d.credit_disposition,
            d.amount_credited_minor,
            d.amount_paid_minor,
            d.total_minor,
            d.amount_refunded_minor,
        ).order_by(d.id)
        if not drafts:
            query = query.where(d.status != "draft")
        for row in conn.execute(query):
            own = features.get(int(row.id), set())
            own |= {"converted_from"} if row.converted_from_id is not None else set()
            own |= {"corrects"} if row.corrected_document_id is not None else set()
            own |= {f"disposition:{row.credit_disposition}"} if row.credit_disposition else set()
            own |= {"credited"} if row.amount_credited_minor else set()
            own |= {"part_paid"} if 0 < row.amount_paid_minor < row.total_minor else set()
            own |= {"refunded"} if row.amount_refunded_minor else set()
            key = (row.organization_id, row.type, row.status, frozenset(own))
            strata.setdefault(key, []).append(int(row.id))
    picked = {(int(str(key[0])), doc_id) for key, ids in strata.items() for doc_id in (ids[0], ids[-1])}
    return sorted(picked, key=lambda pair: pair[1])
