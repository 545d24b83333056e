"""Cursor pagination over a stable order (newest first: id descending), Stripe's way.

`starting_after=X` gives the page of objects older than X; `ending_before=X` the page of objects newer
than X (returned still newest first). `has_more` says whether another page exists in that direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, Select, Table


@dataclass(frozen=True, slots=True)
class CursorPage:
    ids: list[int]
    has_more: bool


def cursor_rows(
    conn: Connection,
    query: Select[Any],
    table: Table,
    *,
    limit: int,
    starting_after: int | None = None,
    ending_before: int | None = None,
) -> tuple[list[Row[Any]], bool]:
    """`query` selects rows of `table` (with `id`) with every filter applied; this adds the cursor and the
    order, and returns one page of rows, newest first, and whether there is more in that direction."""
    idc = table.c.id
    if ending_before is not None:
        rows = conn.execute(query.where(idc > ending_before).order_by(idc.asc()).limit(limit + 1)).all()
        return list(reversed(rows[:limit])), len(rows) > limit
    if starting_after is not None:
        query = query.where(idc < starting_after)
    rows = conn.execute(query.order_by(idc.desc()).limit(limit + 1)).all()
    return list(rows[:limit]), len(rows) > limit


def cursor_page(
    conn: Connection,
    query: Select[Any],
    table: Table,
    *,
    limit: int,
    starting_after: int | None = None,
    ending_before: int | None = None,
) -> CursorPage:
    """`query` selects `table.c.id` with every filter applied."""
    rows, has_more = cursor_rows(
        conn, query, table, limit=limit, starting_after=starting_after, ending_before=ending_before
    )
    return CursorPage([r[0] for r in rows], has_more)
