"""A payment (its attempt, captures, refunds and gateway references), the refunds list (filters, keyset
pages, totals of the filtered set per currency, streamed CSV) and the webhook deliveries list. Reads only,
through `queries/console_money.py`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from fastapi import Response
from fastapi.responses import StreamingResponse
from sqlalchemy import Connection

from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.money import currency, from_minor
from fiscus.queries import console_money as cm
from fiscus.queries.console_lists import NEWEST
from fiscus.queries.console_sort import KeyPage, Sort, parse_sort
from fiscus.queries.documents import audit_events
from fiscus.queries.scope import Scope
from fiscus.web.console import auth
from fiscus.web.console.lists import PAGE, _cell, _link, sorted_list
from fiscus.web.console.routing import Ctx, org_page

REFUND_STATUSES = ("pending", "succeeded", "failed")
DELIVERY_STATUSES = ("pending", "succeeded", "failed")
REFUND_CSV = ("id", "attempt_id", "document_id", "currency", "amount", "status", "provider_refund_id",
              "credit_note_id", "reason", "created_at", "settled_at")  # fmt: skip
DELIVERY_CSV = ("id", "endpoint_id", "url", "event_type", "event_id", "status", "attempts", "last_attempt_at",
                "next_attempt_at", "created_at")  # fmt: skip


def _id(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 19 else None


@org_page("/payments/{attempt_id}")
def payment(ctx: Ctx, attempt_id: int) -> Response:
    with ctx.c.db.read() as conn:
        data = cm.payment(conn, ctx.org, attempt_id)
        events = audit_events(conn, Scope(ctx.org), "payment_attempt", attempt_id)
    return ctx.page("console/payment.html", {"title": f"#{attempt_id}", **data, "events": events})


def _refund_filters(ctx: Ctx) -> tuple[str | None, int | None, dict[str, str]]:
    qp = ctx.request.query_params
    status = qp.get("status", "")
    status = status if status in REFUND_STATUSES else ""
    document = qp.get("document", "")[:19]
    return status or None, _id(document), {"status": status, "document": document}


@org_page("/refunds")
def refunds(ctx: Ctx) -> Response:
    status, document_id, filters = _refund_filters(ctx)

    def fetch(conn: Connection, sort: Sort, after: str | None) -> KeyPage:
        return cm.refunds(
            conn, ctx.org, status=status, document_id=document_id, limit=PAGE, after=after, sort=sort
        )

    def totals(conn: Connection) -> dict[str, Any]:
        return {
            "totals": cm.refund_totals(conn, ctx.org, status=status, document_id=document_id),
            "statuses": REFUND_STATUSES,
            "csv_link": _link({**filters, "sort": _sort_param(ctx)}),
        }

    return sorted_list(ctx, "console/refunds.html", "Refunds", filters, cm.REFUND_SORTS, fetch, totals)


def _sort_param(ctx: Ctx) -> str:
    return ctx.request.query_params.get("sort", "")[:40]


def _csv_sort(ctx: Ctx, columns: Any) -> Sort:
    try:
        return parse_sort(_sort_param(ctx) or None, columns)
    except InvalidFieldError:
        return NEWEST


def _stream(header: tuple[str, ...], lines: Iterator[list[object]], filename: str) -> Response:
    """A CSV answer written in ~16 KiB chunks as the rows are read (never the whole set in memory)."""

    def chunks() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        for line in lines:
            writer.writerow(line)
            if buffer.tell() > 16_384:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    headers = {**auth.headers(), "Content-Disposition": f'attachment; filename="{filename}"'}
    return StreamingResponse(chunks(), media_type="text/csv; charset=utf-8", headers=headers)


@org_page("/refunds.csv")
def refunds_csv(ctx: Ctx) -> Response:
    """The filtered refunds as CSV in the list's order, streamed in batches (amounts in major units)."""
    status, document_id, _ = _refund_filters(ctx)
    sort = _csv_sort(ctx, cm.REFUND_SORTS)

    def lines() -> Iterator[list[object]]:
        for r in cm.stream_refunds(ctx.c.db, ctx.org, status=status, document_id=document_id, sort=sort):
            yield [
                r["id"], r["attempt_id"], r["document_id"], r["currency"],
                from_minor(r["amount_minor"], currency(r["currency"])), r["status"],
                r["provider_refund_id"] or "", r["credit_note_id"] or "", _cell(r["reason"] or ""),
                r["created_at"].isoformat(), r["settled_at"].isoformat() if r["settled_at"] else "",
            ]  # fmt: skip

    return _stream(REFUND_CSV, lines(), f"refunds-{ctx.org}.csv")


def _delivery_filters(ctx: Ctx) -> tuple[dict[str, Any], dict[str, str]]:
    qp = ctx.request.query_params
    status = qp.get("status", "")
    status = status if status in DELIVERY_STATUSES else ""
    event_type, endpoint = qp.get("event_type", "")[:64], qp.get("endpoint", "")[:19]
    args = {"status": status or None, "event_type": event_type or None, "endpoint_id": _id(endpoint)}
    return args, {"status": status, "event_type": event_type, "endpoint": endpoint}


@org_page("/webhook-deliveries")
def deliveries(ctx: Ctx) -> Response:
    """Deliveries of the organisation's webhooks: filters, sort on every column, keyset pages, the
    count and attempts of the filtered set per status, and its CSV."""
    args, filters = _delivery_filters(ctx)

    def fetch(conn: Connection, sort: Sort, after: str | None) -> KeyPage:
        return cm.deliveries(conn, ctx.org, limit=PAGE, after=after, sort=sort, **args)

    def totals(conn: Connection) -> dict[str, Any]:
        return {
            "totals": cm.delivery_totals(conn, ctx.org, **args),
            "statuses": DELIVERY_STATUSES,
            "csv_link": f"/console/{ctx.org}/webhook-deliveries.csv"
            + _link({**filters, "sort": _sort_param(ctx)}),
        }

    return sorted_list(
        ctx, "console/deliveries.html", "Webhook deliveries", filters, cm.DELIVERY_SORTS, fetch, totals
    )


@org_page("/webhook-deliveries.csv")
def deliveries_csv(ctx: Ctx) -> Response:
    """The filtered deliveries as CSV in the list's order, streamed in batches."""
    args, _ = _delivery_filters(ctx)
    sort = _csv_sort(ctx, cm.DELIVERY_SORTS)

    def lines() -> Iterator[list[object]]:
        for d in cm.stream_deliveries(ctx.c.db, ctx.org, sort=sort, **args):
            yield [
                d["id"], d["endpoint_id"], _cell(d["url"]), d["event_type"], d["event_id"], d["status"],
                d["attempts"], d["last_attempt_at"].isoformat() if d["last_attempt_at"] else "",
                d["next_attempt_at"].isoformat() if d["next_attempt_at"] else "", d["created_at"].isoformat(),
            ]  # fmt: skip

    return _stream(DELIVERY_CSV, lines(), f"webhook-deliveries-{ctx.org}.csv")
