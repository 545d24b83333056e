"""Signing in and out, the one-time set-password link, the organisation switcher and the dashboard."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from fiscus.adapters.db import tables as t
from fiscus.domain.errors import InvalidFieldError
from fiscus.queries import console_documents as cd
from fiscus.queries import dashboard as dashboard_model
from fiscus.queries.documents import count_documents
from fiscus.queries.scope import Scope
from fiscus.services import console_sessions, operators
from fiscus.web.console import auth
from fiscus.web.console.charts import dashboard_charts
from fiscus.web.console.routing import Ctx, org_page, router

GRAINS = ("day", "week", "month")


async def _form(request: Request) -> dict[str, str]:
    raw = await request.form()
    return {k: v for k, v in raw.items() if isinstance(v, str)}


def _login_page(request: Request, error: str | None = None, email: str = "", status: int = 200) -> Response:
    nxt = auth.safe_next(request.query_params.get("next"))
    return auth.page(
        request,
        "console/login.html",
        {"title": "Fiscus", "error": error, "email": email, "next": nxt},
        operator=None,
        status=status,
    )


@router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_login, request, form)


def _login(request: Request, form: dict[str, str]) -> Response:
    c = auth.container(request)
    if not auth.check_csrf(request, None, form):
        return _login_page(request, "csrf", form.get("email", ""), status=403)
    result = console_sessions.login(
        c.db,
        c.clock,
        form.get("email", "")[:254],
        form.get("password", "")[:1000],
        form.get("code") or None,
        client_ip=request.client.host if request.client else None,
    )
    if result.token is None:
        return _login_page(request, f"login_{result.error}", form.get("email", ""), status=401)
    response = RedirectResponse(auth.safe_next(form.get("next")), status_code=303, headers=auth.headers())
    auth.set_session_cookie(request, response, result.token)  # a new id: a planted cookie is replaced
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_logout, request, form)


def _logout(request: Request, form: dict[str, str]) -> Response:
    c = auth.container(request)
    try:
        operator = auth.current_operator(request)
    except auth.LoginRequired:
        return auth.login_redirect("/console/")
    if not auth.check_csrf(request, operator, form):
        return auth.page(
            request,
            "console/message.html",
            {"title": "403", "message_key": "csrf"},
            operator=operator,
            status=403,
        )
    console_sessions.logout(c.db, c.clock, operator.token)
    response = RedirectResponse("/console/login", status_code=303, headers=auth.headers())
    response.delete_cookie(auth.COOKIE, path="/console")
    return response


@router.get("/set-password")
def set_password_form(request: Request) -> Response:
    token = request.query_params.get("token", "")[:200]
    return auth.page(
        request,
        "console/set_password.html",
        {"title": "Fiscus", "token": token, "error": None},
        operator=None,
    )


@router.post("/set-password")
async def set_password(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_set_password, request, form)


def _set_password(request: Request, form: dict[str, str]) -> Response:
    c = auth.container(request)
    token = form.get("token", "")[:200]
    if not auth.check_csrf(request, None, form):
        return auth.page(
            request,
            "console/message.html",
            {"title": "403", "message_key": "csrf"},
            operator=None,
            status=403,
        )
    try:
        operators.set_password_with_token(c.db, c.clock, token, form.get("password", ""))
    except InvalidFieldError as exc:
        context = {"title": "Fiscus", "token": token, "error": exc}
        return auth.page(request, "console/set_password.html", context, operator=None, status=422)
    return auth.page(
        request,
        "console/message.html",
        {"title": "Fiscus", "message_key": "set_password_done"},
        operator=None,
    )


@router.get("/")
def home(request: Request) -> Response:
    """The operator's first organisation (the switcher in the header reaches the others)."""
    try:
        operator = auth.current_operator(request)
    except auth.LoginRequired as exc:
        return auth.login_redirect(exc.next_path)
    if not operator.orgs:
        return auth.page(
            request,
            "console/message.html",
            {"title": "404", "message_key": "not_found"},
            operator=operator,
            status=404,
        )
    return RedirectResponse(
        f"/console/{operator.orgs[0].organization_id}/", status_code=303, headers=auth.headers()
    )


def _range(ctx: Ctx) -> tuple[str, date, date, str]:
    """Currency, range and grain of the dashboard from the query string (defaults: the organisation's
    currency, the last twelve months, by month)."""
    q = ctx.request.query_params
    today = ctx.c.clock.now().date()
    with ctx.c.db.read() as conn:
        default = conn.execute(
            select(t.organizations.c.default_currency).where(t.organizations.c.id == ctx.org)
        ).scalar_one()
    cur = (q.get("currency") or default).upper()[:3]
    try:
        start = date.fromisoformat(q["start"]) if q.get("start") else today - timedelta(days=365)
        end = date.fromisoformat(q["end"]) if q.get("end") else today
    except ValueError:
        start, end = today - timedelta(days=365), today
    grain = q.get("grain") if q.get("grain") in GRAINS else "month"
    return cur, start, end, grain or "month"


@org_page("/")
def dashboard(ctx: Ctx) -> Response:
    cur, start, end, grain = _range(ctx)
    context: dict[str, Any] = {
        "title": "Dashboard",
        "currency": cur,
        "start": start,
        "end": end,
        "grain": grain,
    }
    with ctx.c.db.read() as conn:
        figures = dashboard_model.dashboard(conn, ctx.org, cur, start, end, grain, now=ctx.c.clock.now())
        context["dashboard"] = figures
        context["dashboard_charts"] = dashboard_charts(figures, auth.language(ctx.request))
        receivable = [
            r for r in cd.totals(conn, cd.DocumentQuery(ctx.org, status="open")) if r.type != "credit_note"
        ]
        context["receivables"] = receivable
        context["overdue"] = cd.totals(conn, cd.DocumentQuery(ctx.org, overdue_on=ctx.c.clock.now().date()))
        context["counts"] = {
            "customers": _count(conn, t.customers, ctx.org),
            "subscriptions": _count(conn, t.subscriptions, ctx.org, t.subscriptions.c.status == "active"),
            "documents": count_documents(conn, Scope(ctx.org)),  # the maintained document_counts
        }
    context["has_dashboard"] = "dashboard" in context
    return ctx.page("console/dashboard.html", context)


def _count(conn: Any, table: Any, org: int, *extra: Any) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(table).where(table.c.organization_id == org, *extra)
        ).scalar_one()
    )


@router.get("/switch")
def switch(request: Request) -> Response:
    """The org switcher's target (a GET form, so it works without JS): only an organisation of the
    operator's; any other id is the same 404 as a foreign page."""
    try:
        operator = auth.current_operator(request)
    except auth.LoginRequired as exc:
        return auth.login_redirect(exc.next_path)
    wanted = request.query_params.get("to", "")
    if not any(str(m.organization_id) == wanted for m in operator.orgs):
        return auth.not_found(request, operator)
    return RedirectResponse(f"/console/{wanted}/", status_code=303, headers=auth.headers())
