from __future__ import annotations

from fastapi import Request, Response

from fiscus.adapters.db import tables as t
from fiscus.api import presenters as p
from fiscus.api.deps import ContainerDep, OrgDep, ScopeDep, on_loop
from fiscus.api.routes.common import IDEMPOTENCY_HEADER, PageDep, list_response, router
from fiscus.api.schemas import CustomerIn, CustomerOut, CustomerPatch, Id, ListOut
from fiscus.queries.rows import get_row
from fiscus.queries.scope import Scope
from fiscus.services import customers as svc

api = router("customers")


def _get(c: ContainerDep, scope: Scope, customer_id: int) -> Response:
    with c.db.read() as conn:
        return p.json_response(p.customer(get_row(conn, scope, t.customers, customer_id, "customer")))


@api.post("/customers", status_code=201, response_model=CustomerOut, openapi_extra=IDEMPOTENCY_HEADER)
def create_customer(body: CustomerIn, principal: OrgDep, c: ContainerDep) -> Response:
    spec = svc.CustomerSpec(
        name=body.name,
        email=body.email,
        country=body.country,
        currency=body.currency,
        vat_id=body.vat_id,
        locale=body.locale,
        timezone=body.timezone,
        address_line1=body.address.line1,
        address_line2=body.address.line2,
        city=body.address.city,
        postal_code=body.address.postal_code,
        external_id=body.external_id,
    )
    cid = svc.create_customer(
        c.db, c.clock, principal.organization_id, spec, actor=principal.actor, registry=c.vat_registry
    )
    response = _get(c, Scope(principal.organization_id), cid)
    response.status_code = 201
    return response


@api.get("/customers", response_model=ListOut[CustomerOut])
@on_loop
def list_customers(request: Request, principal: OrgDep, c: ContainerDep, page: PageDep) -> Response:
    return list_response(request, c, principal.organization_id, t.customers, p.customer, page)


@api.get("/customers/{customer_id}", response_model=CustomerOut)
@on_loop
def get_customer(customer_id: Id, scope: ScopeDep, c: ContainerDep) -> Response:
    return _get(c, scope, customer_id)


@api.post("/customers/{customer_id}", response_model=CustomerOut, openapi_extra=IDEMPOTENCY_HEADER)
def update_customer(customer_id: Id, body: CustomerPatch, principal: OrgDep, c: ContainerDep) -> Response:
    address = body.address
    patch = svc.CustomerPatch(
        name=body.name,
        email=body.email,
        vat_id=body.vat_id,
        locale=body.locale,
        timezone=body.timezone,
        address_line1=address.line1 if address else None,
        address_line2=address.line2 if address else None,
        city=address.city if address else None,
        postal_code=address.postal_code if address else None,
    )
    svc.update_customer(c.db, c.clock, principal.organization_id, customer_id, patch, actor=principal.actor)
    return _get(c, Scope(principal.organization_id), customer_id)
