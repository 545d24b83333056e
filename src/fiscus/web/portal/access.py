"""Signing in and out of the portal: a one-time link (from the API or a login email) opens a session,
`/login` asks for a link by email, `/logout` ends the session. The session is an HttpOnly, SameSite=Lax
cookie scoped to the organisation's portal path, Secure when the public URL is https, and a new one is
issued at every sign-in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.api.deps import container
from fiscus.api.links import public_base
from fiscus.domain.errors import InvalidFieldError, NotFoundError
from fiscus.services import portal as svc
from fiscus.services.portal import LoginLinkSender
from fiscus.web.csrf import FIELD
from fiscus.web.portal.common import (
    COOKIE,
    TEMPLATES,
    brand_css,
    brand_of,
    csrf_of,
    csrf_path,
    csrf_subject,
    csrf_token,
    current_session,
    is_secure,
    language_for,
    message,
    redirect,
)
from fiscus.web.portal.labels import portal_labels
from fiscus.web.rendering import csp_hash, html, security_headers

router = APIRouter(include_in_schema=False)
FormText = Annotated[str, Form()]


def login_sender(request: Request) -> LoginLinkSender | None:
    """The port login links go through: set on the app by whoever wires email delivery, else the
    default: a `portal_login` email in the email outbox."""
    sender: LoginLinkSender | None = getattr(request.app.state, "portal_login_sender", None)
    return sender


def _org_of(request: Request, slug: str) -> tuple[int, str] | None:
    c = container(request)
    o = t.organizations.c
    if not svc.slug_ok(slug):
        return None
    with c.db.read() as conn:
        row = conn.execute(select(o.id, o.locale).where(o.slug == slug)).one_or_none()
    return None if row is None else (int(row.id), str(row.locale))


def _language(request: Request, org_locale: str) -> str:
    accept = request.headers.get("accept-language", "").split(",")[0].split(";")[0].strip()
    return language_for(request.query_params.get("lang"), accept, org_locale)[0]


def _invalid_link(request: Request, slug: str) -> Response:
    org = _org_of(request, slug)
    lang = _language(request, org[1] if org else "en")
    back = f"/portal/{slug}/login" if org else ""
    return message(
        lang, "link_invalid_heading", "link_invalid_text", status=404, back_url=back, back_key="ask_new"
    )


def _start_session(request: Request, slug: str, token: str) -> Response:
    c = container(request)
    opened = svc.open_link(c.db, c.clock, slug, token, previous_secret=request.cookies.get(COOKIE))
    if opened is None:
        return _invalid_link(request, slug)
    response = redirect(f"/portal/{slug}")
    response.set_cookie(
        COOKIE,
        opened.secret,
        max_age=int(svc.SESSION_TTL.total_seconds()),
        path=f"/portal/{slug}",
        secure=is_secure(request),
        httponly=True,
        samesite="lax",
    )
    return response


@router.get("/portal/{slug}/session/{token}")
def open_session(slug: str, token: str, request: Request) -> Response:
    """A link from the business's app signs in at once (the app just redirected the customer here);
    a login link from an email shows a "Sign in" button that posts back (see `link_purpose`)."""
    c = container(request)
    purpose = svc.link_purpose(c.db, c.clock, slug, token)
    if purpose is None:
        return _invalid_link(request, slug)
    if purpose == "session":
        return _start_session(request, slug, token)
    org = _org_of(request, slug)
    if org is None:  # removed since the link was read
        return _invalid_link(request, slug)
    lang = _language(request, org[1])
    brand = brand_of(c, org[0])
    form_token, new = csrf_token(request, c, csrf_subject(None, slug))
    css = brand_css(brand.color)
    labels = portal_labels(lang)
    context = {
        "css": css,
        "lang": lang,
        "title": labels["continue_heading"].format(seller=brand.name),
        "t": labels,
        "brand": brand,
        "csrf_token": form_token,
        "action": f"/portal/{slug}/session/{token}",
    }
    response = html(
        TEMPLATES, "continue.html", context, status=200, headers=security_headers(style_src=csp_hash(css))
    )
    if new:
        csrf_of(c).set_cookie(response, form_token, secure=is_secure(request), path=csrf_path(slug))
    return response


@router.post("/portal/{slug}/session/{token}")
def confirm_session(slug: str, token: str, request: Request, csrf_token: FormText = "") -> Response:
    """The "Sign in" button of a login link: use the link and start the session."""
    c = container(request)
    if not csrf_of(c).check_request(request, csrf_subject(None, slug), c.clock.now(), {FIELD: csrf_token}):
        return message(
            "en", "csrf_heading", "csrf_text", status=403, back_url=f"/portal/{slug}/session/{token}"
        )
    return _start_session(request, slug, token)


def _login_page(
    request: Request,
    slug: str,
    org_id: int,
    lang: str,
    *,
    email: str = "",
    error: str = "",
    status: int = 200,
) -> Response:
    c = container(request)
    brand = brand_of(c, org_id)
    token, new = csrf_token(request, c, csrf_subject(None, slug))
    css = brand_css(brand.color)
    labels = portal_labels(lang)
    context = {
        "css": css,
        "lang": lang,
        "title": labels["login_heading"].format(seller=brand.name),
        "t": labels,
        "brand": brand,
        "csrf_token": token,
        "action": f"/portal/{slug}/login",
        "email": email,
        "error": error,
    }
    response = html(
        TEMPLATES, "login.html", context, status=status, headers=security_headers(style_src=csp_hash(css))
    )
    if new:
        csrf_of(c).set_cookie(response, token, secure=is_secure(request), path=csrf_path(slug))
    return response


@router.get("/portal/{slug}/login")
def login_form(slug: str, request: Request) -> Response:
    org = _org_of(request, slug)
    if org is None:
        return message("en", "not_found_heading", "not_found_text", status=404)
    if current_session(request, slug) is not None:
        return redirect(f"/portal/{slug}")
    return _login_page(request, slug, org[0], _language(request, org[1]))


@router.post("/portal/{slug}/login")
def login_request(slug: str, request: Request, email: FormText = "", csrf_token: FormText = "") -> Response:
    """Queue a login link if the email is a customer's; the answer is the same either way."""
    c = container(request)
    org = _org_of(request, slug)
    if org is None:
        return message("en", "not_found_heading", "not_found_text", status=404)
    lang = _language(request, org[1])
    if not csrf_of(c).check_request(request, csrf_subject(None, slug), c.clock.now(), {FIELD: csrf_token}):
        return message(lang, "csrf_heading", "csrf_text", status=403, back_url=f"/portal/{slug}/login")
    client = request.client.host if request.client else "unknown"
    try:
        svc.request_login_link(
            c.db, c.clock, slug, email, client, base_url=public_base(request), sender=login_sender(request)
        )
    except InvalidFieldError:
        labels = portal_labels(lang)
        return _login_page(
            request, slug, org[0], lang, email=email[:254], error=labels["err_email"], status=422
        )
    except svc.LoginRateLimitedError as exc:
        response = message(lang, "rate_limited_heading", "rate_limited_text", status=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except NotFoundError:
        return message("en", "not_found_heading", "not_found_text", status=404)
    brand = brand_of(c, org[0])
    return message(lang, "sent_heading", "sent_text", status=200, brand=brand, seller=brand.name)


@router.post("/portal/{slug}/logout")
def logout(slug: str, request: Request, csrf_token: FormText = "") -> Response:
    c = container(request)
    if not svc.slug_ok(slug):
        return message("en", "not_found_heading", "not_found_text", status=404)
    session = current_session(request, slug)
    if session is not None:
        if not csrf_of(c).check_request(
            request, csrf_subject(session, slug), c.clock.now(), {FIELD: csrf_token}
        ):
            return message("en", "csrf_heading", "csrf_text", status=403, back_url=f"/portal/{slug}")
        svc.end_session(c.db, c.clock, request.cookies.get(COOKIE, ""))
    response = redirect(f"/portal/{slug}/login")
    response.delete_cookie(
        COOKIE, path=f"/portal/{slug}", secure=is_secure(request), httponly=True, samesite="lax"
    )
    return response
