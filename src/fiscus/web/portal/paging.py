"""Keyset pages for the portal's lists (newest first, Stripe's cursors as in the API): `?after=ID`
shows what is older than ID, `?before=ID` what is newer; each page reads at most one row more than it
shows, so a customer with years of documents never loads them all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from fastapi import Request

from fiscus.web.portal.common import ident

PAGE_SIZE: Final = 25


@dataclass(frozen=True, slots=True)
class Cursor:
    after: int | None = None
    before: int | None = None


def cursor_of(request: Request, prefix: str = "") -> Cursor:
    """The cursor in the query (`after`, `before`, or `{prefix}_after`...); malformed ids are ignored."""
    q = request.query_params
    after = ident(q.get(f"{prefix}after", "")) if q.get(f"{prefix}after") else None
    before = ident(q.get(f"{prefix}before", "")) if q.get(f"{prefix}before") else None
    return Cursor(after, None if after is not None else before)


def pager(path: str, ids: list[int], has_more: bool, cursor: Cursor, prefix: str = "") -> dict[str, str]:
    """Links to the older and newer pages ('' where there is none). `has_more` is in the direction the
    page was read: older for a first or `after` page, newer for a `before` page."""
    older = newer = ""
    if ids:
        more_older = has_more if cursor.before is None else True
        more_newer = has_more if cursor.before is not None else cursor.after is not None
        if more_older:
            older = f"{path}?{urlencode({f'{prefix}after': ids[-1]})}"
        if more_newer:
            newer = f"{path}?{urlencode({f'{prefix}before': ids[0]})}"
    elif cursor.after is not None or cursor.before is not None:
        newer = path  # a cursor past either end: back to the first page
    return {"older": older, "newer": newer}
