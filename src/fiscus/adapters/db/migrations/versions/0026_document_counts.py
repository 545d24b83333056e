"""document counts maintained by triggers (issue 18)

`document_counts` (see `fiscus.adapters.db.tables_counts`) filled from the existing documents, then kept
by triggers on `documents`: per row on SQLite (one row per key, updated in place: SQLite has one writer
at a time), per statement on PostgreSQL (one signed delta row per key per statement, from the
statement's transition tables, so COPY and multi-row inserts pay once; concurrent writers only append
and never wait on one another; a statement folds its organisation's deltas when they pile up and no
other transaction is folding it).

Revision ID: 0026
Revises: 0021
Create Date: 2026-12-07 16:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0021"
branch_labels = None
depends_on = None

COMPACT_ABOVE = 64
FOLD_LOCK = 18_0026
"""First key of the PostgreSQL advisory lock a statement holds while folding an organisation's rows."""

_KEY = "organization_id = {r}.organization_id AND type = {r}.type AND status = {r}.status"


def _sqlite_add(r: str) -> str:
    return (
        f"UPDATE document_counts SET n = n + 1 WHERE {_KEY.format(r=r)};\n"
        f"INSERT INTO document_counts (organization_id, type, status, n) "
        f"SELECT {r}.organization_id, {r}.type, {r}.status, 1 "
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


def _pg_function(name: str, delta: str, orgs: str) -> str:
    return f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    org bigint;
BEGIN
    INSERT INTO document_counts (organization_id, type, status, n)
    SELECT organization_id, type, status, sum(n) FROM ({delta}) AS delta
    GROUP BY organization_id, type, status HAVING sum(n) <> 0;
    FOR org IN SELECT DISTINCT organization_id FROM {orgs} LOOP
        IF (SELECT count(*) FROM document_counts WHERE organization_id = org) > {COMPACT_ABOVE}
           AND pg_try_advisory_xact_lock({FOLD_LOCK}, (org % 2147483647)::int) THEN
            WITH gone AS (DELETE FROM document_counts WHERE organization_id = org RETURNING type, status, n)
            INSERT INTO document_counts (organization_id, type, status, n)
            SELECT org, type, status, sum(n) FROM gone GROUP BY type, status HAVING sum(n) <> 0;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$"""


_ADDED = "SELECT organization_id, type, status, 1::bigint AS n FROM new_rows"
_REMOVED = "SELECT organization_id, type, status, -1::bigint AS n FROM old_rows"
PG_STATEMENTS = [
    _pg_function("document_counts_insert", _ADDED, "new_rows"),
    _pg_function("document_counts_delete", _REMOVED, "old_rows"),
    _pg_function("document_counts_update", f"{_ADDED} UNION ALL {_REMOVED}", "new_rows"),
    "CREATE TRIGGER document_counts_insert AFTER INSERT ON documents REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION document_counts_insert()",
    "CREATE TRIGGER document_counts_delete AFTER DELETE ON documents REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION document_counts_delete()",
    "CREATE TRIGGER document_counts_update AFTER UPDATE ON documents "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION document_counts_update()",
]


def upgrade() -> None:
    op.create_table(
        "document_counts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_counts")),
    )
    op.create_index("ix_document_counts_key", "document_counts", ["organization_id", "type", "status"])
    op.execute(
        "INSERT INTO document_counts (organization_id, type, status, n) "
        "SELECT organization_id, type, status, count(*) FROM documents GROUP BY organization_id, type, status"
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in PG_STATEMENTS if postgres else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in ("document_counts_insert", "document_counts_delete", "document_counts_update"):
        op.execute(f"DROP TRIGGER {name} ON documents" if postgres else f"DROP TRIGGER {name}")
        if postgres:
            op.execute(f"DROP FUNCTION {name}()")
    op.drop_index("ix_document_counts_key", table_name="document_counts")
    op.drop_table("document_counts")
