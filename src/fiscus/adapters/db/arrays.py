"""`column IN (values)` that keeps one statement text whatever the number of values.

SQLAlchemy expands `column.in_(values)` into one bound parameter per value, so a 250-id batch gives a
statement text of its own length: too long for psycopg's query cache and its prepared statements, it was
re-parsed by the driver on every execution (issue 18, ADR 0004 addendum 6). On PostgreSQL the values go
as one array parameter, `column = ANY(%s)`, a constant text. SQLite keeps the expanding `IN`, which its
driver does not re-parse and which has no array type.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ARRAY, Connection, String, Table, any_, bindparam, update
from sqlalchemy.sql.elements import ColumnElement


def any_of(conn: Connection, column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN (values)` for `conn`'s database; an empty `values` matches no row on both."""
    wanted = list(values)
    if conn.dialect.name == "postgresql":
        # Text without its length: a cast to VARCHAR(n) would cut a longer value, and so match wrongly.
        item = String() if isinstance(column.type, String) else column.type
        return column == any_(bindparam(None, wanted, type_=ARRAY(item)))
    return column.in_(wanted)


def update_by_id(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *, id_key: str, **constants: Any
) -> None:
    """For each row, `UPDATE table SET <its other keys>, <constants> WHERE id = row[id_key]`.

    On PostgreSQL one statement over column arrays (`UPDATE ... FROM unnest(...)`): the executemany it
    replaces was one execution per row, each bound and run by the server and sent by the driver
    (the billing run's subscription advance, issue 18). Values pass through the columns' bind
    processing as SQLAlchemy would do it; text goes as unbounded text, so an over-long value is refused
    by the column as before instead of cut by a cast. Parameters go in binary (`%b`): the driver dumps
    a list of datetimes as text ~10x slower.
    """
    if not rows:
        return
    if len({r[id_key] for r in rows}) != len(rows):  # UPDATE ... FROM would apply one of them, unordered
        raise ValueError("update_by_id takes each id once")
    columns = [k for k in rows[0] if k != id_key]
    if conn.dialect.name != "postgresql":
        values: dict[str, Any] = {c: bindparam(c) for c in columns}
        statement = update(table).where(table.c.id == bindparam(id_key)).values({**values, **constants})
        conn.execute(statement, list(rows))
        return
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote

    def processed(column: str, value: Any) -> Any:
        process = table.c[column].type.bind_processor(dialect)
        return process(value) if process else value

    def sql_type(column: str) -> str:
        kind = table.c[column].type
        return "text" if isinstance(kind, String) else str(kind.compile(dialect=dialect))

    keys = ["id", *columns]
    arrays = [[processed("id", r[id_key]) for r in rows]]
    arrays += [[processed(c, r[c]) for r in rows] for c in columns]
    assignments = [f"{quote(c)} = v.{quote(c)}" for c in columns]
    assignments += [f"{quote(c)} = %b" for c in constants]
    name = quote(table.name)
    sql = (
        f"UPDATE {name} SET {', '.join(assignments)} FROM unnest("
        + ", ".join(f"%b::{sql_type(c)}[]" for c in keys)
        + f") AS v({', '.join(quote(c) for c in keys)}) WHERE {name}.id = v.id"
    )
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        cursor.execute(sql, [*(processed(c, v) for c, v in constants.items()), *arrays])  # text order
