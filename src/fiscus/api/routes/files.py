"""Rendered files of documents: the PDF, for the organisation or the customer the document is for."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import FileResponse

from fiscus.adapters.pdf.renderer import shared_renderer
from fiscus.api.deps import ContainerDep, ScopeDep
from fiscus.api.links import public_base
from fiscus.api.routes.common import router
from fiscus.api.schemas import Id
from fiscus.domain.errors import NotFoundError
from fiscus.queries.documents import document_exists
from fiscus.services.rendering import document_links, document_number, documents_dir, ensure_pdf, pdf_filename

api = router("documents")


@api.get(
    "/documents/{document_id}/pdf",
    response_class=FileResponse,
    responses={200: {"content": {"application/pdf": {}}, "description": "The document's PDF"}},
)
def document_pdf(document_id: Id, c: ContainerDep, scope: ScopeDep, request: Request) -> Response:
    """The issued document's PDF, rendered once and served as stored. A customer token reaches only
    its own customer's documents; anything else is 404, as if it did not exist."""
    with c.db.read() as conn:
        if not document_exists(conn, scope, document_id):
            raise NotFoundError("document", document_id)
        number = document_number(conn, scope.organization_id, document_id)
    links = document_links(c.db, c.clock, public_base(request), c.settings.secret_key)
    path = ensure_pdf(
        c.db, c.clock, shared_renderer(), documents_dir(), scope.organization_id, document_id, links=links
    )
    return FileResponse(
        path,
        media_type="application/pdf",
        filename=pdf_filename(number, document_id),
        content_disposition_type="inline",
        headers={"Cache-Control": "private, max-age=3600"},
    )
