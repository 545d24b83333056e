"""What every portal page shares: the session cookie, CSRF, the organisation's branding, the
customer's language, and rendering under the surfaces' strict headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from babel import Locale
from fastapi import Request, Response
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.api.deps import container
from fiscus.api.links import public_base
from fiscus.bootstrap import Container
from fiscus.documents.presentation import logo_data_uri
from fiscus.documents.view_model import format_minor
from fiscus.domain.money import Currency
from fiscus.domain.organization import LOCALES
from fiscus.services.payment_links import link_secret
from fiscus.services.portal import PortalSession, session_of, slug_ok
from fiscus.services.portal_settings import PortalSettings, portal_settings
from fiscus.services.rendering import frozen_logo
from fiscus.web.csrf import FIELD, Csrf
from fiscus.web.csrf import PORTAL_COOKIE as CSRF_COOKIE
from fiscus.web.i18n import language_of
from fiscus.web.portal.labels import portal_labels
from fiscus.web.rendering import asset, csp_hash, html, security_headers, templates

COOKIE: Final = "fiscus_portal"
TEMPLATES = templates("fiscus.web.portal")
BASE_CSS: Final = asset("pay.css") + "\n" + asset("portal.css")
DEFAULT_ACCENT: Final = ("#0b57d0", "#0842a0")


def _luminance(color: str) -> float:
    def channel(hex_pair: str) -> float:
        c = int(hex_pair, 16) / 255
        return c / 12.92 if c <= 0.03928 else float(((c + 0.055) / 1.055) ** 2.4)

    r, g, b = (channel(color[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def brand_css(color: str | None) -> str:
    """The stylesheet with the organisation's colour as the accent, if white text on it stays readable
    (WCAG contrast 4.5:1); otherwise the default accent, so a pale brand never makes buttons illegible."""
    accent, dark = DEFAULT_ACCENT
    if color and (1.05 / (_luminance(color) + 0.05)) >= 4.5:
        accent = dark = color
    return f"{BASE_CSS}\n:root {{ --accent: {accent}; --accent-dark: {dark}; }}\n"


def is_secure(request: Request) -> bool:
    return public_base(request).startswith("https://")


def csrf_of(c: Container) -> Csrf:
    """The portal's CSRF tokens, in a cookie of its own (`csrf_path`: only its organisation's pages)."""
    return Csrf(link_secret(c.db, c.clock, c.settings.secret_key), cookie=CSRF_COOKIE)


def csrf_path(slug: str) -> str:
    return f"/portal/{slug}"


def current_session(request: Request, slug: str) -> PortalSession | None:
    c = container(request)
    return session_of(c.db, c.clock, slug, request.cookies.get(COOKIE))


def csrf_subject(session: PortalSession | None, slug: str) -> str:
    """CSRF tokens are bound to the session (or, on the sign-in form, to the organisation's portal)."""
    return f"portal-session:{session.id}" if session else f"portal-login:{slug}"


@dataclass(frozen=True, slots=True)
class Brand:
    name: str
    logo: str | None
    color: str | None
    facturx: bool


def brand_of(c: Container, org_id: int) -> Brand:
    o = t.organizations.c
    with c.db.read() as conn:
        row = conn.execute(
            select(o.legal_name, o.trading_name, o.logo_sha256, o.facturx_enabled).where(o.id == org_id)
        ).one()
        logo = frozen_logo(conn, row.logo_sha256)
        settings = portal_settings(conn, org_id)
    return Brand(
        str(row.trading_name or row.legal_name),
        logo_data_uri(*logo) if logo else None,
        settings.brand_color,
        bool(row.facturx_enabled),
    )


@dataclass(slots=True)
class Page:
    """One signed-in request's rendering context."""

    request: Request
    c: Container
    session: PortalSession
    brand: Brand
    settings: PortalSettings
    customer: dict[str, Any]
    language: str
    locale: Locale
    t: dict[str, str]
    csrf_token: str
    new_csrf: bool

    @property
    def base(self) -> str:
        return f"/portal/{self.session.slug}"

    def money(self, minor: int, cur: Currency) -> str:
        return format_minor(minor, cur, self.locale)

    def render(
        self, template: str, context: dict[str, Any], *, status: int = 200, forms_to: str = ""
    ) -> Response:
        css = brand_css(self.brand.color)
        origins = (forms_to,) if forms_to else ()
        values = {
            "css": css,
            "lang": self.language,
            "t": self.t,
            "brand": self.brand,
            "base": self.base,
            "customer": self.customer,
            "csrf_token": self.csrf_token,
            "return_url": self.session.return_url,
            "section": "",
            "done": "",
            **context,
        }
        response = html(
            TEMPLATES,
            template,
            values,
            status=status,
            headers=security_headers(style_src=csp_hash(css), form_origins=origins),
        )
        if self.new_csrf:
            csrf_of(self.c).set_cookie(
                response, self.csrf_token, secure=is_secure(self.request), path=self.base
            )
        return response


def csrf_token(request: Request, c: Container, subject: str) -> tuple[str, bool]:
    """The browser's CSRF token if still good for this subject (so several open tabs keep working),
    else a fresh one; and whether it is fresh (then the cookie must be set)."""
    csrf = csrf_of(c)
    cookie = request.cookies.get(CSRF_COOKIE)
    if cookie and csrf.is_valid(subject, cookie, cookie, c.clock.now()):
        return cookie, False
    return csrf.issue(subject, c.clock.now()), True


def language_for(*candidates: str | None) -> tuple[str, Locale]:
    """The first candidate locale whose language the portal speaks (en, bg, ru, kk), else English; the
    babel locale keeps a region when the candidate had one (en_US formats money as Americans do)."""
    for candidate in candidates:
        lang = language_of(candidate)
        if candidate and lang in LOCALES:
            try:
                return lang, Locale.parse(str(candidate).replace("-", "_"))
            except (ValueError, TypeError):
                return lang, Locale.parse(lang)
    return "en", Locale.parse("en")


def page_of(request: Request, session: PortalSession) -> Page:
    c = container(request)
    cu = t.customers.c
    with c.db.read() as conn:
        customer = dict(
            conn.execute(select(t.customers).where(cu.id == session.customer_id)).mappings().one()
        )
        settings = portal_settings(conn, session.organization_id)
    language, locale = language_for(session.locale, customer["locale"])
    token, new = csrf_token(request, c, csrf_subject(session, session.slug))
    return Page(
        request,
        c,
        session,
        brand_of(c, session.organization_id),
        settings,
        customer,
        language,
        locale,
        portal_labels(language),
        token,
        new,
    )


def plain_headers() -> dict[str, str]:
    return security_headers(style_src=csp_hash(brand_css(None)))


def redirect(location: str) -> Response:
    return Response(status_code=303, headers={"Location": location, **plain_headers()})


def message(
    language: str,
    heading_key: str,
    text_key: str,
    *,
    status: int,
    back_url: str = "",
    back_key: str = "back",
    brand: Brand | None = None,
    **fmt: str,
) -> Response:
    """A page with one message (errors, "check your email"), in the given language."""
    labels = portal_labels(language)
    css = brand_css(brand.color if brand else None)
    context = {
        "css": css,
        "lang": language,
        "title": labels[heading_key],
        "heading": labels[heading_key],
        "text": labels[text_key].format(**fmt),
        "alert": status >= 400,
        "back_url": back_url,
        "back_text": labels[back_key].format(**fmt),
    }
    return html(
        TEMPLATES, "message.html", context, status=status, headers=security_headers(style_src=csp_hash(css))
    )


def gateway_origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def problem(page: Page, heading_key: str, text_key: str, *, status: int, **fmt: str) -> Response:
    """A message inside the portal's layout (not found, not allowed, an expired form)."""
    context = {
        "title": page.t[heading_key],
        "heading": page.t[heading_key],
        "text": page.t[text_key].format(**fmt),
    }
    return page.render("problem.html", context, status=status)


def signed_in(request: Request, slug: str) -> Page | Response:
    """The page context of the signed-in customer, or a redirect to the sign-in form."""
    if not slug_ok(slug):
        return message("en", "not_found_heading", "not_found_text", status=404)
    session = current_session(request, slug)
    if session is None:
        return redirect(f"/portal/{slug}/login")
    return page_of(request, session)


def posted(request: Request, slug: str, token: str) -> Page | Response:
    """As `signed_in`, for a state-changing form: refused (403, nothing done) without the session's
    CSRF token in the form and its cookie."""
    page = signed_in(request, slug)
    if isinstance(page, Response):
        return page
    c = page.c
    if not csrf_of(c).check_request(request, csrf_subject(page.session, slug), c.clock.now(), {FIELD: token}):
        return problem(page, "csrf_heading", "csrf_text", status=403)
    return page


def ident(raw: str) -> int | None:
    """An object id from a page path: digits only, else None (a page answers "not found", never a
    JSON validation error)."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None
