"""Credit notes of an invoice: issue one (full, by lines, by amount) and list those issued."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Request, Response
from pydantic import ConfigDict, Field, model_validator

from fiscus.api import presenters as p
from fiscus.api.deps import ContainerDep, OrgDep
from fiscus.api.routes.common import IDEMPOTENCY_HEADER, envelope, router
from fiscus.api.schemas import MAX_JSON_INTEGER, NOT_BLANK, Amount, DocumentOut, Id, In, ListOut, Quantity
from fiscus.queries.documents import get_document, load_documents
from fiscus.queries.payments import document_payments
from fiscus.queries.scope import Scope
from fiscus.services import credit_notes as svc

api = router("documents")


class CreditLineIn(In):
    position: Annotated[int, Field(ge=1, le=MAX_JSON_INTEGER, description="the invoice line's position")]
    quantity: Annotated[
        Quantity | None, Field(description="units to credit; omitted: all that is still open on the line")
    ] = None


class CreditNoteIn(In):
    """`lines` go with mode `lines` only (at least one, each position once), `amount` with mode
    `amount` only; mode `full` takes neither."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "properties": {
                        "mode": {"const": "full"},
                        "lines": {"type": "null"},
                        "amount": {"type": "null"},
                    }
                },
                {
                    "properties": {
                        "mode": {"const": "lines"},
                        "lines": {"type": "array"},
                        "amount": {"type": "null"},
                    },
                    "required": ["lines"],
                },
                {
                    "properties": {
                        "mode": {"const": "amount"},
                        "lines": {"type": "null"},
                        "amount": {"type": "string"},
                    },
                    "required": ["amount"],
                },
            ]
        }
    )

    mode: Annotated[
        Literal["full", "lines", "amount"],
        Field(description="full: everything still open; lines: the named lines; amount: a gross amount"),
    ]
    lines: Annotated[
        list[CreditLineIn] | None,
        Field(min_length=1, max_length=1000, description="mode `lines`: each invoice line to credit, once"),
    ] = None
    amount: Annotated[
        Amount | None, Field(description="gross amount (tax included), split over the invoice's rates")
    ] = None
    reason: Annotated[str, Field(min_length=1, max_length=1000, pattern=NOT_BLANK)]
    disposition: Annotated[
        Literal["reduce_due", "refund", "customer_credit"],
        Field(description="lower what is due, refund what was paid, or keep it as customer credit"),
    ]

    @model_validator(mode="after")
    def _fields_fit_the_mode(self) -> CreditNoteIn:
        if (self.lines is not None) != (self.mode == "lines"):
            raise ValueError("`lines` is required with mode lines and refused with the others")
        if (self.amount is not None) != (self.mode == "amount"):
            raise ValueError("`amount` is required with mode amount and refused with the others")
        if self.lines is not None and len({line.position for line in self.lines}) != len(self.lines):
            raise ValueError("each line position may be named once")
        return self


@api.post(
    "/documents/{document_id}/credit_notes",
    response_model=DocumentOut,
    status_code=201,
    openapi_extra=IDEMPOTENCY_HEADER,
)
def create_credit_note(document_id: Id, body: CreditNoteIn, principal: OrgDep, c: ContainerDep) -> Response:
    """Correct an issued invoice with a numbered credit note of its own series; returns the credit note."""
    note_id = svc.issue_credit_note(
        c.db,
        c.clock,
        principal.organization_id,
        document_id,
        mode=body.mode,
        lines=[(line.position, line.quantity) for line in body.lines] if body.lines is not None else None,
        amount=body.amount,
        reason=body.reason,
        disposition=body.disposition,
        actor=principal.actor,
    )
    with c.db.read() as conn:
        doc = get_document(conn, Scope(principal.organization_id), note_id)
    return p.json_response(p.document(doc, None, lines=True), status=201)


@api.get("/documents/{document_id}/credit_notes", response_model=ListOut[DocumentOut])
def list_credit_notes(document_id: Id, request: Request, principal: OrgDep, c: ContainerDep) -> Response:
    """The credit notes correcting this invoice, oldest first, with their lines."""
    scope = Scope(principal.organization_id)
    with c.db.read() as conn:
        get_document(conn, scope, document_id, lines=False)
        ids = svc.list_credit_notes(conn, principal.organization_id, document_id)
        docs = sorted(load_documents(conn, scope, ids), key=lambda d: d.id)
        history = document_payments(conn, scope, ids)
    return p.json_response(
        envelope(request, [p.document(d, history.get(d.id), lines=True) for d in docs], False)
    )
