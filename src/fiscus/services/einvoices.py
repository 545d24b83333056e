"""E-invoices on request: the EN 16931 XML (UBL 2.1 or Factur-X CII) of one issued document.

Read-only: nothing is stored, the XML is a pure function of the document's stored figures (the CII the
worker embeds in the PDF is the same bytes). The rules shared by every syntax live here, not in the
routes: the document must be visible to the caller's scope (else NotFoundError, another tenant's id
included), its organisation must issue e-invoices (`facturx_enabled`), and it must be an issued invoice
or credit note (`NotEInvoiceableError` otherwise).
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.documents.einvoice import NotEInvoiceableError
from fiscus.documents.facturx import build_cii_xml
from fiscus.documents.ubl import build_ubl_xml
from fiscus.domain.errors import InvalidStateError
from fiscus.queries.documents import get_document
from fiscus.queries.scope import Scope


class Syntax(StrEnum):
    UBL = "ubl"
    CII = "cii"


class EInvoicingDisabledError(InvalidStateError):
    """The organisation does not issue EN 16931 e-invoices (its `facturx_enabled` is off)."""

    code = "e_invoicing_disabled"
    title = "The organisation does not issue e-invoices"


def einvoice_xml(db: Database, scope: Scope, document_id: int, syntax: Syntax) -> bytes:
    """The document's EN 16931 XML in `syntax`, read in one short transaction."""
    with db.read() as conn:
        doc = get_document(conn, scope, document_id)
        d = t.documents.c
        enabled = conn.execute(
            select(t.organizations.c.facturx_enabled).where(t.organizations.c.id == scope.organization_id)
        ).scalar_one()
        corrected = None
        if doc.corrected_document_id is not None:
            corrected = conn.execute(
                select(d.number).where(
                    d.organization_id == scope.organization_id, d.id == doc.corrected_document_id
                )
            ).scalar_one_or_none()
    if not enabled:
        raise EInvoicingDisabledError(
            "this organisation does not issue EN 16931 e-invoices (facturx_enabled is off)", id=document_id
        )
    if doc.number is None:
        raise NotEInvoiceableError("the document is not issued yet and has no e-invoice", id=document_id)
    build = build_ubl_xml if syntax is Syntax.UBL else build_cii_xml
    return build(doc, corrected_number=corrected)


__all__ = ["EInvoicingDisabledError", "NotEInvoiceableError", "Syntax", "einvoice_xml"]
