"""The console's request plumbing: who is signed in (a server-side session named by an `HttpOnly`,
`SameSite=Lax`, `Secure`-over-TLS cookie), the actor in the organisation of the URL (404 for one the
operator does not belong to), CSRF on every post, same-origin `next` paths, and the page headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit

from babel import Locale
from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from jinja2 import Environment

from fiscus.bootstrap import Container
from fiscus.documents.view_model import format_minor
from fiscus.domain.errors import NotFoundError
from fiscus.domain.money import currency
from fiscus.services import console_sessions
from fiscus.services.console_sessions import SessionInfo
from fiscus.services.operators import Actor, Membership, acting, memberships
from fiscus.services.payment_links import link_secret
from fiscus.web import csrf as csrf_module
from fiscus.web.csrf import Csrf
from fiscus.web.i18n import LANGUAGES
from fiscus.web.rendering import html, security_headers, templates

COOKIE: Final = "fiscus_console"
LANG_COOKIE: Final = "fiscus_console_lang"
ANONYMOUS: Final = "console-anonymous"
"""The CSRF subject of the forms shown before login (login, set password)."""
TEMPLATES: Final[Environment] = templates("fiscus.web.console")


class LoginRequired(Exception):
    """No live session: the handler answers with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


@dataclass(frozen=True, slots=True)
class Operator:
    """The signed-in operator, with every organisation they may open."""

    session: SessionInfo
    token: str
    orgs: list[Membership]


def container(request: Request) -> Container:
    c: Container = request.app.state.container
    return c


def is_tls(request: Request) -> bool:
    return request.url.scheme == "https"


def csrf_of(request: Request) -> Csrf:
    """The installation's CSRF signer (its key derived from the installation secret, made once)."""
    cached = getattr(request.app.state, "console_csrf", None)
    if isinstance(cached, Csrf):
        return cached
    c = container(request)
    made = Csrf(link_secret(c.db, c.clock, c.settings.secret_key))
    request.app.state.console_csrf = made
    return made


def language(request: Request) -> str:
    lang = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "en"
    return lang if lang in LANGUAGES else "en"


def safe_next(value: str | None) -> str:
    """A same-origin path to go to after login; anything else (another host, a scheme, `//host`,
    a backslash trick) becomes the console's home."""
    if not value or len(value) > 1000 or not value.startswith("/console") or "\\" in value:
        return "/console/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return "/console/"
    return value


def current_operator(request: Request) -> Operator:
    """The operator of the session cookie, or LoginRequired."""
    c = container(request)
    token = request.cookies.get(COOKIE)
    info = console_sessions.session_of(c.db, c.clock, token)
    if info is None or token is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path if request.method == "GET" else "/console/")
    with c.db.read() as conn:
        orgs = memberships(conn, info.operator_id)
    return Operator(info, token, orgs)


def actor_in(request: Request, operator: Operator, org_id: int) -> Actor:
    """The operator acting in `org_id`; NotFoundError when they are no member of it."""
    c = container(request)
    with c.db.read() as conn:
        return acting(conn, operator.session.operator_id, org_id)


def csrf_subject(operator: Operator | None) -> str:
    return operator.session.token_hash if operator is not None else ANONYMOUS


def check_csrf(request: Request, operator: Operator | None, form: dict[str, Any]) -> bool:
    c = container(request)
    return csrf_of(request).check_request(request, csrf_subject(operator), c.clock.now(), form)


def headers() -> dict[str, str]:
    """The surfaces' strict headers, with the console's own stylesheet and htmx from `/static`."""
    base = security_headers(style_src="'self'")
    base["Content-Security-Policy"] = (
        base["Content-Security-Policy"]
        .replace("default-src 'none';", "default-src 'none'; script-src 'self'; connect-src 'self';")
        .replace("img-src data:;", "img-src 'self' data:; frame-src 'self';")
    )
    return base


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    operator: Operator | None,
    status: int = 200,
) -> Response:
    """A console page: its CSRF token (reused while valid for this session, else a fresh one set as
    the double-submit cookie), language and headers."""
    from fiscus.web.console.labels import labels

    c = container(request)
    signer = csrf_of(request)
    subject = csrf_subject(operator)
    now = c.clock.now()
    existing = request.cookies.get(csrf_module.COOKIE)
    fresh = existing is None or not signer.is_valid(subject, existing, existing, now)
    token = signer.issue(subject, now) if fresh or existing is None else existing
    lang = language(request)
    locale = Locale.parse(lang)
    ctx = {
        "money": lambda minor, code: format_minor(int(minor), currency(code), locale),
        "lang": lang,
        "t": labels(lang),
        "csrf_field": csrf_module.FIELD,
        "csrf_token": token,
        "operator": operator,
        "path": request.url.path,
        "query": request.url.query,
        **context,
    }
    response = html(TEMPLATES, template, ctx, status=status, headers=headers())
    if fresh:
        signer.set_cookie(response, token, secure=is_tls(request))
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            lang,
            max_age=31_536_000,
            path="/console",
            httponly=True,
            samesite="lax",
            secure=is_tls(request),
        )
    return response


def login_redirect(next_path: str) -> Response:
    return RedirectResponse(
        f"/console/login?next={quote(next_path, safe='')}", status_code=303, headers=headers()
    )


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(console_sessions.ABSOLUTE_TIMEOUT.total_seconds()),
        path="/console",
        httponly=True,
        samesite="lax",
        secure=is_tls(request),
    )


def not_found(request: Request, operator: Operator | None) -> Response:
    return page(
        request,
        "console/message.html",
        {"title": "404", "message_key": "not_found"},
        operator=operator,
        status=404,
    )


__all__ = ["NotFoundError"]
