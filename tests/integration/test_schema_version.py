"""The start-up schema check without Alembic agrees with Alembic's own, on both databases."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from fiscus.adapters.db import migrations, schema_version
from fiscus.adapters.db.engine import Database


def test_head_is_alembics_head() -> None:
    assert schema_version.head_revision() == migrations.head_revision()


def test_migrated_stale_and_empty_databases(db: Database) -> None:
    assert schema_version.is_up_to_date(db.engine)
    assert migrations.is_up_to_date(db.engine)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    assert not schema_version.is_up_to_date(db.engine)
    assert not migrations.is_up_to_date(db.engine)
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    assert not schema_version.is_up_to_date(db.engine)
    assert not migrations.is_up_to_date(db.engine)


def test_an_empty_file_is_not_migrated(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/empty.db")
    try:
        assert not schema_version.is_up_to_date(engine)
    finally:
        engine.dispose()
