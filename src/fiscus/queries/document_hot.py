"""The documents' hot reads (every list and get of the native API and the seed dialects when their
renderings are cached), as prepared shapes (`queries.prepared`): the same SQL as the Core path of
`queries.documents`, compiled once per shape instead of built per request (ADR 0004 addendum 5).

Each function returns None when the request's filters are not of a prepared shape (date filters, whose
values need bind processing); the caller then takes its Core path. `tests/integration/test_hot_reads.py`
compares both paths on both databases."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import BindParameter, Connection, Select, bindparam, literal_column, select

from fiscus.adapters.db import tables as t
from fiscus.domain.documents import DocumentStatus
from fiscus.queries.prepared import Shapes
from fiscus.queries.scope import Scope

if TYPE_CHECKING:
    from fiscus.queries.document_filters import DocumentFilters

_DRAFT = "draft"


def _p(name: str, type_: Any, value: Any = None) -> BindParameter[Any]:
    """A parameter of the shape: given per request, or fixed by the shape (`value`)."""
    return bindparam(name, value, type_=type_)


_D = t.documents.c

# A list's shape: (customer-scoped, status, type, subscription, customer filter, types, issued only,
# without the drafts discarded unissued).
_Shape = tuple[bool, bool, bool, bool, bool, tuple[str, ...] | None, bool, bool]


def _shape(scope: Scope, f: DocumentFilters) -> tuple[_Shape, dict[str, Any]] | None:
    if f.period_start_gte or f.period_start_lt or f.created_gte or f.created_lt:
        return None
    shape: _Shape = (
        scope.customer_id is not None,
        f.status is not None,
        f.type is not None,
        f.subscription_id is not None,
        f.customer_id is not None,
        None if f.types is None else tuple(x.value for x in f.types),
        f.issued_only,
        (f.issued_only or not f.discarded) and f.status in (None, DocumentStatus.VOID),
    )
    params = {
        "org": scope.organization_id,
        "scope_customer": scope.customer_id,
        "status": None if f.status is None else f.status.value,
        "type": None if f.type is None else f.type.value,
        "subscription": f.subscription_id,
        "customer": f.customer_id,
    }
    return shape, params


def _ids(shape: _Shape) -> Select[Any]:
    """`documents._filtered_ids` with a bound parameter per value."""
    scoped, status, type_, subscription, customer, types, issued_only, hide_discarded = shape
    query = select(_D.id).where(_D.organization_id == _p("org", t.Id))
    if scoped:
        query = query.where(_D.customer_id == _p("scope_customer", t.Id))
    if status:
        query = query.where(_D.status == _p("status", _D.status.type))
    if type_:
        query = query.where(_D.type == _p("type", _D.type.type))
    if types is not None:
        query = query.where(_D.type.in_([_p(f"types_{i}", _D.type.type, v) for i, v in enumerate(types)]))
    if issued_only:
        query = query.where(_D.status != _DRAFT)
    if hide_discarded:  # `document_blocks.without_discarded`
        x = t.documents.alias("discarded")
        found = select(x.c.id).where(
            x.c.organization_id == _p("org", t.Id),
            x.c.status == literal_column("'void'"),
            x.c.sequence.is_(None),
        )
        query = query.where(_D.id.not_in(found))
    if customer:
        query = query.where(_D.customer_id == _p("customer", t.Id))
    if subscription:
        query = query.where(_D.subscription_id == _p("subscription", t.Id))
    return query


def _cursor_page(key: tuple[_Shape, str]) -> Select[Any]:
    shape, direction = key
    query = _ids(shape).add_columns(_D.revision)
    if direction == "before":
        query = query.where(_D.id > _p("cursor", t.Id)).order_by(_D.id.asc())
    else:
        if direction == "after":
            query = query.where(_D.id < _p("cursor", t.Id))
        query = query.order_by(_D.id.desc())
    return query.limit(_p("limit", t.Id))


_CURSOR_PAGES = Shapes(_cursor_page)


def page_stamps(
    conn: Connection,
    scope: Scope,
    f: DocumentFilters,
    limit: int,
    starting_after: int | None,
    ending_before: int | None,
) -> tuple[list[tuple[int, int]], bool] | None:
    """`documents.page_document_stamps` (cursor pagination, newest first), or None."""
    found = _shape(scope, f)
    if found is None:
        return None
    shape, params = found
    direction = "before" if ending_before is not None else "after" if starting_after is not None else "first"
    cursor = ending_before if ending_before is not None else starting_after
    rows = _CURSOR_PAGES[shape, direction].rows(conn, {**params, "cursor": cursor, "limit": limit + 1})
    page = [(int(r[0]), int(r[1])) for r in rows[:limit]]
    if direction == "before":
        page.reverse()
    return page, len(rows) > limit


def _offset_page(key: tuple[_Shape, bool]) -> Select[Any]:
    shape, newest_first = key
    order = _D.id.desc() if newest_first else _D.id.asc()
    query = _ids(shape).add_columns(_D.revision).order_by(order)
    return query.offset(_p("offset", t.Id)).limit(_p("limit", t.Id))


_OFFSET_PAGES = Shapes(_offset_page)


def offset_stamps(
    conn: Connection, scope: Scope, f: DocumentFilters, *, offset: int, limit: int, newest_first: bool
) -> list[tuple[int, int]] | None:
    """`limit` (id, stamp) after skipping `offset`, from the newest or the oldest end, in that order;
    or None."""
    found = _shape(scope, f)
    if found is None:
        return None
    shape, params = found
    rows = _OFFSET_PAGES[shape, newest_first].rows(conn, {**params, "offset": offset, "limit": limit})
    return [(int(r[0]), int(r[1])) for r in rows]


def _stamp(scoped: bool) -> Select[Any]:
    query = select(_D.revision).where(_D.organization_id == _p("org", t.Id), _D.id == _p("id", t.Id))
    if scoped:
        query = query.where(_D.customer_id == _p("scope_customer", t.Id))
    return query


_STAMPS = Shapes(_stamp)


def stamp(conn: Connection, scope: Scope, document_id: int) -> int | None:
    """`documents.document_stamp`."""
    params = {"org": scope.organization_id, "id": document_id, "scope_customer": scope.customer_id}
    rows = _STAMPS[scope.customer_id is not None].rows(conn, params)
    return None if not rows else int(rows[0][0])
