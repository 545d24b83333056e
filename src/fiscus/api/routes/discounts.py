"""Coupons, promotion codes and discounts (issue 17): parse, call `services/discounts.py`, present."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.api.deps import ContainerDep, OrgDep, on_loop
from fiscus.api.discount_schemas import (
    CouponIn,
    CouponOut,
    CreditGrantIn,
    DiscountOut,
    DiscountSettingsIn,
    DiscountSettingsOut,
    PromotionCodeIn,
    PromotionCodeOut,
    RedeemIn,
    WalletOut,
)
from fiscus.api.presenters import json_response, money
from fiscus.api.routes.common import PageDep, list_response, one_response, router
from fiscus.api.schemas import Id, ListOut
from fiscus.domain.money import currency
from fiscus.queries.rows import get_row
from fiscus.queries.scope import Scope
from fiscus.services import discounts as svc
from fiscus.services import wallets

api = router("discounts")


def coupon(row: dict[str, Any]) -> dict[str, Any]:
    pct = row["percent_off"]
    return {
        "id": row["id"],
        "object": "coupon",
        "name": row["name"],
        "percent_off": None if pct is None else f"{pct.normalize():f}",
        "amounts_off": {k: money(v, currency(k)) for k, v in sorted(row["amounts_off"].items())},
        "duration": row["duration"],
        "duration_periods": row["duration_periods"],
        "product_ids": row["product_ids"],
        "price_ids": row["price_ids"],
        "metric_ids": row["metric_ids"],
        "redeem_by": row["redeem_by"],
        "max_redemptions": row["max_redemptions"],
        "times_redeemed": row["times_redeemed"],
        "valid": bool(row["active"]) and row["expired_at"] is None,
        "created_at": row["created_at"],
    }


def promotion_code(row: dict[str, Any]) -> dict[str, Any]:
    minimum, cur = row["minimum_amount_minor"], row["minimum_currency"]
    return {
        "id": row["id"],
        "object": "promotion_code",
        "code": row["code"],
        "coupon_id": row["coupon_id"],
        "active": row["active"],
        "expires_at": row["expires_at"],
        "max_redemptions": row["max_redemptions"],
        "times_redeemed": row["times_redeemed"],
        "first_purchase_only": row["first_purchase_only"],
        "minimum_amount": None if minimum is None else money(minimum, currency(cur)),
        "minimum_currency": cur,
        "customer_id": row["customer_id"],
        "created_at": row["created_at"],
    }


def discount(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "coupon_id", "promotion_code_id", "customer_id", "subscription_id", "periods_applied")
    return {
        **{k: row[k] for k in keys},
        "object": "discount",
        "status": row["status"],
        "created_at": row["created_at"],
        "ended_at": row["ended_at"],
    }


@api.post("/coupons", status_code=201, response_model=CouponOut)
def create_coupon(body: CouponIn, principal: OrgDep, c: ContainerDep) -> Response:
    """A coupon: a percentage or fixed amounts per currency, once, for `duration_periods` billed
    documents, or forever; on every line or on the listed products and prices. Organisation keys only."""
    org = principal.organization_id
    spec = svc.CouponSpec(
        name=body.name,
        duration=body.duration,
        percent_off=None if body.percent_off is None else Decimal(body.percent_off),
        amounts_off=dict(body.amounts_off),
        duration_periods=body.duration_periods,
        product_ids=list(body.product_ids),
        price_ids=list(body.price_ids),
        metric_ids=list(body.metric_ids),
        redeem_by=body.redeem_by,
        max_redemptions=body.max_redemptions,
    )
    cid = svc.create_coupon(c.db, c.clock, org, spec, actor=principal.actor)
    return one_response(c, org, td.coupons, cid, "coupon", coupon, 201)


@api.get("/coupons", response_model=ListOut[CouponOut])
@on_loop
def list_coupons(request: Request, principal: OrgDep, c: ContainerDep, page: PageDep) -> Response:
    """The organisation's coupons, newest first, cursor-paginated. Organisation keys only."""
    return list_response(request, c, principal.organization_id, td.coupons, coupon, page)


@api.get("/coupons/{coupon_id}", response_model=CouponOut)
@on_loop
def get_coupon(coupon_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """One coupon with how often it was redeemed. Organisation keys only."""
    return one_response(c, principal.organization_id, td.coupons, coupon_id, "coupon", coupon)


@api.post("/promotion_codes", status_code=201, response_model=PromotionCodeOut)
def create_promotion_code(body: PromotionCodeIn, principal: OrgDep, c: ContainerDep) -> Response:
    """A customer-facing code for a coupon, case-insensitive and unique in the organisation (409 when
    taken), with its own expiry, maximum, first-purchase-only, minimum amount or customer."""
    org = principal.organization_id
    spec = svc.CodeSpec(**body.model_dump())
    pid = svc.create_promotion_code(c.db, c.clock, org, spec, actor=principal.actor)
    return one_response(c, org, td.promotion_codes, pid, "promotion_code", promotion_code, 201)


@api.get("/promotion_codes", response_model=ListOut[PromotionCodeOut])
@on_loop
def list_promotion_codes(request: Request, principal: OrgDep, c: ContainerDep, page: PageDep) -> Response:
    """The organisation's promotion codes, newest first, cursor-paginated. Organisation keys only."""
    return list_response(request, c, principal.organization_id, td.promotion_codes, promotion_code, page)


@api.get("/promotion_codes/{promotion_code_id}", response_model=PromotionCodeOut)
@on_loop
def get_promotion_code(promotion_code_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """One promotion code. Organisation keys only."""
    org = principal.organization_id
    return one_response(c, org, td.promotion_codes, promotion_code_id, "promotion_code", promotion_code)


def _redeem(c: ContainerDep, principal: OrgDep, body: RedeemIn, **target: int) -> Response:
    org = principal.organization_id
    did = svc.redeem(
        c.db, c.clock, org, code=body.promotion_code, coupon_id=body.coupon, actor=principal.actor, **target
    )
    return one_response(c, org, td.discounts, did, "discount", discount, 201)


@api.post("/subscriptions/{subscription_id}/discounts", status_code=201, response_model=DiscountOut)
def redeem_on_subscription(
    subscription_id: Id, body: RedeemIn, principal: OrgDep, c: ContainerDep
) -> Response:
    """Apply a promotion code or a coupon to the subscription's next documents. A code or coupon that
    does not apply is a 409 whose `reason` names why (expired, max_redemptions, not_first_purchase, ...)."""
    return _redeem(c, principal, body, subscription_id=subscription_id)


@api.post("/customers/{customer_id}/discounts", status_code=201, response_model=DiscountOut)
def redeem_on_customer(customer_id: Id, body: RedeemIn, principal: OrgDep, c: ContainerDep) -> Response:
    """Apply a promotion code or a coupon to every later document of the customer (subscriptions and
    orders); a refusal is a 409 whose `reason` names why."""
    return _redeem(c, principal, body, customer_id=customer_id)


@api.get("/discounts", response_model=ListOut[DiscountOut])
@on_loop
def list_discounts(
    request: Request,
    principal: OrgDep,
    c: ContainerDep,
    page: PageDep,
    customer_id: Id | None = None,
    subscription_id: Id | None = None,
) -> Response:
    """Discounts in force or past, newest first; filter by `customer_id` or `subscription_id`."""
    dc = td.discounts.c
    where = [dc.customer_id == customer_id] if customer_id else []
    where += [dc.subscription_id == subscription_id] if subscription_id else []
    return list_response(request, c, principal.organization_id, td.discounts, discount, page, where)


@api.get("/discounts/{discount_id}", response_model=DiscountOut)
@on_loop
def get_discount(discount_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """One discount: its coupon, where it applies and how many documents it has reduced."""
    return one_response(c, principal.organization_id, td.discounts, discount_id, "discount", discount)


@api.delete("/discounts/{discount_id}", response_model=DiscountOut)
def remove_discount(discount_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """End a discount: later documents no longer carry it; issued documents keep theirs."""
    org = principal.organization_id
    svc.remove_discount(c.db, c.clock, org, discount_id, actor=principal.actor)
    return one_response(c, org, td.discounts, discount_id, "discount", discount)


@api.get("/discount_settings", response_model=DiscountSettingsOut)
def get_discount_settings(principal: OrgDep, c: ContainerDep) -> Response:
    """Whether discounts stack (`sequential`: in the order redeemed, each on what is left) or not (`none`)."""
    with c.db.read() as conn:
        stacking = svc.stacking_of(conn, principal.organization_id)
    return json_response({"object": "discount_settings", "stacking": stacking.value})


@api.post("/discount_settings", response_model=DiscountSettingsOut)
def set_discount_settings(body: DiscountSettingsIn, principal: OrgDep, c: ContainerDep) -> Response:
    """Set the stacking rule; discounts already redeemed stay, later redemptions follow the rule."""
    svc.set_stacking(c.db, c.clock, principal.organization_id, body.stacking, actor=principal.actor)
    return json_response({"object": "discount_settings", "stacking": body.stacking})


def _wallet(conn: Any, row: Any) -> dict[str, Any]:
    cur = currency(row["currency"])
    lg = td.wallet_ledger.c
    entries = conn.execute(
        select(td.wallet_ledger).where(lg.wallet_id == row["id"]).order_by(lg.id)
    ).mappings()
    return {
        "id": row["id"],
        "object": "wallet",
        "customer_id": row["customer_id"],
        "currency": cur.code,
        "balance": money(row["balance_minor"], cur),
        "low_balance": None if row["low_balance_minor"] is None else money(row["low_balance_minor"], cur),
        "ledger": [
            {
                "id": e["id"],
                "grant_id": e["grant_id"],
                "kind": e["kind"],
                "amount": money(e["amount_minor"], cur),
                "document_id": e["document_id"],
                "created_at": e["created_at"],
            }
            for e in entries
        ],
    }


def _wallets_response(c: ContainerDep, org: int, customer_id: int, status: int = 200) -> Response:
    w = td.wallets.c
    with c.db.read() as conn:
        get_row(conn, Scope(org), t.customers, customer_id, "customer")
        rows = conn.execute(
            select(td.wallets).where(w.organization_id == org, w.customer_id == customer_id).order_by(w.id)
        ).mappings()
        data = [_wallet(conn, r) for r in rows]
    return json_response(
        {
            "object": "list",
            "data": data,
            "has_more": False,
            "url": f"/api/v1/customers/{customer_id}/wallets",
        },
        status,
    )


@api.post("/customers/{customer_id}/credit_grants", status_code=201, response_model=ListOut[WalletOut])
def grant_credit(customer_id: Id, body: CreditGrantIn, principal: OrgDep, c: ContainerDep) -> Response:
    """Grant promotional credit in the customer's currency: the billing run takes it off later documents
    before tax, highest priority (lowest number) first, then the soonest expiry. Answers the wallets."""
    org = principal.organization_id
    wallets.grant_credits(
        c.db,
        c.clock,
        org,
        customer_id,
        currency_code=body.currency,
        amount=body.amount,
        expires_at=body.expires_at,
        priority=body.priority,
        product_ids=body.product_ids,
        reason=body.reason,
        low_balance=body.low_balance,
        actor=principal.actor,
    )
    return _wallets_response(c, org, customer_id, 201)


@api.get("/customers/{customer_id}/wallets", response_model=ListOut[WalletOut])
def list_wallets(customer_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """The customer's wallets, one per currency, each with its balance and its whole ledger (every
    grant, consumption with its document, expiry)."""
    return _wallets_response(c, principal.organization_id, customer_id)
