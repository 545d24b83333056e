"""EN 16931 e-invoices of issued documents as XML: UBL 2.1 and the Factur-X CII, for the organisation
or the customer the document is for (the PDF route's rules)."""

from __future__ import annotations

from typing import Any, Final

from fastapi import Response

from fiscus.api.deps import ContainerDep, ScopeDep
from fiscus.api.routes.common import router
from fiscus.api.schemas import Id
from fiscus.services.einvoices import Syntax, einvoice_xml

api = router("documents")

_XML: Final = "application/xml"
_WHY_409: Final = (
    "`not_e_invoiceable`: a draft, a proforma, or a currency EN 16931 cannot state exactly (more than two "
    "decimals); `e_invoicing_disabled`: the organisation does not issue e-invoices"
)


def _responses(what: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"description": what, "content": {_XML: {"schema": {"type": "string"}}}},
        404: {"description": "No such document for this credential (another tenant's id included)"},
        409: {"description": _WHY_409},
    }


def _xml(body: bytes, document_id: int, suffix: str) -> Response:
    return Response(
        body,
        media_type=_XML,
        headers={
            "Content-Disposition": f'inline; filename="{document_id}{suffix}.xml"',
            "Cache-Control": "private, max-age=3600",
        },
    )


@api.get(
    "/documents/{document_id}/ubl",
    summary="The document as a UBL 2.1 e-invoice",
    description=(
        "An issued invoice as a UBL 2.1 `Invoice`, a credit note as a `CreditNote`: EN 16931, the base "
        "syntax of Peppol BIS and XRechnung (CIUS-neutral: `CustomizationID` is `urn:cen.eu:en16931:2017`). "
        "The same figures as the PDF, the API and the Factur-X CII, to the minor unit. Organisation keys "
        "see their organisation's documents, customer tokens their customer's."
    ),
    response_class=Response,
    responses=_responses("The UBL 2.1 XML"),
)
def document_ubl(document_id: Id, c: ContainerDep, scope: ScopeDep) -> Response:
    return _xml(einvoice_xml(c.db, scope, document_id, Syntax.UBL), document_id, ".ubl")


@api.get(
    "/documents/{document_id}/cii",
    summary="The document as a Factur-X (UN/CEFACT CII) e-invoice",
    description=(
        "The EN 16931 CII XML (Factur-X profile EN 16931) that the document's PDF/A-3 embeds, on its own. "
        "Same rules as the UBL route."
    ),
    response_class=Response,
    responses=_responses("The CII XML"),
)
def document_cii(document_id: Id, c: ContainerDep, scope: ScopeDep) -> Response:
    return _xml(einvoice_xml(c.db, scope, document_id, Syntax.CII), document_id, ".cii")
