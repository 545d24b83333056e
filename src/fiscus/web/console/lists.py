"""List pages: documents (filters, search, sort, keyset pages, totals per currency, streamed CSV),
customers, subscriptions, payment attempts and audit events. They read through `queries/console_*`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from fastapi import Response
from fastapi.responses import StreamingResponse

from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.money import currency, from_minor
from fiscus.queries import console_documents as cd
from fiscus.queries import console_lists as cl
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


def _after_id(ctx: Ctx) -> int | None:
    value = ctx.request.query_params.get("after", "")
    return int(value) if value.isdigit() and len(value) < 19 else None


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
    sort = params.get("sort") or "-id"

    def sort_link(column: str) -> str:
        return _link(filters, sort=column if sort == f"-{column}" else f"-{column}", after=None)

    def sort_state(column: str) -> str:
        return "descending" if sort == f"-{column}" else "ascending" if sort == column else "none"

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
            "sort_link": sort_link,
            "sort_state": sort_state,
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


@org_page("/customers")
def customers(ctx: Ctx) -> Response:
    qp = ctx.request.query_params
    search, cur = qp.get("q", "")[:100], qp.get("currency", "").upper()[:3]
    with ctx.c.db.read() as conn:
        result = cl.customers(
            conn, ctx.org, search=search or None, currency=cur or None, limit=PAGE, after=_after_id(ctx)
        )
    filters = {"q": search, "currency": cur}
    return ctx.page("console/customers.html", _listing("Customers", filters, result))


@org_page("/subscriptions")
def subscriptions(ctx: Ctx) -> Response:
    qp = ctx.request.query_params
    status, search = qp.get("status", "")[:20], qp.get("q", "")[:100]
    customer = qp.get("customer", "")
    with ctx.c.db.read() as conn:
        result = cl.subscriptions(
            conn,
            ctx.org,
            status=status or None,
            customer_id=int(customer) if customer.isdigit() and len(customer) < 19 else None,
            search=search or None,
            limit=PAGE,
            after=_after_id(ctx),
        )
    filters = {"status": status, "q": search, "customer": customer}
    return ctx.page("console/subscriptions.html", _listing("Subscriptions", filters, result))


@org_page("/payments")
def payments(ctx: Ctx) -> Response:
    qp = ctx.request.query_params
    status, document = qp.get("status", "")[:20], qp.get("document", "")
    with ctx.c.db.read() as conn:
        result = cl.payments(
            conn,
            ctx.org,
            status=status or None,
            document_id=int(document) if document.isdigit() and len(document) < 19 else None,
            limit=PAGE,
            after=_after_id(ctx),
        )
    return ctx.page(
        "console/payments.html", _listing("Payments", {"status": status, "document": document}, result)
    )


@org_page("/audit")
def audit(ctx: Ctx) -> Response:
    qp = ctx.request.query_params
    entity, who = qp.get("entity", "")[:32], qp.get("actor", "")[:100]
    with ctx.c.db.read() as conn:
        result = cl.audit(
            conn, ctx.org, entity_type=entity or None, actor=who or None, limit=PAGE, after=_after_id(ctx)
        )
    return ctx.page("console/audit.html", _listing("Audit events", {"entity": entity, "actor": who}, result))


def _listing(title: str, filters: dict[str, str], result: cl.IdPage) -> dict[str, Any]:
    return {
        "title": title,
        "params": filters,
        "rows": result.rows,
        "next_link": _link(filters, after=str(result.next_after)) if result.next_after else None,
    }
