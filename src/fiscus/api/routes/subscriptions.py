from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fastapi import Request, Response
from sqlalchemy import Connection, select

from fiscus.adapters.db import tables as t
from fiscus.api import presenters as p
from fiscus.api.deps import ContainerDep, OrgDep, on_loop
from fiscus.api.routes.common import (
    IDEMPOTENCY_HEADER,
    EndingBefore,
    Limit,
    StartingAfter,
    SubscriptionExpand,
    envelope,
    router,
)
from fiscus.api.schemas import (
    CancelIn,
    ChangeIn,
    Id,
    ListOut,
    PauseCollectionIn,
    PreviewOut,
    SubscriptionIn,
    SubscriptionOut,
    SubscriptionUpdate,
)
from fiscus.domain.documents import ComputedDocument
from fiscus.domain.money import Currency
from fiscus.queries.rows import get_row, items_of, page_rows
from fiscus.queries.scope import Scope
from fiscus.services import collection_pause as svc_pause
from fiscus.services import subscriptions as svc
from fiscus.services.billing_run import preview_next_document
from fiscus.services.collection_pause import active_pauses
from fiscus.services.usage_billing import preview_usage

api = router("subscriptions")


def present(
    conn: Connection, scope: Scope, row: dict[str, Any], expand: Sequence[str], now: datetime | None = None
) -> dict[str, Any]:
    """The subscription; with `now`, its `pause_collection` in force then (an expanded subscription
    inside another object leaves it out: the field is optional)."""
    out = p.subscription(row, items_of(conn, t.subscription_items, "subscription_id", [row["id"]])[row["id"]])
    if now is not None:
        out["pause_collection"] = active_pauses(conn, scope.organization_id, [row["id"]], now).get(row["id"])
    if "customer" in expand:
        out["customer"] = p.customer(get_row(conn, scope, t.customers, row["customer_id"], "customer"))
    return out


def _get(
    c: ContainerDep, org_id: int, sub_id: int, expand: Sequence[str] | None = None, status: int = 200
) -> Response:
    scope = Scope(org_id)
    with c.db.read() as conn:
        row = get_row(conn, scope, t.subscriptions, sub_id, "subscription")
        return p.json_response(present(conn, scope, row, expand or [], c.clock.now()), status)


def _items(items: list[Any]) -> list[svc.ItemSpec]:
    return [svc.ItemSpec(i.price_id, i.quantity) for i in items]


@api.post("/subscriptions", status_code=201, response_model=SubscriptionOut, openapi_extra=IDEMPOTENCY_HEADER)
def create_subscription(body: SubscriptionIn, principal: OrgDep, c: ContainerDep) -> Response:
    sid = svc.create_subscription(
        c.db,
        c.clock,
        principal.organization_id,
        body.customer_id,
        _items(body.items),
        start_at=body.start_at,
        trial_days=body.trial_days,
        trial_end=body.trial_end,
        billing_anchor=body.billing_anchor,
        bill_now=body.billing == "now",
        actor=principal.actor,
    )
    if body.billing != "now":
        return _get(c, principal.organization_id, sid, status=201)
    scope = Scope(principal.organization_id)
    with c.db.read() as conn:
        row = get_row(conn, scope, t.subscriptions, sid, "subscription")
        out = present(conn, scope, row, [], c.clock.now())
        d = t.documents.c
        billed = list(conn.execute(select(d.id).where(d.subscription_id == sid).order_by(d.id)).scalars())
    return p.json_response({**out, "billed_document_ids": billed}, 201)


@api.get("/subscriptions", response_model=ListOut[SubscriptionOut])
@on_loop
def list_subscriptions(
    request: Request,
    principal: OrgDep,
    c: ContainerDep,
    limit: Limit = 10,
    starting_after: StartingAfter = None,
    ending_before: EndingBefore = None,
    customer_id: Id | None = None,
    status: str | None = None,
) -> Response:
    s = t.subscriptions.c
    where = [
        clause
        for clause in (
            s.customer_id == customer_id if customer_id else None,
            s.status == status if status else None,
        )
        if clause is not None
    ]
    with c.db.read() as conn:
        rows, more = page_rows(
            conn,
            Scope(principal.organization_id),
            t.subscriptions,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            where=where,
        )
        ids = [r["id"] for r in rows]
        items = items_of(conn, t.subscription_items, "subscription_id", ids)
        pauses = active_pauses(conn, principal.organization_id, ids, c.clock.now())
    data = [{**p.subscription(r, items[r["id"]]), "pause_collection": pauses.get(r["id"])} for r in rows]
    return p.json_response(envelope(request, data, more))


@api.get("/subscriptions/{subscription_id}", response_model=SubscriptionOut)
@on_loop
def get_subscription(
    subscription_id: Id, principal: OrgDep, c: ContainerDep, expand: SubscriptionExpand = None
) -> Response:
    return _get(c, principal.organization_id, subscription_id, expand)


@api.post(
    "/subscriptions/{subscription_id}", response_model=SubscriptionOut, openapi_extra=IDEMPOTENCY_HEADER
)
def update_subscription(
    subscription_id: Id, body: SubscriptionUpdate, principal: OrgDep, c: ContainerDep
) -> Response:
    """Change the items (prorated onto the next document) and/or schedule or withdraw a cancellation."""
    org = principal.organization_id
    if body.items is not None:
        svc.change_subscription(
            c.db, c.clock, org, subscription_id, _items(body.items), actor=principal.actor
        )
    if body.cancel_at_period_end is True:
        svc.cancel_subscription(
            c.db, c.clock, org, subscription_id, at_period_end=True, actor=principal.actor
        )
    elif body.cancel_at_period_end is False:
        svc.resume_subscription(c.db, c.clock, org, subscription_id, actor=principal.actor)
    return _get(c, org, subscription_id)


@api.post(
    "/subscriptions/{subscription_id}/cancel",
    response_model=SubscriptionOut,
    openapi_extra=IDEMPOTENCY_HEADER,
)
def cancel_subscription(subscription_id: Id, body: CancelIn, principal: OrgDep, c: ContainerDep) -> Response:
    """Cancel now or at the period end; `issued_ahead` lists documents already issued for a later period
    and what the cancellation did to each (voided, or credited with the credit notes' ids)."""
    ahead = svc.cancel_subscription(
        c.db,
        c.clock,
        principal.organization_id,
        subscription_id,
        at_period_end=body.at_period_end,
        actor=principal.actor,
    )
    scope = Scope(principal.organization_id)
    with c.db.read() as conn:
        row = get_row(conn, scope, t.subscriptions, subscription_id, "subscription")
        out = present(conn, scope, row, [], c.clock.now())
    return p.json_response({**out, "issued_ahead": [a.as_json() for a in ahead]})


@api.post(
    "/subscriptions/{subscription_id}/pause_collection",
    response_model=SubscriptionOut,
    openapi_extra=IDEMPOTENCY_HEADER,
)
def pause_collection(
    subscription_id: Id, body: PauseCollectionIn, principal: OrgDep, c: ContainerDep
) -> Response:
    """Stop the automatic charges and retries of the subscription's documents, until `resumes_at` or
    until resumed. Invoices are still issued and numbered as usual (the supply goes on; numbering stays
    gapless); the customer can still pay them. Pausing a paused subscription changes `resumes_at`. A
    canceled or ended subscription: 409."""
    svc_pause.pause_collection(
        c.db, c.clock, principal.organization_id, subscription_id, resumes_at=body.resumes_at,
        actor=principal.actor,
    )  # fmt: skip
    return _get(c, principal.organization_id, subscription_id)


@api.post(
    "/subscriptions/{subscription_id}/resume_collection",
    response_model=SubscriptionOut,
    openapi_extra=IDEMPOTENCY_HEADER,
)
def resume_collection(subscription_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """End a pause of collection now: what fell due meanwhile is charged at the next collection run.
    Not paused: 409."""
    svc_pause.resume_collection(
        c.db, c.clock, principal.organization_id, subscription_id, actor=principal.actor
    )
    return _get(c, principal.organization_id, subscription_id)


def _preview(computed: ComputedDocument | None, cur: Currency | None) -> dict[str, Any]:
    if computed is None or cur is None:
        return {"subtotal": "0", "tax": "0", "total": "0", "lines": [], "tax_breakdown": []}
    return {
        "subtotal": p.money(computed.subtotal_minor, cur),
        "tax": p.money(computed.tax_minor, cur),
        "total": p.money(computed.total_minor, cur),
        "lines": [
            {
                "description": ln.source.description,
                "kind": ln.source.kind.value,
                "price_id": ln.source.price_id,
                "quantity": str(ln.source.quantity),
                "unit_price": str(ln.source.unit_price),
                "proration_ratio": str(ln.source.ratio),
                "period_start": ln.source.period_start,
                "period_end": ln.source.period_end,
                "amount": p.money(ln.amount_minor, cur),
                "tax": p.money(ln.tax_minor, cur),
                "tax_rate": str(ln.source.tax.rate),
                "tax_treatment": ln.source.tax.treatment.value,
            }
            for ln in computed.lines
        ],
        "tax_breakdown": [
            {
                "treatment": r.treatment.value,
                "rate": str(r.rate),
                "base": p.money(r.base_minor, cur),
                "tax": p.money(r.tax_minor, cur),
                "note": r.note,
            }
            for r in computed.breakdown
        ],
    }


@api.post("/subscriptions/{subscription_id}/preview_change", response_model=dict[str, Any])
def preview_change(subscription_id: Id, body: ChangeIn, principal: OrgDep, c: ContainerDep) -> Response:
    """The proration a change would create, written nowhere."""
    result = svc.change_subscription(
        c.db,
        c.clock,
        principal.organization_id,
        subscription_id,
        _items(body.items),
        preview=True,
        actor=principal.actor,
    )
    cur = result.computed.currency if result.computed else None
    return p.json_response(
        {
            "object": "proration_preview",
            "subscription_id": subscription_id,
            "period_start": result.period.start if result.period else None,
            "period_end": result.period.end if result.period else None,
            **_preview(result.computed, cur),
        }
    )


def _credit_preview(computed: ComputedDocument | None, prepaid_minor: int) -> dict[str, Any]:
    """The discounts, promotional credit (before tax) and paid credit (after tax) it would take."""
    if computed is None:
        return {"discount": "0", "discounts": [], "prepaid_credit": "0", "amount_due": "0"}
    cur = computed.currency
    return {
        "discount": p.money(computed.discount_minor, cur),
        "discounts": [
            {
                "reason": s.reason,
                "amount": p.money(s.amount_minor, cur),
                "coupon_id": s.coupon_id,
                "discount_id": s.discount_id,
                "grant_id": s.grant_id,
            }
            for s in computed.discounts
            if s.amount_minor
        ],
        "prepaid_credit": p.money(prepaid_minor, cur),
        "amount_due": p.money(computed.total_minor - prepaid_minor, cur),
    }


@api.get("/subscriptions/{subscription_id}/upcoming_document", response_model=PreviewOut)
@on_loop
def upcoming_document(subscription_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """The document the next billing of this subscription would create (nothing is written)."""
    result = preview_next_document(c.db, principal.organization_id, subscription_id)
    doc = result.document
    usage = preview_usage(c.db, principal.organization_id, subscription_id, c.clock.now())
    return p.json_response(
        {
            "object": "document_preview",
            "subscription_id": subscription_id,
            "type": doc.doc_type.value if doc else None,
            "currency": doc.computed.currency.code if doc else None,
            "period_start": result.period_start,
            "period_end": result.period_end,
            **_preview(doc.computed if doc else None, doc.computed.currency if doc else None),
            **_credit_preview(doc.computed if doc else None, result.prepaid_minor),
            # Usage prices bill the current period in arrears, on a document of their own.
            "usage": None
            if usage is None
            else {
                "period_start": usage.period.start,
                "period_end": usage.period.end,
                **_preview(usage.computed, usage.computed.currency),
            },
        }
    )
