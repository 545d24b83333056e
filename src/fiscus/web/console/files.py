"""A document's files in the console: the PDF (shown inline on the document page, in a same-origin
frame) and the EN 16931 XML (UBL or CII) as a download. The same services as the API's file routes
(`services/rendering.py`, `services/einvoices.py`), for the organisation of the URL."""

from __future__ import annotations

from typing import Final

from fastapi import Response
from fastapi.responses import FileResponse

from fiscus.adapters.pdf.renderer import shared_renderer
from fiscus.documents.einvoice import NotEInvoiceableError
from fiscus.domain.errors import NotFoundError
from fiscus.queries.documents import document_exists
from fiscus.queries.scope import Scope
from fiscus.services.einvoices import EInvoicingDisabledError, Syntax, einvoice_xml
from fiscus.services.rendering import (
    document_links,
    document_number,
    documents_dir,
    draft_preview,
    ensure_pdf,
    pdf_filename,
)
from fiscus.web.console.routing import Ctx, org_page

FRAMED: Final = {
    "Cache-Control": "private, no-store",
    "X-Content-Type-Options": "nosniff",
    # Only the console's own document page may frame it.
    "X-Frame-Options": "SAMEORIGIN",
    "Content-Security-Policy": "frame-ancestors 'self'",
    "Referrer-Policy": "no-referrer",
}


@org_page("/documents/{document_id}/pdf")
def document_pdf(ctx: Ctx, document_id: int) -> Response:
    """The stored PDF of an issued document (rendered once), a draft's preview rendered now."""
    scope = Scope(ctx.org)
    c = ctx.c
    with c.db.read() as conn:
        if not document_exists(conn, scope, document_id):
            raise NotFoundError("document", document_id)
        number = document_number(conn, ctx.org, document_id)
    base = c.settings.public_url or str(ctx.request.base_url).rstrip("/")
    links = document_links(c.db, c.clock, base.rstrip("/"), c.settings.secret_key)
    preview = draft_preview(c.db, shared_renderer(), ctx.org, document_id, links=links)
    if preview is not None:
        disposition = f'inline; filename="{document_id}-draft.pdf"'
        return Response(
            preview, media_type="application/pdf", headers={**FRAMED, "Content-Disposition": disposition}
        )
    path = ensure_pdf(c.db, c.clock, shared_renderer(), documents_dir(), ctx.org, document_id, links=links)
    return FileResponse(
        path,
        media_type="application/pdf",
        filename=pdf_filename(number, document_id),
        content_disposition_type="inline",
        headers=FRAMED,
    )


@org_page("/documents/{document_id}/xml/{syntax}")
def document_xml(ctx: Ctx, document_id: int, syntax: str) -> Response:
    """The e-invoice as a download; 404 for an unknown syntax, a message page when the organisation
    does not issue e-invoices or the document has none (a draft, a proforma)."""
    if syntax not in (Syntax.UBL.value, Syntax.CII.value):
        raise NotFoundError("page", ctx.request.url.path)
    try:
        body = einvoice_xml(ctx.c.db, Scope(ctx.org), document_id, Syntax(syntax))
    except (EInvoicingDisabledError, NotEInvoiceableError) as exc:
        return ctx.page("console/message.html", {"title": "409", "message": str(exc)}, status=409)
    return Response(
        body,
        media_type="application/xml",
        headers={
            **FRAMED,
            "Content-Disposition": f'attachment; filename="{document_id}.{syntax}.xml"',
        },
    )
