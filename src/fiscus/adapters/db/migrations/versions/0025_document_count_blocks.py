"""document counts per id block (issue 18: deep pages)

`document_counts` (migration 0022) gains `id_block` (a document's id // `ID_BLOCK`): the counts per
(organisation, type, status) are now kept per block of ids too. Their sum is the list's size as before;
their running sum over blocks says in which block the list's k-th document lies, so a page-number
dialect finds page 10,000 of a million documents by summing a few hundred count rows and skipping at
most one block's index entries, instead of skipping half the organisation's index
(`fiscus.queries.documents.offset_document_stamps`).

The triggers are those of 0022 with the block added to the key. On PostgreSQL the fold (deltas piling
up) now works per key (organisation, type, status, block): a large organisation has a row per block and
key in the steady state, so a per-organisation threshold would fold on every statement.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 19:00:00
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

ID_BLOCK = 4096
COMPACT_ABOVE = 64
FOLD_LOCK = 18_0026

_NAMES = ("document_counts_insert", "document_counts_delete", "document_counts_update")
_COLS = "organization_id, type, status, id_block"
_KEY = (
    "organization_id = {r}.organization_id AND type = {r}.type AND status = {r}.status "
    "AND id_block = {r}.id / " + str(ID_BLOCK)
)


def _sqlite_add(r: str) -> str:
    return (
        f"UPDATE document_counts SET n = n + 1 WHERE {_KEY.format(r=r)};\n"
        f"INSERT INTO document_counts ({_COLS}, n) "
        f"SELECT {r}.organization_id, {r}.type, {r}.status, {r}.id / {ID_BLOCK}, 1 "
        f"WHERE NOT EXISTS (SELECT 1 FROM document_counts WHERE {_KEY.format(r=r)});\n"
    )


def _sqlite_remove(r: str) -> str:
    return f"UPDATE document_counts SET n = n - 1 WHERE {_KEY.format(r=r)};\n"


SQLITE_TRIGGERS = [
    "CREATE TRIGGER document_counts_insert AFTER INSERT ON documents BEGIN\n" + _sqlite_add("NEW") + "END",
    "CREATE TRIGGER document_counts_delete AFTER DELETE ON documents BEGIN\n" + _sqlite_remove("OLD") + "END",
    "CREATE TRIGGER document_counts_update AFTER UPDATE OF organization_id, type, status ON documents\n"
    "WHEN OLD.organization_id IS NOT NEW.organization_id OR OLD.type IS NOT NEW.type "
    "OR OLD.status IS NOT NEW.status BEGIN\n" + _sqlite_remove("OLD") + _sqlite_add("NEW") + "END",
]

_MATCH = (
    "organization_id = k.organization_id AND type = k.type AND status = k.status AND id_block = k.id_block"
)


def _pg_function(name: str, delta: str) -> str:
    """One signed delta row per key per statement; then, per key the statement touched, a fold when
    that key's rows pile up and no other transaction is folding the organisation (a try-lock)."""
    return f"""CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    k record;
BEGIN
    FOR k IN
        INSERT INTO document_counts ({_COLS}, n)
        SELECT organization_id, type, status, id_block, sum(n) FROM ({delta}) AS delta
        GROUP BY organization_id, type, status, id_block HAVING sum(n) <> 0
        RETURNING {_COLS}
    LOOP
        IF (SELECT count(*) FROM document_counts WHERE {_MATCH}) > {COMPACT_ABOVE}
           AND pg_try_advisory_xact_lock({FOLD_LOCK}, (k.organization_id % 2147483647)::int) THEN
            WITH gone AS (DELETE FROM document_counts WHERE {_MATCH} RETURNING n)
            INSERT INTO document_counts ({_COLS}, n)
            SELECT k.organization_id, k.type, k.status, k.id_block, sum(n) FROM gone HAVING sum(n) <> 0;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$"""


_ADDED = f"SELECT organization_id, type, status, id / {ID_BLOCK} AS id_block, 1::bigint AS n FROM new_rows"
_REMOVED = f"SELECT organization_id, type, status, id / {ID_BLOCK} AS id_block, -1::bigint AS n FROM old_rows"
PG_STATEMENTS = [
    _pg_function("document_counts_insert", _ADDED),
    _pg_function("document_counts_delete", _REMOVED),
    _pg_function("document_counts_update", f"{_ADDED} UNION ALL {_REMOVED}"),
    "CREATE TRIGGER document_counts_insert AFTER INSERT ON documents REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION document_counts_insert()",
    "CREATE TRIGGER document_counts_delete AFTER DELETE ON documents REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION document_counts_delete()",
    "CREATE TRIGGER document_counts_update AFTER UPDATE ON documents "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION document_counts_update()",
]


def _drop_triggers(postgres: bool) -> None:
    for name in _NAMES:
        op.execute(f"DROP TRIGGER {name} ON documents" if postgres else f"DROP TRIGGER {name}")
        if postgres:
            op.execute(f"DROP FUNCTION {name}()")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _drop_triggers(postgres)
    op.drop_index("ix_document_counts_key", table_name="document_counts")
    op.add_column(
        "document_counts", sa.Column("id_block", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.execute("DELETE FROM document_counts")
    op.execute(
        f"INSERT INTO document_counts ({_COLS}, n) "
        f"SELECT organization_id, type, status, id / {ID_BLOCK}, count(*) FROM documents "
        f"GROUP BY organization_id, type, status, id / {ID_BLOCK}"
    )
    op.create_index(
        "ix_document_counts_key", "document_counts", ["organization_id", "type", "status", "id_block"]
    )
    for statement in PG_STATEMENTS if postgres else SQLITE_TRIGGERS:
        op.execute(statement)


def _revision_0022() -> ModuleType:
    """0022's trigger statements, which a downgrade puts back (the file is not an importable module)."""
    spec = importlib.util.spec_from_file_location(
        "_fiscus_0022", Path(__file__).with_name("0022_document_counts.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    before = _revision_0022()
    postgres = op.get_bind().dialect.name == "postgresql"
    _drop_triggers(postgres)
    op.drop_index("ix_document_counts_key", table_name="document_counts")
    op.drop_column("document_counts", "id_block")
    op.execute("DELETE FROM document_counts")
    op.execute(
        "INSERT INTO document_counts (organization_id, type, status, n) "
        "SELECT organization_id, type, status, count(*) FROM documents GROUP BY organization_id, type, status"
    )
    op.create_index("ix_document_counts_key", "document_counts", ["organization_id", "type", "status"])
    for statement in before.PG_STATEMENTS if postgres else before.SQLITE_TRIGGERS:
        op.execute(statement)
