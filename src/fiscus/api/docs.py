"""`/docs` (Swagger UI) and `/redoc` (ReDoc) served from installed packages, never a CDN.

A self-hosted install may have no route to the internet: FastAPI's default pages load their scripts
from a CDN and are blank there. Swagger UI comes from `swagger-ui-bundle-v2` (Swagger UI 5.31.0) and
ReDoc's standalone script from `fastapi-offline`, both PyPI packages installed with Fiscus, mounted as
static files. The pages load nothing else (no web fonts, no validator badge).
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

SWAGGER_STATIC = "/static/swagger-ui"
REDOC_STATIC = "/static/redoc"


def _redoc_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def _swagger_html(title: str, openapi_url: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} – API (Swagger UI)</title>
<link rel="stylesheet" href="{SWAGGER_STATIC}/swagger-ui.css">
<link rel="icon" type="image/png" href="{SWAGGER_STATIC}/favicon-32x32.png">
</head>
<body>
<p style="font-family:sans-serif;margin:8px 20px">Read-only reference: <a href="/redoc">/redoc</a>
(ReDoc) · machine-readable: <a href="{escape(openapi_url)}">{escape(openapi_url)}</a></p>
<div id="swagger-ui"></div>
<script src="{SWAGGER_STATIC}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: {openapi_url!r},
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
}});
</script>
</body>
</html>"""


def _redoc_html(title: str, openapi_url: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} – API reference (ReDoc)</title>
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<div id="redoc"></div>
<script src="{REDOC_STATIC}/redoc.standalone.js"></script>
<script>
Redoc.init({openapi_url!r}, {{ hideDownloadButton: false, disableSearch: false }},
           document.getElementById("redoc"));
</script>
</body>
</html>"""


def install(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """Mount both pages and their assets on `app` (created with `docs_url=None, redoc_url=None`)."""
    app.mount(SWAGGER_STATIC, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
    app.mount(REDOC_STATIC, StaticFiles(directory=str(_redoc_dir())), name="redoc")
    swagger_page = _swagger_html(app.title, openapi_url)
    redoc_page = _redoc_html(app.title, openapi_url)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(swagger_page)

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(redoc_page)
