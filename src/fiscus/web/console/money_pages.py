"""A payment (its attempt, captures, refunds and gateway references), the refunds list (filters, keyset
pages, totals of the filtered set per currency, streamed CSV) and the webhook deliveries list. Reads only,
through `queries/console_money.py`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from fastapi import Response
from fastapi.responses import StreamingResponse

from fiscus.domain.money import currency, from_minor
from fiscus.queries import console_money as cm
from fiscus.queries.documents import audit_events
from fiscus.queries.scope import Scope
from fiscus.web.console import auth
from fiscus.web.console.lists import PAGE, _after_id, _link
from fiscus.web.console.routing import Ctx, org_page

REFUND_STATUSES = ("pending", "succeeded", "failed")
DELIVERY_STATUSES = ("pending", "succeeded", "failed")
REFUND_CSV = ("id", "attempt_id", "document_id", "currency", "amount", "status", "provider_refund_id",
              "credit_note_id", "reason", "created_at", "settled_at")  # fmt: skip


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
    with ctx.c.db.read() as conn:
        page = cm.refunds(
            conn, ctx.org, status=status, document_id=document_id, limit=PAGE, after=_after_id(ctx)
        )
        totals = cm.refund_totals(conn, ctx.org, status=status, document_id=document_id)
    return ctx.page(
        "console/refunds.html",
        {
            "title": "Refunds",
            "params": filters,
            "rows": page.rows,
            "totals": totals,
            "statuses": REFUND_STATUSES,
            "csv_link": _link(filters),
            "next_link": _link(filters, after=str(page.next_after)) if page.next_after else None,
        },
    )


@org_page("/refunds.csv")
def refunds_csv(ctx: Ctx) -> Response:
    """The filtered refunds as CSV, streamed in batches (amounts in major units)."""
    status, document_id, _ = _refund_filters(ctx)

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(REFUND_CSV)
        for r in cm.stream_refunds(ctx.c.db, ctx.org, status=status, document_id=document_id):
            reason = r["reason"] or ""
            writer.writerow(
                [
                    r["id"], r["attempt_id"], r["document_id"], r["currency"],
                    from_minor(r["amount_minor"], currency(r["currency"])), r["status"],
                    r["provider_refund_id"] or "", r["credit_note_id"] or "",
                    f"'{reason}" if reason[:1] in ("=", "+", "-", "@", "\t", "\r") else reason,
                    r["created_at"].isoformat(), r["settled_at"].isoformat() if r["settled_at"] else "",
                ]
            )  # fmt: skip
            if buffer.tell() > 16_384:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    headers = {**auth.headers(), "Content-Disposition": f'attachment; filename="refunds-{ctx.org}.csv"'}
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers=headers)


@org_page("/webhook-deliveries")
def deliveries(ctx: Ctx) -> Response:
    qp = ctx.request.query_params
    status = qp.get("status", "")
    status = status if status in DELIVERY_STATUSES else ""
    event_type, endpoint = qp.get("event_type", "")[:64], qp.get("endpoint", "")[:19]
    with ctx.c.db.read() as conn:
        page = cm.deliveries(
            conn,
            ctx.org,
            status=status or None,
            event_type=event_type or None,
            endpoint_id=_id(endpoint),
            limit=PAGE,
            after=_after_id(ctx),
        )
    filters = {"status": status, "event_type": event_type, "endpoint": endpoint}
    return ctx.page(
        "console/deliveries.html",
        {
            "title": "Webhook deliveries",
            "params": filters,
            "rows": page.rows,
            "statuses": DELIVERY_STATUSES,
            "next_link": _link(filters, after=str(page.next_after)) if page.next_after else None,
        },
    )
