from __future__ import annotations

from fastapi import Request, Response

from fiscus.adapters.db import tables as t
from fiscus.api import presenters as p
from fiscus.api.deps import ContainerDep, OrgDep, on_loop
from fiscus.api.routes.common import IDEMPOTENCY_HEADER, EndingBefore, Limit, StartingAfter, envelope, router
from fiscus.api.schemas import Id, ListOut, OrderIn, OrderOut
from fiscus.queries.rows import documents_of_orders, get_row, items_of, page_rows
from fiscus.queries.scope import Scope
from fiscus.services import orders as svc
from fiscus.services.subscriptions import ItemSpec

api = router("orders")


def _get(c: ContainerDep, org_id: int, order_id: int, status: int = 200) -> Response:
    with c.db.read() as conn:
        row = get_row(conn, Scope(org_id), t.orders, order_id, "order")
        items = items_of(conn, t.order_items, "order_id", [order_id])[order_id]
        docs = documents_of_orders(conn, [order_id])[order_id]
    return p.json_response(p.order(row, items, docs), status)


@api.post("/orders", status_code=201, response_model=OrderOut, openapi_extra=IDEMPOTENCY_HEADER)
def create_order(body: OrderIn, principal: OrgDep, c: ContainerDep) -> Response:
    """A one-off purchase; billed by the next billing run, or at once with `bill_now`."""
    org = principal.organization_id
    oid = svc.create_order(
        c.db,
        c.clock,
        org,
        body.customer_id,
        [ItemSpec(i.price_id, i.quantity) for i in body.items],
        actor=principal.actor,
    )
    if body.bill_now:
        svc.bill_order_now(c.db, c.clock, org, oid, actor=principal.actor)
    return _get(c, org, oid, 201)


@api.get("/orders", response_model=ListOut[OrderOut])
@on_loop
def list_orders(
    request: Request,
    principal: OrgDep,
    c: ContainerDep,
    limit: Limit = 10,
    starting_after: StartingAfter = None,
    ending_before: EndingBefore = None,
    customer_id: Id | None = None,
) -> Response:
    where = [t.orders.c.customer_id == customer_id] if customer_id else []
    with c.db.read() as conn:
        rows, more = page_rows(
            conn,
            Scope(principal.organization_id),
            t.orders,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            where=where,
        )
        ids = [r["id"] for r in rows]
        items, docs = items_of(conn, t.order_items, "order_id", ids), documents_of_orders(conn, ids)
    return p.json_response(envelope(request, [p.order(r, items[r["id"]], docs[r["id"]]) for r in rows], more))


@api.get("/orders/{order_id}", response_model=OrderOut)
@on_loop
def get_order(order_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    return _get(c, principal.organization_id, order_id)
