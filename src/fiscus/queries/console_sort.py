"""Sorting any console list on any of its columns with a keyset cursor consistent with the order.

The order is (value, id) ascending or descending, so rows with equal values keep a stable order by id
and a page never repeats or skips a row. A NULL value sorts after every value ascending (and so first
descending: exactly the reverse order), on both databases (`NULLS LAST` / `NULLS FIRST` spelled out).
The cursor is the last row's value and id, never an OFFSET: a page reads `limit + 1` rows in the
order of an `(organization_id, column, id)` index where one exists (`adapters/db/tables_console_sort.py`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, Connection, Select, and_, literal, or_, select, tuple_, union_all

from fiscus.domain.errors import InvalidFieldError

Kind = Literal["int", "str", "datetime", "date", "bool"]
SORT_VALUE: Final = "sort_value"


@dataclass(frozen=True, slots=True)
class SortColumn:
    expr: ColumnElement[Any]
    kind: Kind
    nullable: bool = False
    expression: bool = False
    """Indexed as an expression: a page after a cursor is read as two index seeks (the cursor's value
    past its id, then the values beyond), since SQLite does not seek an expression index on a row-value
    comparison and would walk the entries before the cursor."""


@dataclass(frozen=True, slots=True)
class Sort:
    column: str
    descending: bool = True

    @property
    def param(self) -> str:
        return f"-{self.column}" if self.descending else self.column


@dataclass(frozen=True, slots=True)
class KeyPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def parse_sort(value: str | None, columns: Mapping[str, SortColumn], default: str = "-id") -> Sort:
    """`name` ascending or `-name` descending; anything else is a field error naming `sort`."""
    raw = (value or default).strip()
    name = raw.removeprefix("-")
    if name not in columns:
        raise InvalidFieldError("sort", f"must be one of {', '.join(columns)} (- for descending)")
    return Sort(name, raw.startswith("-"))


def encode_cursor(value: Any, ident: int) -> str:
    raw = json.dumps([value.isoformat() if hasattr(value, "isoformat") else value, ident])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kind: Kind) -> tuple[Any, int]:
    """The (value, id) of a cursor, the value in the column's type; a forged one is a field error."""
    bad = InvalidFieldError("after", "is not a cursor of this list")
    try:
        value, ident = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(ident, int) or isinstance(ident, bool) or not -(2**63) < ident < 2**63:
            raise bad
        if value is None:
            return None, ident
        if kind == "datetime" and isinstance(value, str):
            return datetime.fromisoformat(value), ident
        if kind == "date" and isinstance(value, str):
            return date.fromisoformat(value), ident
        number = isinstance(value, int) and not isinstance(value, bool)
        if kind == "int" and number and -(2**63) < value < 2**63:
            return value, ident
        if (kind == "str" and isinstance(value, str)) or (kind == "bool" and isinstance(value, bool)):
            return value, ident
    except (ValueError, TypeError, UnicodeDecodeError):
        raise bad from None
    raise bad


def _after(col: SortColumn, id_col: ColumnElement[Any], value: Any, ident: int, desc: bool) -> Any:
    """Rows strictly after (value, ident) in the order (value NULLS LAST, id), or its reverse."""
    key = col.expr
    if not col.nullable:
        pair = tuple_(key, id_col)
        bound = tuple_(literal(value, key.type), literal(ident, id_col.type))
        return pair < bound if desc else pair > bound
    if not desc:
        if value is None:
            return and_(key.is_(None), id_col > ident)
        return or_(key > value, and_(key == value, id_col > ident), key.is_(None))
    if value is None:
        return or_(and_(key.is_(None), id_col < ident), key.is_not(None))
    return and_(key.is_not(None), or_(key < value, and_(key == value, id_col < ident)))


def keyset_page(
    conn: Connection,
    query: Select[Any],
    id_col: ColumnElement[Any],
    columns: Mapping[str, SortColumn],
    sort: Sort,
    *,
    limit: int,
    after: str | None,
) -> KeyPage:
    """One page of `query` (every filter applied) in the sort's order, and the next page's cursor."""
    col = columns[sort.column]
    query = query.add_columns(col.expr.label(SORT_VALUE))
    if after and col.expression and not col.nullable:
        value, ident = decode_cursor(after, col.kind)
        return _page(conn, _seek(query, col, id_col, value, ident, sort.descending, limit + 1), limit)
    if after:
        value, ident = decode_cursor(after, col.kind)
        query = query.where(_after(col, id_col, value, ident, sort.descending))
    if sort.column == "id":
        order = [id_col.desc() if sort.descending else id_col.asc()]
    elif sort.descending:
        order = [col.expr.desc().nulls_first() if col.nullable else col.expr.desc(), id_col.desc()]
    else:
        order = [col.expr.asc().nulls_last() if col.nullable else col.expr.asc(), id_col.asc()]
    return _page(conn, query.order_by(*order).limit(limit + 1), limit)


def _seek(
    query: Select[Any],
    col: SortColumn,
    id_col: ColumnElement[Any],
    value: Any,
    ident: int,
    desc: bool,
    n: int,
) -> Select[Any]:
    """The `n` rows after (value, ident): those with the cursor's value past its id, and those with
    values beyond it, each an index seek of at most `n` entries, merged in the sort's order."""
    key = col.expr
    same = query.where(key == value, id_col < ident if desc else id_col > ident)
    same = same.order_by(id_col.desc() if desc else id_col.asc()).limit(n)
    beyond = query.where(key < value if desc else key > value)
    beyond = beyond.order_by(*((key.desc(), id_col.desc()) if desc else (key.asc(), id_col.asc()))).limit(n)
    both = union_all(select(same.subquery()), select(beyond.subquery())).subquery()
    value_col, id_out = both.c[SORT_VALUE], both.c["id"]
    order = (value_col.desc(), id_out.desc()) if desc else (value_col.asc(), id_out.asc())
    return select(both).order_by(*order).limit(n)


def _page(conn: Connection, query: Select[Any], limit: int) -> KeyPage:
    rows = [dict(r) for r in conn.execute(query).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1][SORT_VALUE], rows[-1]["id"]) if more and rows else None
    for row in rows:
        row.pop(SORT_VALUE, None)
    return KeyPage(rows, nxt)
