"""Bought credit (issue 17, ADR 0009): top-up invoices and refunds of unused paid credit. Parse, call
`services/wallet_topups.py`, present."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.api import payment_presenters as pp
from fiscus.api.deps import ContainerDep, OrgDep
from fiscus.api.discount_schemas import TopupIn, TopupOut
from fiscus.api.payment_schemas import RefundOut
from fiscus.api.presenters import json_response, money
from fiscus.api.routes.common import envelope, router
from fiscus.api.routes.payments import PROVIDER_RESPONSES, _provider, _provider_errors
from fiscus.api.schemas import Id, ListOut
from fiscus.domain.money import currency
from fiscus.queries.payments import refunds_by_id
from fiscus.queries.rows import get_row
from fiscus.queries.scope import Scope
from fiscus.services import wallet_topups

api = router("discounts")


def topup(row: Any) -> dict[str, Any]:
    cur = currency(row["currency"])
    return {
        "id": row["id"],
        "object": "credit_topup",
        "customer_id": row["customer_id"],
        "document_id": row["document_id"],
        "amount": money(row["amount_minor"], cur),
        "currency": cur.code,
        "grant_id": row["grant_id"],
        "created_at": row["created_at"],
        "credited_at": row["credited_at"],
    }


@api.post("/customers/{customer_id}/credit_topups", status_code=201, response_model=TopupOut)
def create_topup(customer_id: Id, body: TopupIn, principal: OrgDep, c: ContainerDep) -> Response:
    """Issue a top-up invoice (one "Prepaid credit" line, tax included, taxed now); when it is paid the
    customer's wallet receives `amount` of paid credit, which later invoices take after tax, as a
    prepaid amount (EN 16931 BT-113)."""
    doc_id = wallet_topups.create_topup(
        c.db,
        c.clock,
        principal.organization_id,
        customer_id,
        currency_code=body.currency,
        amount=body.amount,
        actor=principal.actor,
    )
    with c.db.read() as conn:
        row = (
            conn.execute(select(td.wallet_topups).where(td.wallet_topups.c.document_id == doc_id))
            .mappings()
            .one()
        )
    return json_response(topup(row), 201)


@api.get("/customers/{customer_id}/credit_topups", response_model=ListOut[TopupOut])
def list_topups(customer_id: Id, request: Request, principal: OrgDep, c: ContainerDep) -> Response:
    """The customer's top-ups, oldest first, with the paid credit each granted once paid."""
    org = principal.organization_id
    tu = td.wallet_topups.c
    with c.db.read() as conn:
        get_row(conn, Scope(org), t.customers, customer_id, "customer")
        rows = conn.execute(
            select(td.wallet_topups)
            .where(tu.organization_id == org, tu.customer_id == customer_id)
            .order_by(tu.id)
        ).mappings()
        data = [topup(r) for r in rows]
    return json_response(envelope(request, data, False))


@api.post(
    "/customers/{customer_id}/wallets/refund",
    status_code=201,
    response_model=ListOut[RefundOut],
    responses={
        **PROVIDER_RESPONSES,
        202: {"description": "Some refunds await the provider's answer", "model": ListOut[RefundOut]},
    },
)
def refund_unused(customer_id: Id, request: Request, principal: OrgDep, c: ContainerDep) -> Response:
    """Refund the customer's unused paid credit: the top-ups' payments given back (each with its credit
    note of the top-up invoice) and the wallet debited (ledger `refunded`). Promotional credit is never
    refunded."""
    org = principal.organization_id
    with c.db.read() as conn:
        get_row(conn, Scope(org), t.customers, customer_id, "customer")
    provider = _provider(c)
    with _provider_errors():
        ids = wallet_topups.refund_unused_credit(
            c.db, c.clock, provider, org, customer_id, actor=principal.actor
        )
    with c.db.read() as conn:
        data = pp.refunds(conn, refunds_by_id(conn, ids))
    status = 202 if any(r["status"] == "pending" for r in data) else 201
    return json_response(envelope(request, data, False), status)
