"""The console's document list: filters, search, sort on a column with a keyset cursor (value, id), the
totals of the filtered set per currency, and the same set in batches for a streamed CSV export.

A page is one query of `limit + 1` rows whatever its depth: the cursor is the last row's sort value and
id, never an OFFSET (`console_sort.keyset_page`; NULL dates sort last ascending). Every column of the
list sorts, each reading an `(organization_id, column, id)` index in order; the customer column is the
buyer's name as the document carries it and the amount due is computed from the row, both indexed as
those expressions (`adapters/db/tables_console_sort.py`, migration 0029).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, Select, and_, case, func, or_, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.rollup_triggers import NO_DATE
from fiscus.adapters.db.tables_console_sort import DOCUMENT_BUYER, DOCUMENT_DUE
from fiscus.adapters.db.tables_rollups import document_sums
from fiscus.domain.errors import InvalidFieldError
from fiscus.queries.console_sort import Sort, SortColumn, keyset_page

_d = t.documents.c
SORT_COLUMNS: Final = {
    "id": SortColumn(_d.id, "int"),
    "created_at": SortColumn(_d.created_at, "datetime"),
    "total_minor": SortColumn(_d.total_minor, "int"),
    "status": SortColumn(_d.status, "str"),
    "type": SortColumn(_d.type, "str"),
    "currency": SortColumn(_d.currency, "str"),
    "customer": SortColumn(DOCUMENT_BUYER, "str", expression=True),
    "issue_date": SortColumn(_d.issue_date, "date", nullable=True),
    "due_date": SortColumn(_d.due_date, "date", nullable=True),
    "amount_due": SortColumn(DOCUMENT_DUE, "int", expression=True),
}
SORTS: Final = tuple(SORT_COLUMNS)
STATUSES: Final = ("draft", "open", "paid", "void", "uncollectible", "converted")
TYPES: Final = ("invoice", "proforma", "credit_note")
BATCH: Final = 500


@dataclass(frozen=True, slots=True)
class DocumentQuery:
    organization_id: int
    status: str | None = None
    type: str | None = None
    customer_id: int | None = None
    currency: str | None = None
    issued_from: date | None = None
    issued_to: date | None = None
    overdue_on: date | None = None
    """Only documents open past their due date as of this day."""
    search: str | None = None
    sort: str = "id"
    descending: bool = True


@dataclass(frozen=True, slots=True)
class Total:
    currency: str
    type: str
    count: int
    total_minor: int
    due_minor: int


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def parse_query(organization_id: int, params: dict[str, str], today: date) -> DocumentQuery:
    """The filters of a list URL's query string; a bad value is a field error (shown by the field)."""

    def pick(name: str, allowed: tuple[str, ...]) -> str | None:
        value = params.get(name) or None
        if value is not None and value not in allowed:
            raise InvalidFieldError(name, f"must be one of {', '.join(allowed)}")
        return value

    def day(name: str) -> date | None:
        value = params.get(name) or None
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise InvalidFieldError(name, "must be a date (YYYY-MM-DD)") from None

    customer = params.get("customer") or None
    if customer is not None and not customer.isdigit():
        raise InvalidFieldError("customer", "must be a customer id")
    cur = (params.get("currency") or "").strip().upper() or None
    if cur is not None and (len(cur) != 3 or not cur.isalpha()):
        raise InvalidFieldError("currency", "must be a three-letter currency code")
    sort = params.get("sort") or "-id"
    if sort.lstrip("-") not in SORTS:
        raise InvalidFieldError("sort", f"must be one of {', '.join(SORTS)} (- for descending)")
    search = (params.get("q") or "").strip()[:100] or None
    return DocumentQuery(
        organization_id,
        status=pick("status", STATUSES),
        type=pick("type", TYPES),
        customer_id=int(customer) if customer else None,
        currency=cur,
        issued_from=day("from"),
        issued_to=day("to"),
        overdue_on=today if params.get("overdue") == "1" else None,
        search=search,
        sort=sort.lstrip("-"),
        descending=sort.startswith("-"),
    )


def _conditions(q: DocumentQuery) -> list[ColumnElement[bool]]:
    d, c = t.documents.c, t.customers.c
    where: list[ColumnElement[bool]] = [d.organization_id == q.organization_id]
    if q.status:
        where.append(d.status == q.status)
    if q.type:
        where.append(d.type == q.type)
    if q.customer_id is not None:
        where.append(d.customer_id == q.customer_id)
    if q.currency:
        where.append(d.currency == q.currency)
    if q.issued_from:
        where.append(d.issue_date >= q.issued_from)
    if q.issued_to:
        where.append(d.issue_date <= q.issued_to)
    if q.overdue_on:
        where += [d.status == "open", d.type != "credit_note", d.due_date < q.overdue_on]
    if q.search:
        like = f"%{q.search.lower()}%"
        customers = select(c.id).where(
            c.organization_id == q.organization_id,
            or_(
                func.lower(c.name).like(like), func.lower(c.email).like(like), func.lower(c.vat_id).like(like)
            ),
        )
        where.append(or_(func.lower(d.number).like(like), d.customer_id.in_(customers)))
    return where


_COLUMNS = [
    t.documents.c.id,
    t.documents.c.type,
    t.documents.c.status,
    t.documents.c.number,
    t.documents.c.currency,
    t.documents.c.total_minor,
    t.documents.c.amount_paid_minor,
    t.documents.c.amount_refunded_minor,
    t.documents.c.amount_credited_minor,
    t.documents.c.issue_date,
    t.documents.c.due_date,
    t.documents.c.created_at,
    t.documents.c.customer_id,
    DOCUMENT_BUYER.label("customer_name"),
    t.customers.c.email.label("customer_email"),
]


def _select(q: DocumentQuery) -> Select[Any]:
    return (
        select(*_COLUMNS)
        .join(t.customers, t.customers.c.id == t.documents.c.customer_id)
        .where(and_(*_conditions(q)))
    )


def page(conn: Connection, q: DocumentQuery, *, limit: int = 50, after: str | None = None) -> Page:
    """One page of the filtered list in the chosen order, and the cursor of the next page."""
    sort = Sort(q.sort, q.descending)
    result = keyset_page(conn, _select(q), t.documents.c.id, SORT_COLUMNS, sort, limit=limit, after=after)
    for row in result.rows:
        row["amount_due_minor"] = _due(row)
    return Page(result.rows, result.next_cursor)


def _due(row: dict[str, Any]) -> int:
    if row["type"] == "credit_note" or row["status"] not in ("open", "uncollectible"):
        return 0
    paid = row["amount_paid_minor"] - row["amount_refunded_minor"]
    return max(0, int(row["total_minor"]) - int(paid) - int(row["amount_credited_minor"]))


def totals(conn: Connection, q: DocumentQuery) -> list[Total]:
    """Count, total and amount due of the whole filtered set per currency and type (never added across
    currencies; credit notes apart from what they correct).

    Filters on status, type, currency, issue dates and overdue read the maintained `document_sums`
    (a row per currency, type, status, issue date and due date: bounded by the days the organisation
    has issued on, not by its documents); a customer or a search aggregates the matching documents
    over the covering `ix_documents_totals`."""
    if q.customer_id is None and q.search is None:
        return _maintained_totals(conn, q)
    d = t.documents.c
    collectable = and_(d.type != "credit_note", d.status.in_(("open", "uncollectible")))
    owed = d.total_minor - d.amount_paid_minor + d.amount_refunded_minor - d.amount_credited_minor
    due_expr = func.sum(case((and_(collectable, owed > 0), owed), else_=0))
    query = (
        select(d.currency, d.type, func.count(), func.sum(d.total_minor), due_expr)
        .where(and_(*_conditions(q)))
        .group_by(d.currency, d.type)
        .order_by(d.currency, d.type)
    )
    return [Total(r[0], r[1], int(r[2]), int(r[3] or 0), max(0, int(r[4] or 0))) for r in conn.execute(query)]


def _maintained_totals(conn: Connection, q: DocumentQuery) -> list[Total]:
    s = document_sums.c
    no_date = date.fromisoformat(NO_DATE)
    where: list[ColumnElement[bool]] = [s.organization_id == q.organization_id]
    if q.status:
        where.append(s.status == q.status)
    if q.type:
        where.append(s.type == q.type)
    if q.currency:
        where.append(s.currency == q.currency)
    if q.issued_from:
        where.append(s.issue_date >= q.issued_from)
    if q.issued_to:
        where += [s.issue_date <= q.issued_to, s.issue_date != no_date]
    if q.overdue_on:
        where += [s.status == "open", s.type != "credit_note", s.due_date < q.overdue_on]
        where.append(s.due_date != no_date)
    query = (
        select(s.currency, s.type, func.sum(s.n), func.sum(s.total_minor), func.sum(s.due_minor))
        .where(*where)
        .group_by(s.currency, s.type)
        .having(func.sum(s.n) != 0)
        .order_by(s.currency, s.type)
    )
    return [Total(r[0], r[1], int(r[2]), int(r[3] or 0), max(0, int(r[4] or 0))) for r in conn.execute(query)]


def stream(db: Database, q: DocumentQuery) -> Iterator[dict[str, Any]]:
    """Every row of the filtered set in the list's order, read in batches (a short read each), so an
    export of any size holds one batch in memory."""
    after: str | None = None
    while True:
        with db.read() as conn:
            batch = page(conn, q, limit=BATCH, after=after)
        yield from batch.rows
        if batch.next_cursor is None:
            return
        after = batch.next_cursor


def with_sort(q: DocumentQuery, sort: str) -> DocumentQuery:
    return replace(q, sort=sort.lstrip("-"), descending=sort.startswith("-"))
