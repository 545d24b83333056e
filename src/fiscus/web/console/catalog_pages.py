"""The catalog in the console: products, their variants with limits, prices (create, archive) and the
tax categories prices name. Every role reads it; `catalog.write` (admin and finance, who set what is
charged) changes it through services/console_admin.py, the API's services behind the permission check.
Lists are pages of at most PAGE rows by id (keyset), never a whole table."""

from __future__ import annotations

from typing import Any, Final

from fastapi import Response
from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.domain.errors import DomainError, InvalidFieldError, NotFoundError
from fiscus.domain.periods import IntervalUnit
from fiscus.domain.tax import TaxCategory
from fiscus.queries.organizations import current_rates
from fiscus.services import console_admin as admin
from fiscus.services.common import get_scoped
from fiscus.web.console import auth
from fiscus.web.console import forms as f
from fiscus.web.console.routing import Ctx, org_page

PAGE: Final = 50
INTERVALS: Final = tuple(u.value for u in IntervalUnit)
CATEGORIES: Final = tuple(c.value for c in TaxCategory)


@org_page("/catalog")
def products(
    ctx: Ctx, *, errors: dict[str, str] | None = None, alert: str | None = None, status: int = 200
) -> Response:
    p = t.products.c
    after = f.whole(dict(ctx.request.query_params), "after")
    query = select(p.id, p.code, p.name, p.disabled, p.created_at).where(p.organization_id == ctx.org)
    if isinstance(after, int):
        query = query.where(p.id > after)
    with ctx.c.db.read() as conn:
        rows = [dict(r) for r in conn.execute(query.order_by(p.id).limit(PAGE + 1)).mappings()]
        ids = [r["id"] for r in rows[:PAGE]]
        counts: dict[int, int] = dict(
            conn.execute(
                select(t.variants.c.product_id, func.count())
                .where(t.variants.c.organization_id == ctx.org, t.variants.c.product_id.in_(ids))
                .group_by(t.variants.c.product_id)
            ).all()
        )
    more = len(rows) > PAGE
    context = {
        "title": "Catalog",
        "rows": rows[:PAGE],
        "variants": counts,
        "next_after": rows[PAGE - 1]["id"] if more else None,
        "form": ctx.form if errors or alert else {},
        "errors": errors or {},
        "alert": alert,
        "saved": ctx.request.query_params.get("saved") == "1",
    }
    return ctx.page("console/catalog.html", context, status=status)


@org_page("/catalog/products", methods=("POST",), permission="catalog.write")
def create_product(ctx: Ctx) -> Response:
    try:
        pid = admin.create_product(
            ctx.c.db, ctx.c.clock, ctx.actor, code=f.text(ctx.form, "code"), name=f.text(ctx.form, "name")
        )
    except DomainError as exc:
        errors, alert = f.errors_of(exc)
        return products(ctx, errors=errors, alert=alert, status=f.status_of(exc))
    return f.back(ctx, f"/catalog/products/{pid}")


@org_page("/catalog/products/{product_id}")
def product(
    ctx: Ctx,
    product_id: int,
    *,
    errors: dict[str, str] | None = None,
    alert: str | None = None,
    failed: str = "",
    status: int = 200,
) -> Response:
    """A product with its variants (and their limits) and every price of each variant."""
    v, pr = t.variants.c, t.prices.c
    with ctx.c.db.read() as conn:
        row = get_scoped(conn, t.products, ctx.org, product_id)
        variants = [
            dict(r)
            for r in conn.execute(
                select(v.id, v.code, v.name, v.limits, v.created_at)
                .where(v.organization_id == ctx.org, v.product_id == product_id)
                .order_by(v.id)
                .limit(200)
            ).mappings()
        ]
        prices: dict[int, list[dict[str, Any]]] = {x["id"]: [] for x in variants}
        for r in conn.execute(
            select(t.prices)
            .where(pr.organization_id == ctx.org, pr.variant_id.in_(list(prices)))
            .order_by(pr.variant_id, pr.id)
            .limit(2000)
        ).mappings():
            prices[r["variant_id"]].append(
                {**r, "shown": f.amount_text(r["unit_amount"], r["currency"], auth.language(ctx.request))}
            )
        default_currency = conn.execute(
            select(t.organizations.c.default_currency).where(t.organizations.c.id == ctx.org)
        ).scalar()
    context = {
        "title": row["name"],
        "product": row,
        "variants": variants,
        "prices": prices,
        "intervals": INTERVALS,
        "categories": CATEGORIES,
        "default_currency": default_currency,
        "form": ctx.form if errors or alert else {},
        "failed": failed,
        "errors": errors or {},
        "alert": alert,
        "saved": ctx.request.query_params.get("saved") == "1",
    }
    return ctx.page("console/catalog_product.html", context, status=status)


@org_page("/catalog/products/{product_id}/variants", methods=("POST",), permission="catalog.write")
def create_variant(ctx: Ctx, product_id: int) -> Response:
    try:
        admin.create_variant(
            ctx.c.db,
            ctx.c.clock,
            ctx.actor,
            product_id,
            code=f.text(ctx.form, "code"),
            name=f.text(ctx.form, "name"),
            limits=f.listed(ctx.form, "limits"),
        )
    except DomainError as exc:
        errors, alert = f.errors_of(exc)
        return product(ctx, product_id, errors=errors, alert=alert, failed="variant", status=f.status_of(exc))
    return f.back(ctx, f"/catalog/products/{product_id}")


def _variant_product(ctx: Ctx, variant_id: int) -> int:
    with ctx.c.db.read() as conn:
        return int(get_scoped(conn, t.variants, ctx.org, variant_id)["product_id"])


@org_page("/catalog/variants/{variant_id}/prices", methods=("POST",), permission="catalog.write")
def create_price(ctx: Ctx, variant_id: int) -> Response:
    product_id = _variant_product(ctx, variant_id)
    form = ctx.form
    interval = f.optional(form, "interval")
    count = f.whole(form, "interval_count")
    try:
        if isinstance(count, str):
            raise InvalidFieldError("interval_count", "must be a whole number")
        admin.create_price(
            ctx.c.db,
            ctx.c.clock,
            ctx.actor,
            variant_id,
            currency_code=f.text(form, "currency").upper(),
            unit_amount=f.text(form, "unit_amount"),
            interval=interval,
            interval_count=1 if count is None else count,
            tax_inclusive=form.get("tax_inclusive") == "on",
            tax_category=f.text(form, "tax_category") or TaxCategory.STANDARD.value,
        )
    except DomainError as exc:
        errors, alert = f.errors_of(exc)
        return product(
            ctx, product_id, errors=errors, alert=alert, failed=f"price-{variant_id}", status=f.status_of(exc)
        )
    return f.back(ctx, f"/catalog/products/{product_id}")


@org_page("/catalog/prices/{price_id}/{change}", methods=("GET", "POST"), permission="catalog.write")
def price_state(ctx: Ctx, price_id: int, change: str) -> Response:
    """GET: the confirm step of archiving (or offering again) a price. POST: do it."""
    if change not in ("archive", "unarchive"):
        raise NotFoundError("page", change)
    with ctx.c.db.read() as conn:
        price = get_scoped(conn, t.prices, ctx.org, price_id)
        product_id = conn.execute(
            select(t.variants.c.product_id).where(t.variants.c.id == price["variant_id"])
        ).scalar_one()
        subscribed = conn.execute(
            select(func.count()).where(t.subscription_items.c.price_id == price_id)
        ).scalar_one()
    if ctx.request.method == "POST":
        admin.set_price_active(ctx.c.db, ctx.c.clock, ctx.actor, price_id, active=change == "unarchive")
        return f.back(ctx, f"/catalog/products/{product_id}")
    context = {
        "title": change,
        "price": {
            **price,
            "shown": f.amount_text(price["unit_amount"], price["currency"], auth.language(ctx.request)),
        },
        "change": change,
        "product_id": product_id,
        "subscribed": subscribed,
    }
    return ctx.page("console/catalog_price.html", context)


@org_page("/catalog/tax-categories")
def tax_categories(ctx: Ctx) -> Response:
    """The categories a price names, the organisation's rate for each in its country (changed in the
    organisation settings), and how many active prices use each."""
    pr, o = t.prices.c, t.organizations.c
    with ctx.c.db.read() as conn:
        country = str(conn.execute(select(o.country).where(o.id == ctx.org)).scalar_one())
        rates = current_rates(conn, ctx.org, country)
        used: dict[str, int] = dict(
            conn.execute(
                select(pr.tax_category, func.count())
                .where(pr.organization_id == ctx.org, pr.active.is_(True))
                .group_by(pr.tax_category)
            ).all()
        )
    rows = [
        {
            "category": c,
            "rate": rates.get(c) if c in rates else ("0" if c == TaxCategory.ZERO.value else None),
            "prices": used.get(c, 0),
        }
        for c in CATEGORIES
    ]
    return ctx.page("console/catalog_tax.html", {"title": "Tax categories", "rows": rows, "country": country})
