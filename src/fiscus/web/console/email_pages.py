"""The organisation's email settings and dunning policy in the console (everyone reads them; an admin,
`settings.write`, changes them through `services/emails/settings.py`, the API's own checks), and a
preview of each email kind with real data (`services/emails/preview.py`). The preview's HTML is served
by its own route with a CSP that allows no script, no network and no form (and `sandbox`), since an
email's HTML carries inline styles the console's own policy refuses."""

from __future__ import annotations

from typing import Any, Final

from fastapi import Response
from fastapi.responses import HTMLResponse

from fiscus.domain.email import ALWAYS_SENT, FINAL_ACTIONS, EmailKind
from fiscus.domain.errors import DomainError, InvalidFieldError
from fiscus.services.emails.preview import preview_email
from fiscus.services.emails.settings import read_email_settings, update_email_settings
from fiscus.web.console.routing import Ctx, org_page

SWITCHABLE: Final = tuple(k.value for k in EmailKind if k not in ALWAYS_SENT)
PREVIEW_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; sandbox"
)


def _settings_page(
    ctx: Ctx, *, form: dict[str, str] | None = None, error: Any = None, status: int = 200
) -> Response:
    with ctx.c.db.read() as conn:
        current = read_email_settings(conn, ctx.org)
    context = {
        "title": "Emails",
        "settings": current,
        "form": form or {},
        "error": error,
        "kinds": [k.value for k in EmailKind],
        "switchable": SWITCHABLE,
        "final_actions": FINAL_ACTIONS,
        "saved": ctx.request.query_params.get("saved") == "1",
    }
    return ctx.page("console/email_settings.html", context, status=status)


@org_page("/email-settings")
def email_settings(ctx: Ctx) -> Response:
    return _settings_page(ctx)


def _text(form: dict[str, str], name: str) -> str | None:
    value = form.get(name, "").strip()
    return value or None


def _number(form: dict[str, str], name: str) -> int | None:
    value = form.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 6:
        raise InvalidFieldError(name, "must be a whole number of days")
    return int(value)


def _list(form: dict[str, str], name: str) -> list[str]:
    return [p.strip() for p in form.get(name, "").replace(";", ",").split(",") if p.strip()]


def _changes(form: dict[str, str]) -> dict[str, Any]:
    """The form as the API's PATCH body: every field given (the form shows them all)."""
    retry: list[int] = []
    for i, part in enumerate(_list(form, "dunning.retry_days")):
        if not part.isdigit() or len(part) > 4:
            raise InvalidFieldError(f"dunning.retry_days.{i}", "must be a whole number of days")
        retry.append(int(part))
    return {
        "from_address": _text(form, "from_address"),
        "from_name": _text(form, "from_name"),
        "reply_to": _text(form, "reply_to"),
        "brand_color": _text(form, "brand_color"),
        "disabled": [k for k in SWITCHABLE if form.get(f"disabled.{k}") == "on"],
        "trial_notice_days": _number(form, "trial_notice_days"),
        "renewal_notice_days": _number(form, "renewal_notice_days"),
        "dunning": {
            "retry_days": retry,
            "final_action": _text(form, "dunning.final_action"),
            "emails": _list(form, "dunning.emails") or None,
        },
    }


@org_page("/email-settings", methods=("POST",), permission="settings.write")
def save_email_settings(ctx: Ctx) -> Response:
    try:
        update_email_settings(ctx.c.db, ctx.c.clock, ctx.org, _changes(ctx.form), actor=ctx.actor.audit)
    except DomainError as exc:
        return _settings_page(ctx, form=ctx.form, error=exc, status=422)
    return Response(status_code=303, headers={"Location": f"/console/{ctx.org}/email-settings?saved=1"})


def _preview(ctx: Ctx) -> tuple[str, int, tuple[str, str, str] | None, DomainError | None]:
    kind = ctx.request.query_params.get("kind", EmailKind.INVOICE_ISSUED.value)
    raw = ctx.request.query_params.get("id", "")
    object_id = int(raw) if raw.isdigit() and len(raw) < 19 else 0
    if not object_id:
        return kind, 0, None, None
    try:
        with ctx.c.db.read() as conn:
            return kind, object_id, preview_email(conn, ctx.org, kind, object_id), None
    except DomainError as exc:
        return kind, object_id, None, exc


@org_page("/emails/preview")
def email_preview(ctx: Ctx) -> Response:
    kind, object_id, shown, error = _preview(ctx)
    context = {
        "title": "Email preview",
        "kinds": [k.value for k in EmailKind],
        "kind": kind,
        "object_id": object_id or "",
        "shown": shown,
        "error": error,
    }
    return ctx.page("console/email_preview.html", context, status=200 if error is None else 404)


@org_page("/emails/preview.html")
def email_preview_html(ctx: Ctx) -> Response:
    """The email's HTML as the customer would see it, alone, under a CSP that runs nothing."""
    _, _, shown, _ = _preview(ctx)
    if shown is None:
        return Response("no such email", status_code=404, media_type="text/plain")
    headers = {
        "Content-Security-Policy": PREVIEW_CSP,
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }
    return HTMLResponse(shown[2], headers=headers)
