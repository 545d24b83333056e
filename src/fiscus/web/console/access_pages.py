"""Who and what reaches the organisation from outside: webhook endpoints with their delivery log and
redelivery (every role reads; `settings.write` changes), API keys (`api_keys.manage`: create with the
secret shown once, prefix and last use, revoke) and operators with their roles (`operators.manage`:
invite with a one-time set-password link, change a role, remove a membership, disable a login). Writes
go through services/console_admin.py and services/operator_roles.py; a secret or link is shown in the
answer to the post only, never stored readable."""

from __future__ import annotations

from typing import Any, Final

from fastapi import Response
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.domain.errors import DomainError, NotFoundError
from fiscus.services import console_admin as admin
from fiscus.services import operator_roles as roles
from fiscus.services.access import list_api_keys
from fiscus.services.common import get_scoped
from fiscus.services.operators import Role
from fiscus.web.console import forms as f
from fiscus.web.console.routing import Ctx, org_page

DELIVERIES: Final = 50
ROLES: Final = tuple(r.value for r in Role)


def _answer(
    ctx: Ctx,
    template: str,
    context: dict[str, Any],
    *,
    errors: dict[str, str] | None,
    alert: str | None,
    status: int,
) -> Response:
    extra = {
        "form": ctx.form if errors or alert else {},
        "errors": errors or {},
        "alert": alert,
        "saved": ctx.request.query_params.get("saved") == "1",
    }
    return ctx.page(template, {**context, **extra}, status=status)


def _failed(exc: DomainError) -> dict[str, Any]:
    errors, alert = f.errors_of(exc)
    return {"errors": errors, "alert": alert, "status": f.status_of(exc)}


# --- webhooks ----------------------------------------------------------------------------------------


def _webhooks(
    ctx: Ctx,
    *,
    secret: tuple[int, str] | None = None,
    errors: dict[str, str] | None = None,
    alert: str | None = None,
    status: int = 200,
) -> Response:
    e = t.webhook_endpoints.c
    with ctx.c.db.read() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                select(e.id, e.url, e.description, e.event_types, e.enabled, e.created_at)
                .where(e.organization_id == ctx.org)
                .order_by(e.id)
                .limit(200)
            ).mappings()
        ]
    context = {"title": "Webhooks", "rows": rows, "secret": secret}
    return _answer(ctx, "console/webhooks.html", context, errors=errors, alert=alert, status=status)


@org_page("/settings/webhooks")
def webhooks(ctx: Ctx) -> Response:
    return _webhooks(ctx)


@org_page("/settings/webhooks", methods=("POST",), permission="settings.write")
def create_webhook(ctx: Ctx) -> Response:
    try:
        created = admin.create_webhook(
            ctx.c.db,
            ctx.c.clock,
            ctx.actor,
            url=f.text(ctx.form, "url"),
            event_types=f.listed(ctx.form, "event_types"),
            description=f.text(ctx.form, "description"),
            allow_private=ctx.c.settings.webhooks_allow_private,
        )
    except DomainError as exc:
        return _webhooks(ctx, **_failed(exc))
    return _webhooks(ctx, secret=created, status=201)


@org_page("/settings/webhooks/{endpoint_id}")
def webhook(
    ctx: Ctx,
    endpoint_id: int,
    *,
    alert: str | None = None,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> Response:
    """The endpoint and its newest deliveries (keyset pages by id), each with its last attempt."""
    d, a = t.webhook_deliveries.c, t.webhook_attempts.c
    before = f.whole(dict(ctx.request.query_params), "before")
    with ctx.c.db.read() as conn:
        endpoint = get_scoped(conn, t.webhook_endpoints, ctx.org, endpoint_id)
        query = select(
            d.id, d.event_type, d.status, d.attempts, d.next_attempt_at, d.last_attempt_at, d.created_at
        ).where(d.organization_id == ctx.org, d.endpoint_id == endpoint_id)
        if isinstance(before, int):
            query = query.where(d.id < before)
        rows = [dict(r) for r in conn.execute(query.order_by(d.id.desc()).limit(DELIVERIES + 1)).mappings()]
        shown = rows[:DELIVERIES]
        last: dict[int, dict[str, Any]] = {}
        for r in conn.execute(
            select(a.delivery_id, a.status_code, a.error, a.attempted_at)
            .where(a.organization_id == ctx.org, a.delivery_id.in_([x["id"] for x in shown]))
            .order_by(a.attempted_at, a.id)
        ).mappings():
            last[r["delivery_id"]] = dict(r)
    context = {
        "title": endpoint["url"],
        "endpoint": {
            k: endpoint[k] for k in ("id", "url", "description", "event_types", "enabled", "created_at")
        },
        "rows": [{**x, "last": last.get(x["id"])} for x in shown],
        "next_before": shown[-1]["id"] if len(rows) > DELIVERIES else None,
        "redelivered": ctx.request.query_params.get("redelivered", ""),
    }
    return _answer(ctx, "console/webhook.html", context, errors=errors, alert=alert, status=status)


@org_page("/settings/webhooks/{endpoint_id}/{change}", methods=("GET", "POST"), permission="settings.write")
def webhook_state(ctx: Ctx, endpoint_id: int, change: str) -> Response:
    """Disable (the API's delete: queued deliveries fail, the log stays) or enable again; GET confirms."""
    if change not in ("disable", "enable"):
        raise NotFoundError("page", change)
    with ctx.c.db.read() as conn:
        endpoint = get_scoped(conn, t.webhook_endpoints, ctx.org, endpoint_id)
    if ctx.request.method == "POST":
        admin.set_webhook_enabled(ctx.c.db, ctx.c.clock, ctx.actor, endpoint_id, enabled=change == "enable")
        return f.back(ctx, f"/settings/webhooks/{endpoint_id}")
    context = {
        "title": endpoint["url"],
        "what": f"webhook_{change}",
        "subject": endpoint["url"],
        "action": f"/settings/webhooks/{endpoint_id}/{change}",
        "cancel": f"/settings/webhooks/{endpoint_id}",
        "danger": change == "disable",
    }
    return ctx.page("console/confirm.html", context)


@org_page(
    "/settings/webhook-deliveries/{delivery_id}/redeliver", methods=("POST",), permission="settings.write"
)
def redeliver(ctx: Ctx, delivery_id: int) -> Response:
    with ctx.c.db.read() as conn:
        endpoint_id = get_scoped(conn, t.webhook_deliveries, ctx.org, delivery_id)["endpoint_id"]
    try:
        admin.redeliver(ctx.c.db, ctx.c.clock, ctx.actor, delivery_id)
    except DomainError as exc:
        return webhook(ctx, endpoint_id, alert=exc.message, status=f.status_of(exc))
    return f.back(ctx, f"/settings/webhooks/{endpoint_id}?redelivered={delivery_id}", flag="saved")


# --- API keys ----------------------------------------------------------------------------------------


def _keys(
    ctx: Ctx,
    *,
    issued: Any = None,
    errors: dict[str, str] | None = None,
    alert: str | None = None,
    status: int = 200,
) -> Response:
    keys = list_api_keys(ctx.c.db, ctx.org, include_revoked=True)
    context = {"title": "API keys", "keys": keys, "issued": issued}
    return _answer(ctx, "console/api_keys.html", context, errors=errors, alert=alert, status=status)


@org_page("/settings/api-keys", permission="api_keys.manage")
def api_keys(ctx: Ctx) -> Response:
    return _keys(ctx)


@org_page("/settings/api-keys", methods=("POST",), permission="api_keys.manage")
def create_api_key(ctx: Ctx) -> Response:
    try:
        issued = admin.create_api_key(ctx.c.db, ctx.c.clock, ctx.actor, name=f.text(ctx.form, "name"))
    except DomainError as exc:
        return _keys(ctx, **_failed(exc))
    return _keys(ctx, issued=issued, status=201)


@org_page("/settings/api-keys/{key_id}/revoke", methods=("GET", "POST"), permission="api_keys.manage")
def revoke_api_key(ctx: Ctx, key_id: int) -> Response:
    with ctx.c.db.read() as conn:
        key = get_scoped(conn, t.api_keys, ctx.org, key_id)
    if ctx.request.method == "POST":
        try:
            admin.revoke_api_key(ctx.c.db, ctx.c.clock, ctx.actor, key_id)
        except DomainError as exc:
            return _keys(ctx, **_failed(exc))
        return f.back(ctx, "/settings/api-keys")
    context = {
        "title": key["name"],
        "what": "revoke_key",
        "subject": f"{key['name']} ({key['prefix']})",
        "action": f"/settings/api-keys/{key_id}/revoke",
        "cancel": "/settings/api-keys",
        "danger": True,
    }
    return ctx.page("console/confirm.html", context)


# --- operators ---------------------------------------------------------------------------------------


def _operators(
    ctx: Ctx,
    *,
    link: str | None = None,
    errors: dict[str, str] | None = None,
    alert: str | None = None,
    status: int = 200,
) -> Response:
    context = {
        "title": "Operators",
        "members": roles.members(ctx.c.db, ctx.org),
        "roles": ROLES,
        "link": link,
    }
    return _answer(ctx, "console/operators.html", context, errors=errors, alert=alert, status=status)


@org_page("/settings/operators", permission="operators.manage")
def operators(ctx: Ctx) -> Response:
    return _operators(ctx)


@org_page("/settings/operators", methods=("POST",), permission="operators.manage")
def invite(ctx: Ctx) -> Response:
    try:
        token = roles.invite(
            ctx.c.db,
            ctx.c.clock,
            ctx.actor,
            email=f.text(ctx.form, "email"),
            role=f.text(ctx.form, "role"),
            name=f.text(ctx.form, "name"),
        )
    except DomainError as exc:
        return _operators(ctx, **_failed(exc))
    if token is None:  # a person with a login: the role is theirs now
        return f.back(ctx, "/settings/operators")
    base = str(ctx.request.base_url).rstrip("/")
    return _operators(ctx, link=f"{base}/console/set-password?token={token}", status=201)


@org_page("/settings/operators/{operator_id}/role", methods=("POST",), permission="operators.manage")
def change_role(ctx: Ctx, operator_id: int) -> Response:
    try:
        roles.change_role(ctx.c.db, ctx.c.clock, ctx.actor, operator_id, f.text(ctx.form, "role"))
    except DomainError as exc:
        if exc.code == "not_found":
            raise
        return _operators(ctx, **_failed(exc))
    return f.back(ctx, "/settings/operators")


@org_page(
    "/settings/operators/{operator_id}/{change}", methods=("GET", "POST"), permission="operators.manage"
)
def operator_state(ctx: Ctx, operator_id: int, change: str) -> Response:
    """Remove the membership here, or disable the login; GET confirms."""
    if change not in ("remove", "disable"):
        raise NotFoundError("page", change)
    member = next((m for m in roles.members(ctx.c.db, ctx.org) if m.id == operator_id), None)
    if member is None:
        raise NotFoundError("operator", operator_id)
    if ctx.request.method == "POST":
        try:
            (roles.remove if change == "remove" else roles.disable)(
                ctx.c.db, ctx.c.clock, ctx.actor, operator_id
            )
        except DomainError as exc:
            return _operators(ctx, **_failed(exc))
        return f.back(ctx, "/settings/operators")
    context = {
        "title": member.email,
        "what": f"operator_{change}",
        "subject": member.email,
        "action": f"/settings/operators/{operator_id}/{change}",
        "cancel": "/settings/operators",
        "danger": True,
    }
    return ctx.page("console/confirm.html", context)
