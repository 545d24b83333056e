"""Settings in the console: the organisation (everything `POST /api/v1/organization` offers, the logo),
number series with their next numbers, and how payments are collected (the retry schedule is the
dunning policy of the email settings page, linked, not repeated). Every role reads them; an admin
(`settings.write`) changes them through services/console_admin.py, the API's services.

A save sends the service only the fields that differ from what is stored, as a PATCH would: a rule
over several settings is then a 409 field conflict or a 422 exactly as the API answers that change."""

from __future__ import annotations

import base64
from typing import Any, Final

from fastapi import Response

from fiscus.domain.documents import DocumentType
from fiscus.domain.errors import DomainError, InvalidFieldError
from fiscus.domain.logo import accept_logo
from fiscus.domain.organization import LOCALES
from fiscus.queries import organizations as q
from fiscus.queries.payments import payment_settings
from fiscus.services import console_admin as admin
from fiscus.web.console import forms as f
from fiscus.web.console.routing import Ctx, org_page

TEXTS: Final = ("legal_name", "trading_name", "email", "vat_id", "tax_id")
CHOICES: Final = ("country", "default_currency", "locale", "timezone")
ENUMS: Final = {
    "subscription_document": ("invoice", "proforma"),
    "order_document": ("invoice", "proforma"),
    "tax_rounding": ("document", "line"),
    "cancel_issued_ahead": ("void", "credit_note"),
}
FLAGS: Final = ("vat_registered", "auto_issue", "facturx_enabled", "customer_promotion_codes")
BANK_FIELDS: Final = ("label", "bank_name", "iban", "bic", "account_number", "routing_number", "currency")
MAX_ACCOUNTS: Final = 5


@org_page("/settings")
def hub(ctx: Ctx) -> Response:
    return ctx.page("console/settings.html", {"title": "Settings"})


def _organization(ctx: Ctx) -> dict[str, Any]:
    with ctx.c.db.read() as conn:
        org = q.get_organization(conn, ctx.org)
        logo = None
        if org["logo"]:
            content_type, data, _ = q.current_logo(conn, ctx.org)
            logo = f"data:{content_type};base64,{base64.b64encode(data).decode()}"
    return {**org, "logo_data": logo}


def _org_page(
    ctx: Ctx, *, errors: dict[str, str] | None = None, alert: str | None = None, status: int = 200
) -> Response:
    org = _organization(ctx)
    accounts = list(org["bank_accounts"])
    context = {
        "title": "Organisation",
        "o": org,
        "form": ctx.form if errors or alert else {},
        "errors": errors or {},
        "alert": alert,
        "saved": ctx.request.query_params.get("saved") == "1",
        "enums": ENUMS,
        "flags": FLAGS,
        "locales": LOCALES,
        "accounts": accounts + [{}] * max(0, min(MAX_ACCOUNTS, len(accounts) + 1) - len(accounts)),
        "bank_fields": BANK_FIELDS,
        "removed": ctx.request.query_params.get("removed", ""),
    }
    return ctx.page("console/settings_org.html", context, status=status)


@org_page("/settings/organization")
def organization(ctx: Ctx) -> Response:
    return _org_page(ctx)


def _accounts(form: dict[str, str]) -> list[dict[str, str]]:
    out = []
    for i in range(MAX_ACCOUNTS):
        row = {k: f.text(form, f"bank_accounts.{i}.{k}") for k in BANK_FIELDS}
        if any(row.values()):
            out.append({k: val for k, val in row.items() if val})
    return out


def changes(form: dict[str, str], org: dict[str, Any]) -> dict[str, Any]:
    """The form as the API's PATCH body: only what differs from the stored settings."""
    out: dict[str, Any] = {}
    for name in TEXTS:
        value = f.text(form, name)
        if value != (org[name] or ""):
            out[name] = value or None
    for name in (*CHOICES, *ENUMS):
        value = f.text(form, name)
        if value != (org[name] or ""):
            out[name] = value
    for name in FLAGS:
        flag = form.get(name) == "on"
        if flag != org[name]:
            out[name] = flag
    paper = f.text(form, "paper_size")
    if paper != ("" if org["paper_size_from_country"] else org["paper_size"]):
        out["paper_size"] = paper or None
    terms = f.whole(form, "payment_terms_days")
    if terms != org["payment_terms_days"]:
        if not isinstance(terms, int):
            raise InvalidFieldError("payment_terms_days", "must be a whole number of days between 0 and 365")
        out["payment_terms_days"] = terms
    address: dict[str, Any] = {}
    lines = [f.text(form, "address.lines.0"), f.text(form, "address.lines.1")]
    if [x for x in lines if x] != list(org["address"]["lines"]):
        address["lines"] = lines
    for key in ("city", "postal_code", "region"):
        if f.text(form, f"address.{key}") != (org["address"][key] or ""):
            address[key] = f.text(form, f"address.{key}")
    if address:
        out["address"] = address
    rates = {k: f.optional(form, f"vat_rates.{k}") for k in ("standard", "reduced")}
    rates = {k: val for k, val in rates.items() if val is not None and val != org["vat_rates"][k]}
    if rates:
        out["vat_rates"] = rates
    stored = [{k: val for k, val in a.items() if val} for a in org["bank_accounts"]]
    accounts = _accounts(form)
    if accounts != stored:
        out["bank_accounts"] = accounts
    footers = {code: f.text(form, f"footers.{code}") for code in LOCALES}
    footers = {k: val for k, val in footers.items() if val != (org["footers"].get(k) or "")}
    if footers:
        out["footers"] = footers
    return out


@org_page("/settings/organization", methods=("POST",), permission="settings.write")
def save_organization(ctx: Ctx) -> Response:
    try:
        admin.update_settings(ctx.c.db, ctx.c.clock, ctx.actor, changes(ctx.form, _organization(ctx)))
    except DomainError as exc:
        errors, alert = f.errors_of(exc)
        return _org_page(ctx, errors=errors, alert=alert, status=f.status_of(exc))
    return f.back(ctx, "/settings/organization")


@org_page("/settings/logo", methods=("POST",), permission="settings.write")
def upload_logo(ctx: Ctx) -> Response:
    """A PNG or SVG; an SVG is rebuilt from whitelisted elements (no script, handlers, external
    references), as the API's upload does; what was dropped is shown."""
    content_type, data = ctx.files.get("file", (None, b""))
    try:
        logo = accept_logo(data, content_type, "file")
        admin.set_logo(ctx.c.db, ctx.c.clock, ctx.actor, logo)
    except DomainError as exc:
        errors, alert = f.errors_of(exc)
        return _org_page(ctx, errors=errors, alert=alert, status=f.status_of(exc))
    removed = ",".join(logo.removed)[:200]
    path = "/settings/organization" + (f"?removed={removed}" if removed else "")
    return f.back(ctx, path)


@org_page("/settings/logo/remove", methods=("GET", "POST"), permission="settings.write")
def remove_logo(ctx: Ctx) -> Response:
    if ctx.request.method == "POST":
        admin.remove_logo(ctx.c.db, ctx.c.clock, ctx.actor)
        return f.back(ctx, "/settings/organization")
    return ctx.page(
        "console/confirm.html",
        {
            "title": "Remove logo",
            "what": "remove_logo",
            "action": "/settings/logo/remove",
            "cancel": "/settings/organization",
        },
    )


def _series_page(
    ctx: Ctx, *, errors: dict[str, str] | None = None, alert: str | None = None, status: int = 200
) -> Response:
    with ctx.c.db.read() as conn:
        org = q.get_organization(conn, ctx.org)
    context = {
        "title": "Number series",
        "series": org["number_series"],
        "types": [d.value for d in DocumentType],
        "form": ctx.form if errors or alert else {},
        "errors": errors or {},
        "alert": alert,
        "saved": ctx.request.query_params.get("saved") == "1",
    }
    return ctx.page("console/settings_series.html", context, status=status)


@org_page("/settings/number-series")
def number_series(ctx: Ctx) -> Response:
    return _series_page(ctx)


@org_page("/settings/number-series", methods=("POST",), permission="settings.write")
def save_series(ctx: Ctx) -> Response:
    form = ctx.form
    try:
        next_value = f.whole(form, "next_value")
        if isinstance(next_value, str):
            raise InvalidFieldError("next_value", "must be a whole number from 1")
        admin.set_series(
            ctx.c.db,
            ctx.c.clock,
            ctx.actor,
            f.text(form, "document_type"),
            f.text(form, "series"),
            number_format=f.optional(form, "format"),
            next_value=next_value,
        )
    except DomainError as exc:
        errors, alert = f.errors_of(exc)
        return _series_page(ctx, errors=errors, alert=alert, status=f.status_of(exc))
    return f.back(ctx, "/settings/number-series")


def _payments_page(
    ctx: Ctx, *, errors: dict[str, str] | None = None, alert: str | None = None, status: int = 200
) -> Response:
    with ctx.c.db.read() as conn:
        current = payment_settings(conn, ctx.org)
    context = {
        "title": "Payments",
        "p": current,
        "form": ctx.form if errors or alert else {},
        "errors": errors or {},
        "alert": alert,
        "saved": ctx.request.query_params.get("saved") == "1",
    }
    return ctx.page("console/settings_payments.html", context, status=status)


@org_page("/settings/payments")
def payments(ctx: Ctx) -> Response:
    return _payments_page(ctx)


@org_page("/settings/payments", methods=("POST",), permission="settings.write")
def save_payments(ctx: Ctx) -> Response:
    try:
        admin.update_payment_collection(
            ctx.c.db,
            ctx.c.clock,
            ctx.actor,
            auto_collect=ctx.form.get("auto_collect") == "on",
            capture_mode=f.text(ctx.form, "capture_mode"),
        )
    except DomainError as exc:
        errors, alert = f.errors_of(exc)
        return _payments_page(ctx, errors=errors, alert=alert, status=f.status_of(exc))
    return f.back(ctx, "/settings/payments")
