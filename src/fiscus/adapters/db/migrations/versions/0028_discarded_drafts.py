"""discarded drafts counted apart; replaced proformas; expiry indexes (issue 17 leftovers)

A draft discarded unissued (its subscription cancelled: void, never numbered, `sequence` NULL) is not a
document anyone issued. The issued-only lists (and the dialects' lists) leave it out, so the maintained
`document_counts` (migrations 0022, 0025) key it under a status of its own, `discarded`, instead of
`void`: the count of a list and the running sums per id block that locate its deep pages
(`queries/document_blocks.py`) stay exact. The triggers are 0025's with that status key, and the counts
are recomputed. `ix_documents_discarded` (partial: only such drafts) lets a list leave them out without
reading any row it lists.

`discount_billing.expire_due` runs before every billing run and read every coupon and every grant:
`ix_coupons_expiry` (unexpired coupons by redeem-by date) and `ix_wallet_grants_expiry` (active grants by
expiry) let it read only what is due.

`documents.replaces_id`: a proforma reissued because a customer entered a promotion code on its hosted
page names the proforma it replaced, so the replaced one can point to its successor.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07 22:10:00
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ID_BLOCK = 4096
COMPACT_ABOVE = 64
FOLD_LOCK = 18_0026

_NAMES = ("document_counts_insert", "document_counts_delete", "document_counts_update")
_COLS = "organization_id, type, status, id_block"


def _status(r: str) -> str:
    """The count's status key: `discarded` for a void document that never had a number."""
    return f"(CASE WHEN {r}.status = 'void' AND {r}.sequence IS NULL THEN 'discarded' ELSE {r}.status END)"


def _key(r: str) -> str:
    return (
        f"organization_id = {r}.organization_id AND type = {r}.type AND status = {_status(r)} "
        f"AND id_block = {r}.id / {ID_BLOCK}"
    )


def _sqlite_add(r: str) -> str:
    return (
        f"UPDATE document_counts SET n = n + 1 WHERE {_key(r)};\n"
        f"INSERT INTO document_counts ({_COLS}, n) "
        f"SELECT {r}.organization_id, {r}.type, {_status(r)}, {r}.id / {ID_BLOCK}, 1 "
        f"WHERE NOT EXISTS (SELECT 1 FROM document_counts WHERE {_key(r)});\n"
    )


def _sqlite_remove(r: str) -> str:
    return f"UPDATE document_counts SET n = n - 1 WHERE {_key(r)};\n"


SQLITE_TRIGGERS = [
    "CREATE TRIGGER document_counts_insert AFTER INSERT ON documents BEGIN\n" + _sqlite_add("NEW") + "END",
    "CREATE TRIGGER document_counts_delete AFTER DELETE ON documents BEGIN\n" + _sqlite_remove("OLD") + "END",
    "CREATE TRIGGER document_counts_update "
    "AFTER UPDATE OF organization_id, type, status, sequence ON documents\n"
    "WHEN OLD.organization_id IS NOT NEW.organization_id OR OLD.type IS NOT NEW.type "
    "OR OLD.status IS NOT NEW.status "
    "OR (OLD.sequence IS NULL) IS NOT (NEW.sequence IS NULL) BEGIN\n"
    + _sqlite_remove("OLD")
    + _sqlite_add("NEW")
    + "END",
]

_MATCH = (
    "organization_id = k.organization_id AND type = k.type AND status = k.status AND id_block = k.id_block"
)


def _pg_function(name: str, delta: str) -> str:
    """0025's function: one signed delta row per key per statement, folded when a key's rows pile up."""
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


def _rows(table: str, sign: str) -> str:
    return (
        f"SELECT organization_id, type, {_status(table)} AS status, id / {ID_BLOCK} AS id_block, "
        f"{sign}1::bigint AS n FROM {table}"
    )


_ADDED, _REMOVED = _rows("new_rows", ""), _rows("old_rows", "-")
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

DISCARDED = "status = 'void' AND sequence IS NULL"


def _drop_triggers(postgres: bool) -> None:
    for name in _NAMES:
        op.execute(f"DROP TRIGGER {name} ON documents" if postgres else f"DROP TRIGGER {name}")
        if postgres:
            op.execute(f"DROP FUNCTION {name}()")


def _recount(status: str) -> None:
    op.execute("DELETE FROM document_counts")
    op.execute(
        f"INSERT INTO document_counts ({_COLS}, n) "
        f"SELECT organization_id, type, {status}, id / {ID_BLOCK}, count(*) FROM documents "
        f"GROUP BY organization_id, type, {status}, id / {ID_BLOCK}"
    )


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _drop_triggers(postgres)
    _recount(_status("documents"))
    for statement in PG_STATEMENTS if postgres else SQLITE_TRIGGERS:
        op.execute(statement)
    where = sa.text(DISCARDED)
    op.create_index(
        "ix_documents_discarded",
        "documents",
        ["organization_id", "id"],
        postgresql_where=where,
        sqlite_where=where,
    )
    op.add_column("documents", sa.Column("replaces_id", ID, nullable=True))
    op.create_index("ix_documents_replaces", "documents", ["replaces_id"], unique=True)
    op.create_index("ix_coupons_expiry", "coupons", ["expired_at", "redeem_by", "organization_id"])
    op.create_index(
        "ix_wallet_grants_expiry", "wallet_grants", ["status", "expires_at", "organization_id", "wallet_id"]
    )


def _revision_0025() -> ModuleType:
    """0025's trigger statements, which a downgrade puts back (the file is not an importable module)."""
    spec = importlib.util.spec_from_file_location(
        "_fiscus_0025", Path(__file__).with_name("0025_document_count_blocks.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    before = _revision_0025()
    postgres = op.get_bind().dialect.name == "postgresql"
    op.drop_index("ix_wallet_grants_expiry", table_name="wallet_grants")
    op.drop_index("ix_coupons_expiry", table_name="coupons")
    op.drop_index("ix_documents_discarded", table_name="documents")
    op.drop_index("ix_documents_replaces", table_name="documents")
    op.execute("ALTER TABLE documents DROP COLUMN replaces_id")  # in place: the table keeps its triggers
    _drop_triggers(postgres)
    _recount("status")
    for statement in before.PG_STATEMENTS if postgres else before.SQLITE_TRIGGERS:
        op.execute(statement)
