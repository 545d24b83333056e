"""Migrations go up and down on both databases, and the models match what they build."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import fiscus.adapters.db.tables_email  # noqa: F401  (its tables on the shared metadata)
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.migrations import downgrade, is_up_to_date, upgrade
from fiscus.adapters.db.tables import metadata
from fiscus.adapters.db.tables_console_sort import DOCUMENT_EXPRESSION_INDEXES
from tests.conftest import new_database_url


def test_upgrade_downgrade_upgrade(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = new_database_url(backend, request, tmp_path)
    db = Database(url)
    assert is_up_to_date(db.engine)
    downgrade(url, "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    upgrade(url)
    assert is_up_to_date(db.engine)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    # An expression index reads back as the database rewrote it (PostgreSQL) or not at all (SQLite):
    # compared by name below instead.
    expressions = {i.name for i in DOCUMENT_EXPRESSION_INDEXES}
    assert [
        d
        for d in diff
        if d[0] not in ("add_constraint", "remove_constraint")
        and not (d[0] in ("add_index", "remove_index") and d[1].name in expressions)
    ] == []
    listed = (
        "SELECT name FROM sqlite_master WHERE type = 'index'"
        if backend == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE tablename = 'documents'"
    )
    with db.engine.connect() as conn:
        assert expressions <= set(conn.exec_driver_sql(listed).scalars())
    db.dispose()


def test_no_database_sequence_numbers_documents(db: Database) -> None:
    """Legal numbers come from a counter row: the schema has no sequence on the number columns."""
    columns = {c["name"]: c for c in inspect(db.engine).get_columns("documents")}
    assert "nextval" not in str(columns["sequence"].get("default") or "")
    uniques = inspect(db.engine).get_unique_constraints("documents")
    assert any(set(u["column_names"]) == {"organization_id", "type", "series", "sequence"} for u in uniques)
