"""What every page of every web surface shares when it is rendered: one Jinja environment per surface
over its own templates and the shared ones (`base.html`: layout, head, a11y skeleton; `message.html`),
the static assets (served at `/static`, never from a CDN, and inlinable under a hash-pinned CSP), and
strict security headers."""

from __future__ import annotations

import base64
import hashlib
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_PATH = "/static"


def templates(surface: str) -> Environment:
    """The environment of a surface package (`fiscus.web.pay`): its `templates/` first, then the shared
    `fiscus/web/templates/`. Autoescaped; an undefined name is an error, not an empty string."""
    return Environment(
        loader=ChoiceLoader([PackageLoader(surface, "templates"), PackageLoader("fiscus.web", "templates")]),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def asset(name: str) -> str:
    """The text of a shared static asset (`fiscus/web/static/<name>`), e.g. to inline a stylesheet."""
    return files("fiscus.web").joinpath("static", name).read_text(encoding="utf-8")


def csp_hash(text: str) -> str:
    """The CSP source that allows exactly this inline text (`'sha256-…'`)."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


def security_headers(*, style_src: str, form_origins: tuple[str, ...] = ()) -> dict[str, str]:
    """No caching (pages show payment and account state and one-time forms), no referrer (a link may
    be the key to a page), no framing, and a CSP that allows nothing but the given styles, inline
    (data:) images such as the seller's frozen logo, and forms posted to this origin or `form_origins`."""
    form_action = " ".join(["'self'", *dict.fromkeys(form_origins)])
    return {
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": (
            f"default-src 'none'; style-src {style_src}; img-src data:; "
            f"form-action {form_action}; base-uri 'none'; frame-ancestors 'none'"
        ),
    }


def html(
    env: Environment, template: str, context: dict[str, Any], *, status: int, headers: dict[str, str]
) -> Response:
    """A rendered page with its headers."""
    return HTMLResponse(env.get_template(template).render(context), status_code=status, headers=headers)


class _Assets(StaticFiles):
    """The shared static files, with the headers every response of the surfaces carries."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        return response


def mount_static(app: FastAPI) -> None:
    """Serve `fiscus/web/static/` at `/static` from the installed package (no CDN)."""
    app.mount(STATIC_PATH, _Assets(packages=[("fiscus.web", "static")]), name="static")
