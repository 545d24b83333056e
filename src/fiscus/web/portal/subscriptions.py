"""The customer's subscriptions with the next invoice each will get, and, where the organisation
allows it, changing plan or quantity (the proration is shown before anything is confirmed) and
cancelling at the end of the period with a reason."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from babel.dates import format_date
from babel.numbers import format_decimal
from fastapi import APIRouter, Form, Request, Response
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.documents.view_model import format_money
from fiscus.domain.errors import DomainError, NotFoundError, ValidationError
from fiscus.domain.money import currency, from_minor
from fiscus.queries.pagination import cursor_rows
from fiscus.services import portal_actions as actions
from fiscus.services.portal_usage import CurrentUsage, current_usage
from fiscus.services.promotion_checkout import codes_allowed
from fiscus.web.portal import paging
from fiscus.web.portal.common import Page, ident, posted, problem, redirect, signed_in
from fiscus.web.portal.errors import conflict_message, field_errors

router = APIRouter(include_in_schema=False)
FormText = Annotated[str, Form()]
BILLABLE = ("trialing", "active", "past_due")


def _plans(page: Page, price_ids: set[int]) -> dict[int, dict[str, Any]]:
    """Each price as a customer reads it: product and plan name, unit price, interval."""
    if not price_ids:
        return {}
    p, v, pr = t.prices.c, t.variants.c, t.products.c
    with page.c.db.read() as conn:
        rows = conn.execute(
            select(
                p.id,
                p.unit_amount,
                p.currency,
                p.interval,
                p.interval_count,
                p.active,
                v.name,
                pr.name.label("product"),
            )
            .join(t.variants, v.id == p.variant_id)
            .join(t.products, pr.id == v.product_id)
            .where(p.organization_id == page.session.organization_id, p.id.in_(price_ids))
        ).all()
    return {
        int(r.id): {
            "id": int(r.id),
            "name": f"{r.product} · {r.name}",
            "price": format_money(Decimal(r.unit_amount), currency(r.currency), page.locale),
            "interval": (r.interval, r.interval_count),
            "currency": r.currency,
            "active": bool(r.active),
        }
        for r in rows
    }


def _date(page: Page, moment: Any) -> str:
    return format_date(moment, "medium", locale=page.locale) if moment else ""


def _subscription(page: Page, raw_id: int | str) -> tuple[dict[str, Any], list[tuple[int, Decimal]]] | None:
    """The session's customer's subscription and its items, or None (malformed, unknown, another's)."""
    subscription_id = ident(str(raw_id))
    if subscription_id is None:
        return None
    si = t.subscription_items.c
    try:
        with page.c.db.read() as conn:
            sub = actions.owned(conn, page.session, t.subscriptions, subscription_id, "subscription")
            items = [
                (int(r.price_id), Decimal(r.quantity))
                for r in conn.execute(
                    select(si.price_id, si.quantity)
                    .where(si.subscription_id == subscription_id)
                    .order_by(si.id)
                )
            ]
    except NotFoundError:
        return None
    return sub, items


@router.get("/portal/{slug}/subscriptions")
def subscriptions(slug: str, request: Request) -> Response:
    page = signed_in(request, slug)
    if isinstance(page, Response):
        return page
    s = page.session
    sc, si = t.subscriptions.c, t.subscription_items.c
    cursor = paging.cursor_of(request)
    with page.c.db.read() as conn:
        found, more = cursor_rows(
            conn,
            select(t.subscriptions).where(
                sc.organization_id == s.organization_id, sc.customer_id == s.customer_id
            ),
            t.subscriptions,
            limit=paging.PAGE_SIZE,
            starting_after=cursor.after,
            ending_before=cursor.before,
        )
        subs = [dict(r._mapping) for r in found]
        items: dict[int, list[tuple[int, Decimal]]] = {}
        for r in conn.execute(
            select(si.subscription_id, si.price_id, si.quantity)
            .where(si.subscription_id.in_([x["id"] for x in subs]))
            .order_by(si.id)
        ):
            items.setdefault(int(r.subscription_id), []).append((int(r.price_id), Decimal(r.quantity)))
        codes = codes_allowed(conn, s.organization_id)  # issue 17: customers may enter promotion codes
    plans = _plans(page, {p for lst in items.values() for p, _q in lst})
    settings = page.settings
    rows = []
    for sub in subs:
        billable = sub["status"] in BILLABLE
        nxt = actions.next_invoice(page.c.db, s, sub["id"], now=page.c.clock.now()) if billable else None
        usage = current_usage(page.c.db, page.c.clock, s, sub["id"]) if billable else None
        sub_items = items.get(sub["id"], [])
        changeable = (
            billable
            and sub["cancel_at"] is None
            and len(sub_items) == 1
            and (settings.allow_quantity_change or (settings.allow_plan_change and bool(settings.plans)))
        )
        status = "canceling" if billable and sub["cancel_at"] else sub["status"]
        rows.append(
            {
                "id": sub["id"],
                "items": [
                    {"plan": plans[p]["name"], "price": plans[p]["price"], "quantity": f"{q.normalize():f}"}
                    for p, q in sub_items
                ],
                "status": status,
                "status_label": page.t[f"sub_{status}"],
                "period": (
                    f"{_date(page, sub['current_period_start'])} – {_date(page, sub['current_period_end'])}"
                    if sub["current_period_start"]
                    else ""
                ),
                "next": _next_text(page, nxt, usage),
                "usage": _usage_rows(page, usage),
                "ends": page.t["ends_on"].format(date=_date(page, sub["cancel_at"]))
                if sub["cancel_at"]
                else "",
                "can_change": changeable,
                "can_cancel": billable and sub["cancel_at"] is None and settings.allow_cancel,
                "can_code": billable and codes,
            }
        )
    done = page.t.get(f"done_{request.query_params.get('done', '')}", "")
    context = {
        "title": page.t["subscriptions_heading"],
        "section": "subscriptions",
        "subs": rows,
        "pages": paging.pager(f"{page.base}/subscriptions", [x["id"] for x in subs], more, cursor),
        "pages_label": page.t["pages"],
        "done": done,
    }
    return page.render("subscriptions.html", context)


def _next_text(page: Page, nxt: actions.NextInvoice | None, usage: CurrentUsage | None) -> str:
    """The next invoice with the usage so far: usage is billed in arrears, after the period ends,
    so the next invoice the customer gets carries it as well as the next period's advance."""
    if nxt is None and usage is None:
        return ""
    if nxt is None:
        assert usage is not None
        return page.t["next_invoice_text"].format(
            amount=page.money(usage.total_minor, usage.currency),
            period=f"{_date(page, usage.period_start)} – {_date(page, usage.period_end)}",
        )
    values = {
        "amount": page.money(nxt.total_minor, nxt.currency),
        "period": f"{_date(page, nxt.period_start)} – {_date(page, nxt.period_end)}",
    }
    if usage is None:
        return page.t["next_invoice_text"].format(**values)
    return page.t["next_with_usage"].format(usage=page.money(usage.total_minor, usage.currency), **values)


def _usage_rows(page: Page, usage: CurrentUsage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    cur = usage.currency
    return {
        "summary": page.t["usage_text"].format(
            amount=page.money(usage.subtotal_minor, cur),
            period=f"{_date(page, usage.period_start)} – {_date(page, usage.period_end)}",
        ),
        "charges": [
            {
                "metric": c.metric,
                "code": c.code,
                "amount_raw": f"{from_minor(c.amount_minor, cur):f}",
                "group": c.group,
                "quantity": format_decimal(c.quantity, locale=page.locale),
                "amount": page.money(c.amount_minor, cur),
            }
            for c in usage.charges
        ],
    }


def _options(page: Page, sub: dict[str, Any], current: int) -> list[dict[str, Any]]:
    """The current plan and, if plan changes are allowed, the offered plans that fit (same interval
    and currency, still sold)."""
    offered = set(page.settings.plans) if page.settings.allow_plan_change else set()
    plans = _plans(page, offered | {current})
    key = (sub["interval"], sub["interval_count"])
    return [
        {**plans[p], "selected": p == current}
        for p in [current, *sorted(offered - {current})]
        if p in plans
        and (
            p == current
            or (
                plans[p]["interval"] == key and plans[p]["currency"] == sub["currency"] and plans[p]["active"]
            )
        )
    ]


def _change_page(
    page: Page,
    sub: dict[str, Any],
    price_id: int,
    quantity: str,
    *,
    preview: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    current = _subscription(page, sub["id"])
    current_price = current[1][0][0] if current and current[1] else price_id
    context = {
        "title": page.t["change_heading"],
        "section": "subscriptions",
        "sub": sub,
        "options": [{**o, "selected": o["id"] == price_id} for o in _options(page, sub, current_price)],
        "quantity": quantity,
        "quantity_editable": page.settings.allow_quantity_change,
        "preview": preview,
        "errors": errors or {},
        "price_id": price_id,
    }
    return page.render("change.html", context, status=status)


@router.get("/portal/{slug}/subscriptions/{subscription_id}/change")
def change_form(slug: str, subscription_id: str, request: Request) -> Response:
    page = signed_in(request, slug)
    if isinstance(page, Response):
        return page
    found = _subscription(page, subscription_id)
    if found is None or len(found[1]) != 1 or found[0]["status"] not in BILLABLE:
        return problem(page, "not_found_heading", "not_found_text", status=404)
    sub, [(price_id, quantity)] = found
    return _change_page(page, sub, price_id, f"{quantity.normalize():f}")


@router.post("/portal/{slug}/subscriptions/{subscription_id}/change")
def change(
    slug: str,
    subscription_id: str,
    request: Request,
    csrf_token: FormText = "",
    price_id: FormText = "",
    quantity: FormText = "",
    step: FormText = "preview",
) -> Response:
    """`step=preview` shows the proration and a confirm button; `step=confirm` makes the change."""
    page = posted(request, slug, csrf_token)
    if isinstance(page, Response):
        return page
    found = _subscription(page, subscription_id)
    if found is None or not found[1]:
        return problem(page, "not_found_heading", "not_found_text", status=404)
    sub, [(current_price, current_qty), *_rest] = found
    chosen = int(price_id) if price_id.isdigit() and len(price_id) < 19 else current_price
    qty_text = quantity or f"{current_qty.normalize():f}"
    try:
        qty = actions.parse_quantity(qty_text)
        result = actions.change_plan(
            page.c.db, page.c.clock, page.session, sub["id"], chosen, qty, preview=step != "confirm"
        )
    except actions.PortalActionNotAllowedError:
        return problem(page, "forbidden_heading", "forbidden_text", status=403)
    except NotFoundError:
        return problem(page, "not_found_heading", "not_found_text", status=404)
    except ValidationError as exc:
        errors = field_errors(page.t, exc)
        return _change_page(page, sub, chosen, qty_text, errors=errors, status=422)
    except DomainError as exc:
        errors = {"price_id": conflict_message(page.t, exc)}
        return _change_page(page, sub, chosen, qty_text, errors=errors, status=409)
    if step == "confirm":
        return redirect(f"{page.base}/subscriptions?done=changed")
    computed = result.computed
    preview: dict[str, Any] = {
        "lines": [],
        "total": "",
        "until": _date(page, result.period.end) if result.period else "",
    }
    if computed is not None:
        cur = computed.currency
        preview["lines"] = [
            {"description": ln.source.description, "amount": page.money(ln.amount_minor, cur)}
            for ln in computed.lines
        ]
        preview["total"] = page.money(computed.total_minor, cur)
    return _change_page(page, sub, chosen, qty_text, preview=preview)


def _cancel_page(page: Page, sub: dict[str, Any], error: str = "", status: int = 200) -> Response:
    context = {
        "title": page.t["cancel_heading"],
        "section": "subscriptions",
        "sub": sub,
        "reasons": actions.CANCEL_REASONS,
        "error": error,
        "ends": _date(page, sub["current_period_end"]),
    }
    return page.render("cancel.html", context, status=status)


@router.get("/portal/{slug}/subscriptions/{subscription_id}/cancel")
def cancel_form(slug: str, subscription_id: str, request: Request) -> Response:
    page = signed_in(request, slug)
    if isinstance(page, Response):
        return page
    found = _subscription(page, subscription_id)
    if found is None or found[0]["status"] not in BILLABLE:
        return problem(page, "not_found_heading", "not_found_text", status=404)
    if not page.settings.allow_cancel:
        return problem(page, "forbidden_heading", "forbidden_text", status=403)
    return _cancel_page(page, found[0])


@router.post("/portal/{slug}/subscriptions/{subscription_id}/cancel")
def cancel(
    slug: str,
    subscription_id: str,
    request: Request,
    csrf_token: FormText = "",
    reason: FormText = "",
    comment: FormText = "",
) -> Response:
    page = posted(request, slug, csrf_token)
    if isinstance(page, Response):
        return page
    found = _subscription(page, subscription_id)
    if found is None:
        return problem(page, "not_found_heading", "not_found_text", status=404)
    try:
        actions.cancel_at_period_end(page.c.db, page.c.clock, page.session, found[0]["id"], reason, comment)
    except actions.PortalActionNotAllowedError:
        return problem(page, "forbidden_heading", "forbidden_text", status=403)
    except NotFoundError:
        return problem(page, "not_found_heading", "not_found_text", status=404)
    except ValidationError as exc:
        errors = field_errors(page.t, exc)
        return _cancel_page(page, found[0], errors.get("reason") or next(iter(errors.values())), status=422)
    except DomainError as exc:
        return _cancel_page(page, found[0], conflict_message(page.t, exc), status=409)
    return redirect(f"{page.base}/subscriptions?done=canceled")
