"""The customer's documents (invoices, proformas, credit notes) with status and amount due, one
document with its PDF (and e-invoice XML where the organisation issues them) and a link to pay it on
the hosted payment page, and the customer's payments and refunds. Reads only, through the read model
scoped to the session's customer: another customer's id is simply not found."""

from __future__ import annotations

from typing import Any

from babel.dates import format_date
from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.pdf.renderer import shared_renderer
from fiscus.api.links import public_base
from fiscus.documents.view_model import build_view_model
from fiscus.domain.documents import DocumentStatus
from fiscus.domain.errors import InvalidStateError, NotFoundError
from fiscus.domain.money import currency
from fiscus.queries.documents import DocumentFilters, DocumentView, get_document, page_documents
from fiscus.queries.pagination import cursor_rows
from fiscus.queries.payment_page import number_and_status
from fiscus.queries.payments import attempt_money
from fiscus.queries.scope import Scope
from fiscus.services.einvoices import Syntax, einvoice_xml
from fiscus.services.payment_links import has_hosted_page, link_secret, payment_path
from fiscus.services.rendering import document_links, documents_dir, ensure_pdf, frozen_logo, pdf_filename
from fiscus.web.portal import paging
from fiscus.web.portal.common import Page, ident, problem, signed_in

router = APIRouter(include_in_schema=False)


def _scope(page: Page) -> Scope:
    return Scope(page.session.organization_id, page.session.customer_id)


def _pay_path(page: Page, doc: DocumentView) -> str | None:
    if doc.amount_due_minor <= 0 or not has_hosted_page(doc.type, doc.status):
        return None
    c = page.c
    return payment_path(link_secret(c.db, c.clock, c.settings.secret_key), doc.organization_id, doc.id)


def _row(page: Page, doc: DocumentView, numbers: dict[int, str | None]) -> dict[str, Any]:
    t_ = page.t
    successor = doc.replaced_by_id
    return {
        "id": doc.id,
        "type": t_[doc.type.value],
        "number": doc.number or "",
        "date": format_date(doc.issue_date, "medium", locale=page.locale) if doc.issue_date else "",
        "status": doc.status.value,
        "status_label": t_.get(f"status_{doc.status.value}", doc.status.value),
        "total": page.money(doc.total_minor, doc.currency),
        "due": page.money(doc.amount_due_minor, doc.currency) if doc.amount_due_minor > 0 else "",
        "pay": _pay_path(page, doc),
        "replaced_by": successor,
        "replaced_label": t_["replaced_by"].format(number=numbers.get(successor) or "") if successor else "",
    }


@router.get("/portal/{slug}")
def documents(slug: str, request: Request) -> Response:
    page = signed_in(request, slug)
    if isinstance(page, Response):
        return page
    cursor = paging.cursor_of(request)
    with page.c.db.read() as conn:
        docs, more = page_documents(
            conn,
            _scope(page),
            DocumentFilters(issued_only=True),
            limit=paging.PAGE_SIZE,
            starting_after=cursor.after,
            ending_before=cursor.before,
        )
        numbers: dict[int, str | None] = {d.id: d.number for d in docs}
        for successor in {d.replaced_by_id for d in docs if d.replaced_by_id} - numbers.keys():
            numbers[successor] = number_and_status(conn, page.session.organization_id, successor)[0]
    rows = [_row(page, d, numbers) for d in docs]
    pages = paging.pager(page.base, [d.id for d in docs], more, cursor)
    done = page.t.get(f"done_{request.query_params.get('done', '')}", "")
    return page.render(
        "documents.html",
        {
            "title": page.t["documents_heading"],
            "section": "documents",
            "rows": rows,
            "pages": pages,
            "pages_label": page.t["pages"],
            "done": done,
        },
    )


def _document(page: Page, raw_id: str) -> DocumentView | None:
    document_id = ident(raw_id)
    if document_id is None:
        return None
    try:
        with page.c.db.read() as conn:
            doc = get_document(conn, _scope(page), document_id)
    except NotFoundError:
        return None
    return None if doc.status is DocumentStatus.DRAFT or doc.number is None else doc


@router.get("/portal/{slug}/documents/{document_id}")
def document(slug: str, document_id: str, request: Request) -> Response:
    page = signed_in(request, slug)
    if isinstance(page, Response):
        return page
    doc = _document(page, document_id)
    if doc is None:
        return problem(page, "not_found_heading", "not_found_text", status=404)
    with page.c.db.read() as conn:
        logo = frozen_logo(conn, doc.seller.get("logo_sha256"))
    vm = build_view_model(doc, locale=str(page.locale), logo=logo)
    pay = _pay_path(page, doc)
    context = {
        "title": f"{vm['document']['title']} {vm['document']['number']}",
        "section": "documents",
        "vm": vm,
        "status": doc.status.value,
        "pay": pay,
        "pay_text": page.t["pay_now"].format(amount=page.money(doc.amount_due_minor, doc.currency)),
        "pdf_url": f"{page.base}/documents/{doc.id}/pdf",
        "xml": page.brand.facturx and doc.type.value != "proforma",
    }
    return page.render("document.html", context)


@router.get("/portal/{slug}/documents/{document_id}/pdf")
def document_pdf(slug: str, document_id: str, request: Request) -> Response:
    """The same stored PDF the API serves (`GET /api/v1/documents/{id}/pdf`), as `<number>.pdf`."""
    page = signed_in(request, slug)
    if isinstance(page, Response):
        return page
    doc = _document(page, document_id)
    if doc is None:
        return problem(page, "not_found_heading", "not_found_text", status=404)
    c = page.c
    links = document_links(c.db, c.clock, public_base(request), c.settings.secret_key)
    path = ensure_pdf(
        c.db, c.clock, shared_renderer(), documents_dir(), doc.organization_id, doc.id, links=links
    )
    return FileResponse(
        path,
        media_type="application/pdf",
        filename=pdf_filename(doc.number, doc.id),
        content_disposition_type="attachment",
        headers={"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer"},
    )


@router.get("/portal/{slug}/documents/{document_id}/{syntax}.xml")
def document_xml(slug: str, document_id: str, syntax: str, request: Request) -> Response:
    """The EN 16931 e-invoice (UBL or CII), where the organisation issues them."""
    page = signed_in(request, slug)
    if isinstance(page, Response):
        return page
    if syntax not in ("ubl", "cii") or _document(page, document_id) is None:
        return problem(page, "not_found_heading", "not_found_text", status=404)
    try:
        xml = einvoice_xml(page.c.db, _scope(page), int(document_id), Syntax(syntax))
    except (NotFoundError, InvalidStateError):
        return problem(page, "not_found_heading", "not_found_text", status=404)
    return Response(
        xml,
        media_type="application/xml",
        headers={
            "Content-Disposition": f'attachment; filename="{document_id}-{syntax}.xml"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/portal/{slug}/payments")
def payments(slug: str, request: Request) -> Response:
    """Every card payment attempt and every refund of the customer, newest first."""
    page = signed_in(request, slug)
    if isinstance(page, Response):
        return page
    pa, pr, d = t.payment_attempts.c, t.payment_refunds.c, t.documents.c
    s = page.session
    at, rc = paging.cursor_of(request), paging.cursor_of(request, "refunds_")
    with page.c.db.read() as conn:
        found, more_attempts = cursor_rows(
            conn,
            select(t.payment_attempts, d.number)
            .join(t.documents, d.id == pa.document_id)
            .where(pa.organization_id == s.organization_id, pa.customer_id == s.customer_id),
            t.payment_attempts,
            limit=paging.PAGE_SIZE,
            starting_after=at.after,
            ending_before=at.before,
        )
        attempts = [dict(r._mapping) for r in found]
        money = attempt_money(conn, attempts)
        refunds, more_refunds = cursor_rows(
            conn,
            select(pr.id, pr.amount_minor, pr.status, pr.created_at, pr.settled_at, pa.currency, d.number)
            .join(t.payment_attempts, pa.id == pr.attempt_id)
            .join(t.documents, d.id == pr.document_id)
            .where(pr.organization_id == s.organization_id, pa.customer_id == s.customer_id),
            t.payment_refunds,
            limit=paging.PAGE_SIZE,
            starting_after=rc.after,
            ending_before=rc.before,
        )
    path = f"{page.base}/payments"

    def when(moment: Any) -> str:
        return format_date(moment, "medium", locale=page.locale) if moment else ""

    attempt_rows = []
    for a in attempts:
        m = money[a["id"]]
        card = ""
        if m.card and m.card[1]:
            card = page.t["card_ending"].format(
                brand=str(m.card[0] or "").replace("_", " ").title(), last4=m.card[1]
            )
        attempt_rows.append(
            {
                "date": when(a["settled_at"] or a["created_at"]),
                "document": a["number"] or "",
                "document_id": a["document_id"],
                "amount": page.money(a["amount_minor"], currency(a["currency"])),
                "status": page.t.get(f"attempt_{a['status']}", a["status"]),
                "card": card,
            }
        )
    refund_rows = [
        {
            "date": when(r.settled_at or r.created_at),
            "document": r.number or "",
            "amount": page.money(r.amount_minor, currency(r.currency)),
            "status": page.t.get(f"refund_{r.status}", r.status),
        }
        for r in refunds
    ]
    context = {
        "title": page.t["payments_heading"],
        "section": "payments",
        "attempts": attempt_rows,
        "refunds": refund_rows,
        "attempt_pages": paging.pager(path, [a["id"] for a in attempts], more_attempts, at),
        "refund_pages": paging.pager(path, [r.id for r in refunds], more_refunds, rc, "refunds_"),
        "pages_label": page.t["pages"],
    }
    return page.render("payments.html", context)
