"""Edits of what the catalog and settings pages show: a product's name and description (`catalog.write`)
and a webhook endpoint's URL, events and description (`settings.write`), posted from forms on those
pages. Each goes through services/console_admin.py (the API's own service and checks, the operator as
the audit actor); a refusal is shown next to its field on the page it came from, what was typed kept."""

from __future__ import annotations

from fastapi import Response

from fiscus.domain.errors import DomainError
from fiscus.services import console_admin as admin
from fiscus.web.console import forms as f
from fiscus.web.console.access_pages import webhook
from fiscus.web.console.catalog_pages import product
from fiscus.web.console.routing import Ctx, org_page


@org_page("/catalog/products/{product_id}", methods=("POST",), permission="catalog.write")
def edit_product(ctx: Ctx, product_id: int) -> Response:
    try:
        admin.update_product(
            ctx.c.db,
            ctx.c.clock,
            ctx.actor,
            product_id,
            name=f.text(ctx.form, "name"),
            description=ctx.form.get("detail", ""),
        )
    except DomainError as exc:
        errors, alert = f.errors_of(exc)
        return product(ctx, product_id, errors=errors, alert=alert, failed="product", status=f.status_of(exc))
    return f.back(ctx, f"/catalog/products/{product_id}")


@org_page("/settings/webhooks/{endpoint_id}", methods=("POST",), permission="settings.write")
def edit_webhook(ctx: Ctx, endpoint_id: int) -> Response:
    try:
        admin.update_webhook(
            ctx.c.db,
            ctx.c.clock,
            ctx.actor,
            endpoint_id,
            url=f.text(ctx.form, "url"),
            event_types=f.listed(ctx.form, "event_types"),
            description=f.text(ctx.form, "description"),
            allow_private=ctx.c.settings.webhooks_allow_private,
        )
    except DomainError as exc:
        errors, alert = f.errors_of(exc)
        # `event_types.3` is the fourth of the comma-separated values typed in the one field
        shown = {("event_types" if k.startswith("event_types") else k): v for k, v in errors.items()}
        return webhook(ctx, endpoint_id, errors=shown, alert=alert, status=f.status_of(exc))
    return f.back(ctx, f"/settings/webhooks/{endpoint_id}")
