"""The throwaway PostgreSQL cluster the PostgreSQL leg of the suite and the benchmarks stand on."""

from __future__ import annotations

import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text

from fiscus.testing.pgcluster import (
    PostgresUnavailable,
    ThrowawayPostgres,
    find_pg_bin,
    remove_stale_clusters,
)

if find_pg_bin() is None:
    pytest.skip(
        "no PostgreSQL server binaries (initdb, pg_ctl): install postgresql-15 or set FISCUS_PG_BIN",
        allow_module_level=True,
    )

# More digits than a float can hold, and a scale that must survive the round trip.
AMOUNT = Decimal("12345678901234567890.123456789000")


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_cluster_lifecycle_databases_and_templates() -> None:
    pg = ThrowawayPostgres()
    try:
        pg.start()
        assert pg.host == "127.0.0.1"
        assert pg.url() == f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/postgres"

        url = pg.create_database("fiscus_tpl")
        assert url == pg.url("fiscus_tpl")
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                base_dir = Path(conn.execute(text("SHOW data_directory")).scalar_one()).parent
                conn.execute(text("CREATE TABLE ledger (id int PRIMARY KEY, amount numeric NOT NULL)"))
                conn.execute(text("INSERT INTO ledger VALUES (1, :amount)"), {"amount": AMOUNT})
            with engine.connect() as conn:
                stored = conn.execute(text("SELECT amount FROM ledger WHERE id = 1")).scalar_one()
        finally:
            engine.dispose()
        assert isinstance(stored, Decimal)
        assert stored == AMOUNT
        assert str(stored) == str(AMOUNT)
        assert base_dir.name.startswith("fiscus-pg-")
        assert base_dir.is_dir()

        # A session left open on the template must not make CREATE DATABASE ... TEMPLATE fail.
        blocker = psycopg.connect(host=pg.host, port=pg.port, user="postgres", dbname="fiscus_tpl")
        try:
            copy_url = pg.create_database("fiscus_copy", template="fiscus_tpl")
        finally:
            blocker.close()
        assert copy_url == pg.url("fiscus_copy")
        copy_engine = create_engine(copy_url)
        try:
            with copy_engine.connect() as conn:
                assert conn.execute(text("SELECT amount FROM ledger")).scalar_one() == AMOUNT
            # WITH (FORCE): the pooled connection does not stop the drop.
            pg.drop_database("fiscus_copy")
        finally:
            copy_engine.dispose()
        pg.drop_database("fiscus_copy")  # IF EXISTS: dropping twice is fine
        with psycopg.connect(host=pg.host, port=pg.port, user="postgres", dbname="postgres") as conn:
            names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        assert "fiscus_copy" not in names
        assert "fiscus_tpl" in names

        for bad in ("Ledger", "1db", "a; DROP DATABASE postgres", "x" * 64, ""):
            with pytest.raises(ValueError, match="safe identifier"):
                pg.create_database(bad)
        with pytest.raises(ValueError, match="safe identifier"):
            pg.create_database("fine", template='fiscus"tpl')

        port = pg.port
        assert _accepts_connections(port)
    finally:
        pg.stop()

    assert not base_dir.exists()
    assert not _accepts_connections(port)
    pg.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = pg.port


def test_missing_binaries_raise_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PostgresUnavailable, match="no PostgreSQL server binaries"):
        ThrowawayPostgres(bin_dir=tmp_path).start()


def test_fiscus_pg_bin_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    system = find_pg_bin()
    monkeypatch.setenv("FISCUS_PG_BIN", str(tmp_path))  # no initdb there: ignored
    assert find_pg_bin() == system
    assert system is not None
    monkeypatch.setenv("FISCUS_PG_BIN", str(system))
    assert find_pg_bin() == system


def test_stale_cluster_of_a_killed_process_is_removed() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from fiscus.testing.pgcluster import ThrowawayPostgres\n"
            "pg = ThrowawayPostgres()\n"
            "pg.start()\n"
            "print(pg.port, flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
    finally:
        child.kill()  # no atexit: the cluster is orphaned
        child.wait()
    assert _accepts_connections(port)
    assert remove_stale_clusters() >= 1
    assert not _accepts_connections(port)
