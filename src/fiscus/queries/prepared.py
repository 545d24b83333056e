"""Statements of the hot read paths, compiled once per shape and run on the transaction's own cursor.

A list or get request whose documents are all rendered already (the steady state, ADR 0004) costs one
or two small SELECTs; building them as Core expressions, generating their cache keys and going through
SQLAlchemy's execution context cost several times what SQLite takes to answer them (bench/api_read.py,
ADR 0004 addendum 5). Here a statement is still written once as a Core expression, with a named
`bindparam` for every value that varies per request, compiled once per (shape, dialect) and then run
with plain parameters on the DBAPI cursor of the caller's connection, inside the caller's transaction.

Only integer and string parameters go this way (they need no bind processing on either driver); a
shape with anything else (dates) stays on the Core path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

_Compiled = tuple[str, tuple[str, ...] | None, dict[str, Any]]


class Prepared:
    """One statement shape: `build()` returns the Core statement; `rows(conn, params)` runs it."""

    __slots__ = ("_build", "_compiled", "_lock")

    def __init__(self, build: Callable[[], ClauseElement]) -> None:
        self._build = build
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self._build().compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        positions = tuple(compiled.positiontup or ()) if compiled.positional else None
        return compiled.string, positions, dict(compiled.construct_params() or {})

    def sql(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            with self._lock:
                found = self._compiled.setdefault(dialect.name, self._compile(dialect))
        return found

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row, as the driver returns it (tuples), of the statement with `params` bound over the
        values it was built with."""
        text, positions, defaults = self.sql(conn.dialect)
        values = {name: params.get(name, value) for name, value in defaults.items()}
        bound: Any = tuple(values[name] for name in positions) if positions is not None else values
        cursor = conn.connection.cursor()
        try:
            cursor.execute(text, bound)
            return list(cursor.fetchall())
        except conn.dialect.loaded_dbapi.Error:
            # Once more through SQLAlchemy, which wraps the error and notices a dropped connection (the
            # pool then discards it); on PostgreSQL the aborted transaction fails it at once.
            return list(conn.exec_driver_sql(text, bound).all())
        finally:
            cursor.close()


class Shapes:
    """Prepared statements by shape key, built on first use (the keys are a small finite set: which
    filters a list has, its cursor direction)."""

    __slots__ = ("_build", "_found", "_lock")

    def __init__(self, build: Callable[[Any], ClauseElement]) -> None:
        self._build = build
        self._found: dict[Hashable, Prepared] = {}
        self._lock = threading.Lock()

    def __getitem__(self, key: Hashable) -> Prepared:
        found = self._found.get(key)
        if found is None:
            with self._lock:
                found = self._found.get(key)
                if found is None:
                    found = self._found[key] = Prepared(lambda: self._build(key))
        return found
