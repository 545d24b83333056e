"""The dialect's own INSERT, for `ON CONFLICT` clauses (same syntax on PostgreSQL and SQLite)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


def insert_for(conn: Connection, table: Table) -> Any:
    """`INSERT` that knows `on_conflict_do_nothing` / `on_conflict_do_update` on this connection's dialect."""
    return pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)
