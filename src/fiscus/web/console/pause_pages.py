"""Pause and resume the automatic collection of a subscription (`services/collection_pause.py` through
`operator_actions`): a confirm step (GET) with an optional day the pause ends, then the action (POST).
The day is read in the organisation's time zone: the pause ends at its first instant."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from fastapi import Response
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.domain.errors import DomainError, FieldConflictError, InvalidFieldError
from fiscus.services import operator_actions as act
from fiscus.services.operators import require
from fiscus.web.console import auth
from fiscus.web.console.details import subscription_context
from fiscus.web.console.routing import Ctx, org_page


def _resumes_at(ctx: Ctx) -> datetime | None:
    raw = ctx.form.get("resumes_on", "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise InvalidFieldError("resumes_at", "must be a date (YYYY-MM-DD)") from None
    with ctx.c.db.read() as conn:
        zone = conn.execute(
            select(t.organizations.c.timezone).where(t.organizations.c.id == ctx.org)
        ).scalar_one()
    return datetime.combine(day, time(), ZoneInfo(zone))


def _done(ctx: Ctx, subscription_id: int, what: str) -> Response:
    return RedirectResponse(
        f"/console/{ctx.org}/subscriptions/{subscription_id}?done={what}",
        status_code=303,
        headers=auth.headers(),
    )


@org_page("/subscriptions/{subscription_id}/pause", methods=("GET", "POST"))
def pause(ctx: Ctx, subscription_id: int) -> Response:
    """Pause (or change the end of a pause): confirm with an optional day, then do it."""
    require(ctx.actor, "subscriptions.pause_collection")
    context = subscription_context(ctx, subscription_id)
    context.update(form=ctx.form, error=None)
    if ctx.request.method == "POST":
        try:
            act.pause_collection(
                ctx.c.db, ctx.c.clock, ctx.actor, subscription_id, resumes_at=_resumes_at(ctx)
            )
        except DomainError as exc:
            if exc.code == "forbidden":
                raise
            context["error"] = exc
            field_only = isinstance(exc, InvalidFieldError) and not isinstance(exc, FieldConflictError)
            status = 422 if field_only else 409
            return ctx.page("console/pause.html", context, status=status)
        return _done(ctx, subscription_id, "pause")
    return ctx.page("console/pause.html", context)


@org_page("/subscriptions/{subscription_id}/resume-collection", methods=("GET", "POST"))
def resume_collection(ctx: Ctx, subscription_id: int) -> Response:
    require(ctx.actor, "subscriptions.pause_collection")
    context = subscription_context(ctx, subscription_id)
    context.update(error=None)
    if ctx.request.method == "POST":
        try:
            act.resume_collection(ctx.c.db, ctx.c.clock, ctx.actor, subscription_id)
        except DomainError as exc:
            if exc.code == "forbidden":
                raise
            context["error"] = exc
            return ctx.page("console/resume_collection.html", context, status=409)
        return _done(ctx, subscription_id, "resume_collection")
    return ctx.page("console/resume_collection.html", context)
