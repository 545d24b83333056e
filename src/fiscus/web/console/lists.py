"""List pages: documents (filters, search, sort, keyset pages, totals per currency, streamed CSV),
customers, subscriptions, payment attempts and audit events, each sortable on every column (`?sort=`,
keyset pages consistent with the order). They read through `queries/console_*`."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import Response
from fastapi.responses import StreamingResponse
from sqlalchemy import Connection

from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.money import currency, from_minor
from fiscus.queries import console_documents as cd
from fiscus.queries import console_lists as cl
from fiscus.queries.console_sort import KeyPage, Sort, SortColumn, parse_sort
from fiscus.web.console import auth
from fiscus.web.console.routing import Ctx, org_page

PAGE = 50
CSV_COLUMNS = (
    "id", "type", "status", "number", "customer_id", "customer_name", "currency", "total", "amount_due",
    "issue_date", "due_date", "created_at",
)  # fmt: skip
FILTER_KEYS = ("status", "type", "customer", "currency", "from", "to", "overdue", "q", "sort")


def _params(ctx: Ctx) -> dict[str, str]:
    return {k: v[:100] for k, v in ctx.request.query_params.items() if k in (*FILTER_KEYS, "after")}


def _link(params: dict[str, str], **changes: str | None) -> str:
    merged = {**params, **changes}
    return "?" + urlencode({k: v for k, v in merged.items() if v})


@org_page("/documents")
def documents(ctx: Ctx) -> Response:
    params = _params(ctx)
    error: InvalidFieldError | None = None
    today = ctx.c.clock.now().date()
    try:
        q = cd.parse_query(ctx.org, params, today)
        with ctx.c.db.read() as conn:
            result = cd.page(conn, q, limit=PAGE, after=params.get("after") or None)
    except InvalidFieldError as exc:
        error, q, result = exc, cd.DocumentQuery(ctx.org), cd.Page([], None)
    filters = {k: v for k, v in params.items() if k != "after"}
    headers = sorting({k: v for k, v in filters.items() if k != "sort"}, Sort(q.sort, q.descending))

    return ctx.page(
        "console/documents.html",
        {
            "title": "Documents",
            "q": q,
            "params": filters,
            "rows": result.rows,
            "totals_link": f"/console/{ctx.org}/document-totals" + _link(filters),
            "error": error,
            "next_link": _link(filters, after=result.next_cursor) if result.next_cursor else None,
            "first_link": _link(filters) if params.get("after") else None,
            "csv_link": f"/console/{ctx.org}/documents.csv" + _link(filters),
            **headers,
            "statuses": cd.STATUSES,
            "types": cd.TYPES,
        },
        status=422 if error else 200,
    )


@org_page("/document-totals")
def documents_totals(ctx: Ctx) -> Response:
    """The totals of the filtered set: an aggregate over every matching row, so the list page loads
    them afterwards (htmx, or this page through a link without JS) and shows its rows at once."""
    try:
        q = cd.parse_query(ctx.org, _params(ctx), ctx.c.clock.now().date())
    except InvalidFieldError:
        return documents(ctx)
    with ctx.c.db.read() as conn:
        totals = cd.totals(conn, q)
    fragment = ctx.request.headers.get("HX-Request") == "true"
    template = "console/totals.html" if fragment else "console/totals_page.html"
    return ctx.page(
        template,
        {
            "title": "Totals",
            "receivables": totals,
            "back": f"/console/{ctx.org}/documents"
            + _link({k: v for k, v in _params(ctx).items() if k != "after"}),
        },
    )


@org_page("/documents.csv")
def documents_csv(ctx: Ctx) -> Response:
    """The filtered set as CSV, streamed in batches (amounts in major units, dot decimals)."""
    try:
        q = cd.parse_query(ctx.org, _params(ctx), ctx.c.clock.now().date())
    except InvalidFieldError:
        return documents(ctx)  # the list page with the field's error

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for r in cd.stream(ctx.c.db, q):
            cur = currency(r["currency"])
            writer.writerow(
                [
                    r["id"], r["type"], r["status"], r["number"] or "", r["customer_id"],
                    _cell(r["customer_name"]), r["currency"], from_minor(r["total_minor"], cur),
                    from_minor(r["amount_due_minor"], cur), r["issue_date"] or "", r["due_date"] or "",
                    r["created_at"].isoformat(),
                ]
            )  # fmt: skip
            if buffer.tell() > 16_384:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    headers = {**auth.headers(), "Content-Disposition": f'attachment; filename="documents-{ctx.org}.csv"'}
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers=headers)


def _cell(text: str) -> str:
    """A text cell a spreadsheet will not run as a formula (CSV injection)."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def sorting(filters: dict[str, str], sort: Sort) -> dict[str, Any]:
    """The template's sortable headers: a link per column (the other direction when it is the current
    sort, else descending) and its `aria-sort` state; filters kept, back to the first page."""
    current = sort.param

    def sort_link(column: str) -> str:
        return _link(filters, sort=column if current == f"-{column}" else f"-{column}", after=None)

    def sort_state(column: str) -> str:
        return "descending" if current == f"-{column}" else "ascending" if current == column else "none"

    return {"sort_link": sort_link, "sort_state": sort_state}


Fetch = Callable[[Connection, Sort, str | None], KeyPage]


def sorted_list(
    ctx: Ctx,
    template: str,
    title: str,
    filters: dict[str, str],
    columns: Mapping[str, SortColumn],
    fetch: Fetch,
    extra: Callable[[Connection], dict[str, Any]] | None = None,
) -> Response:
    """A list page sorted by `?sort=` on any of `columns` with `?after=` cursor pages; a bad sort or
    cursor is shown as the field's error (422) over an empty list."""
    qp = ctx.request.query_params
    after = qp.get("after", "")[:300] or None
    error: InvalidFieldError | None = None
    more: dict[str, Any] = {}
    sort = cl.NEWEST
    with ctx.c.db.read() as conn:
        try:
            sort = parse_sort(qp.get("sort", "")[:40] or None, columns)
            result = fetch(conn, sort, after)
        except InvalidFieldError as exc:
            error, result = exc, KeyPage([], None)
        more = extra(conn) if extra else {}
    keep = {**filters, "sort": "" if sort == cl.NEWEST else sort.param}
    context = {
        "title": title,
        "params": filters,
        "rows": result.rows,
        "error": error,
        "next_link": _link(keep, after=result.next_cursor) if result.next_cursor else None,
        "first_link": _link(keep) if after else None,
        **sorting(filters, sort),
        **more,
    }
    return ctx.page(template, context, status=422 if error else 200)


def _id(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 19 else None


@org_page("/customers")
def customers(ctx: Ctx) -> Response:
    qp = ctx.request.query_params
    search, cur = qp.get("q", "")[:100], qp.get("currency", "").upper()[:3]

    def fetch(conn: Connection, sort: Sort, after: str | None) -> KeyPage:
        return cl.customers(
            conn, ctx.org, search=search or None, currency=cur or None, limit=PAGE, after=after, sort=sort
        )

    filters = {"q": search, "currency": cur}
    return sorted_list(ctx, "console/customers.html", "Customers", filters, cl.CUSTOMER_SORTS, fetch)


@org_page("/subscriptions")
def subscriptions(ctx: Ctx) -> Response:
    qp = ctx.request.query_params
    status, search = qp.get("status", "")[:20], qp.get("q", "")[:100]
    customer = qp.get("customer", "")[:19]

    def fetch(conn: Connection, sort: Sort, after: str | None) -> KeyPage:
        return cl.subscriptions(
            conn, ctx.org, status=status or None, customer_id=_id(customer), search=search or None,
            limit=PAGE, after=after, sort=sort,
        )  # fmt: skip

    filters = {"status": status, "q": search, "customer": customer}
    return sorted_list(
        ctx, "console/subscriptions.html", "Subscriptions", filters, cl.SUBSCRIPTION_SORTS, fetch
    )


@org_page("/payments")
def payments(ctx: Ctx) -> Response:
    qp = ctx.request.query_params
    status, document = qp.get("status", "")[:20], qp.get("document", "")[:19]

    def fetch(conn: Connection, sort: Sort, after: str | None) -> KeyPage:
        return cl.payments(
            conn,
            ctx.org,
            status=status or None,
            document_id=_id(document),
            limit=PAGE,
            after=after,
            sort=sort,
        )

    filters = {"status": status, "document": document}
    return sorted_list(ctx, "console/payments.html", "Payments", filters, cl.PAYMENT_SORTS, fetch)


@org_page("/audit")
def audit(ctx: Ctx) -> Response:
    qp = ctx.request.query_params
    entity, who = qp.get("entity", "")[:32], qp.get("actor", "")[:100]

    def fetch(conn: Connection, sort: Sort, after: str | None) -> KeyPage:
        return cl.audit(
            conn, ctx.org, entity_type=entity or None, actor=who or None, limit=PAGE, after=after, sort=sort
        )

    filters = {"entity": entity, "actor": who}
    return sorted_list(ctx, "console/audit.html", "Audit events", filters, cl.AUDIT_SORTS, fetch)
