from __future__ import annotations

from fastapi import Request, Response

from fiscus.adapters.db import tables as t
from fiscus.api import presenters as p
from fiscus.api.deps import ContainerDep, OrgDep, on_loop
from fiscus.api.routes.common import IDEMPOTENCY_HEADER, PageDep, list_response, one_response, router
from fiscus.api.schemas import (
    Id,
    ListOut,
    PriceIn,
    PriceOut,
    ProductIn,
    ProductOut,
    ProductPatch,
    VariantIn,
    VariantOut,
)
from fiscus.services import catalog as svc

api = router("catalog")


@api.post("/products", status_code=201, response_model=ProductOut, openapi_extra=IDEMPOTENCY_HEADER)
def create_product(body: ProductIn, principal: OrgDep, c: ContainerDep) -> Response:
    org = principal.organization_id
    pid = svc.create_product(c.db, c.clock, org, svc.ProductSpec(**body.model_dump()), actor=principal.actor)
    return one_response(c, org, t.products, pid, "product", p.product, 201)


@api.get("/products", response_model=ListOut[ProductOut])
@on_loop
def list_products(request: Request, principal: OrgDep, c: ContainerDep, page: PageDep) -> Response:
    return list_response(request, c, principal.organization_id, t.products, p.product, page)


@api.get("/products/{product_id}", response_model=ProductOut)
@on_loop
def get_product(product_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    return one_response(c, principal.organization_id, t.products, product_id, "product", p.product)


@api.post("/products/{product_id}", response_model=ProductOut, openapi_extra=IDEMPOTENCY_HEADER)
def update_product(product_id: Id, body: ProductPatch, principal: OrgDep, c: ContainerDep) -> Response:
    """Change the name and/or the description (`detail`); the others stay. Issued documents keep the
    descriptions they were issued with. Audited."""
    org = principal.organization_id
    svc.update_product(
        c.db, c.clock, org, product_id, name=body.name, detail=body.detail, actor=principal.actor
    )
    return one_response(c, org, t.products, product_id, "product", p.product)


@api.post(
    "/products/{product_id}/variants",
    status_code=201,
    response_model=VariantOut,
    openapi_extra=IDEMPOTENCY_HEADER,
)
def create_variant(product_id: Id, body: VariantIn, principal: OrgDep, c: ContainerDep) -> Response:
    org = principal.organization_id
    vid = svc.create_variant(
        c.db,
        c.clock,
        org,
        product_id,
        code=body.code,
        name=body.name,
        limits=body.limits,
        actor=principal.actor,
    )
    return one_response(c, org, t.variants, vid, "variant", p.variant, 201)


@api.get("/variants", response_model=ListOut[VariantOut])
@on_loop
def list_variants(
    request: Request, principal: OrgDep, c: ContainerDep, page: PageDep, product_id: Id | None = None
) -> Response:
    where = [t.variants.c.product_id == product_id] if product_id else []
    return list_response(request, c, principal.organization_id, t.variants, p.variant, page, where)


@api.get("/variants/{variant_id}", response_model=VariantOut)
@on_loop
def get_variant(variant_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    return one_response(c, principal.organization_id, t.variants, variant_id, "variant", p.variant)


@api.post(
    "/variants/{variant_id}/prices",
    status_code=201,
    response_model=PriceOut,
    openapi_extra=IDEMPOTENCY_HEADER,
)
def create_price(variant_id: Id, body: PriceIn, principal: OrgDep, c: ContainerDep) -> Response:
    org = principal.organization_id
    price_id = svc.create_price(
        c.db,
        c.clock,
        org,
        variant_id,
        currency_code=body.currency,
        unit_amount=body.unit_amount,
        interval=body.interval,
        interval_count=body.interval_count,
        tax_inclusive=body.tax_inclusive,
        tax_category=body.tax_category,
        actor=principal.actor,
    )
    return one_response(c, org, t.prices, price_id, "price", p.price, 201)


@api.get("/prices", response_model=ListOut[PriceOut])
@on_loop
def list_prices(
    request: Request, principal: OrgDep, c: ContainerDep, page: PageDep, variant_id: Id | None = None
) -> Response:
    where = [t.prices.c.variant_id == variant_id] if variant_id else []
    return list_response(request, c, principal.organization_id, t.prices, p.price, page, where)


@api.get("/prices/{price_id}", response_model=PriceOut)
@on_loop
def get_price(price_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    return one_response(c, principal.organization_id, t.prices, price_id, "price", p.price)


@api.post("/prices/{price_id}/archive", response_model=PriceOut, openapi_extra=IDEMPOTENCY_HEADER)
def archive_price(price_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """No new subscriptions or orders on this price; existing subscriptions keep being billed at it."""
    org = principal.organization_id
    svc.set_price_active(c.db, c.clock, org, price_id, active=False, actor=principal.actor)
    return one_response(c, org, t.prices, price_id, "price", p.price)


@api.post("/prices/{price_id}/unarchive", response_model=PriceOut, openapi_extra=IDEMPOTENCY_HEADER)
def unarchive_price(price_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """Offer an archived price again."""
    org = principal.organization_id
    svc.set_price_active(c.db, c.clock, org, price_id, active=True, actor=principal.actor)
    return one_response(c, org, t.prices, price_id, "price", p.price)
