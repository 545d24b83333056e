"""`/docs` and `/redoc` work on an install with no internet: Debian's Chromium (Playwright) loads them
with every request to anything but the loopback server aborted, and they show the operations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from tests.api_support import api_client, live_server, make_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Route

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SRC = Path(__file__).resolve().parents[2] / "src"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make install)")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}: install Debian's chromium (make test does)"
)


@pytest.fixture(scope="module")
def browser(chromium: Browser) -> Browser:
    """The session's shared Chromium (one Playwright per worker process)."""
    return chromium


def _one_database(db_url: str) -> None:
    """The documentation pages are the OpenAPI document and static assets: no request reads the
    database, so one browser leg (SQLite) proves them (CI budget)."""
    if not db_url.startswith("sqlite"):
        pytest.skip("the API documentation pages do not read the database")


def _offline_page(browser: Browser, blocked: list[str]) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})

    def guard(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if host in {"127.0.0.1", "localhost", "::1"}:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    return context, context.new_page()


@needs_chromium
def test_swagger_ui_shows_the_operations_offline(
    db: Database, db_url: str, clock: FixedClock, browser: Browser
) -> None:
    _one_database(db_url)
    blocked: list[str] = []
    failed: list[str] = []
    with live_server(make_app(db, clock)) as base:
        context, page = _offline_page(browser, blocked)
        try:
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.goto(f"{base}/docs")
            operations = page.locator(".opblock-summary-path")
            operations.first.wait_for(timeout=20_000)
            paths = set(operations.all_inner_texts())
            assert "/api/v1/customers" in {p.replace("\u200b", "") for p in paths}
            assert operations.count() > 50
        finally:
            context.close()
    assert blocked == [], blocked
    assert [u for u in failed if "127.0.0.1" in u] == []


@needs_chromium
def test_redoc_shows_the_operations_offline(
    db: Database, db_url: str, clock: FixedClock, browser: Browser
) -> None:
    _one_database(db_url)
    blocked: list[str] = []
    with live_server(make_app(db, clock)) as base:
        context, page = _offline_page(browser, blocked)
        try:
            page.goto(f"{base}/redoc")
            operations = page.locator('[data-item-id^="tag/"] [data-item-id*="/operation/"]')
            operations.first.wait_for(state="attached", timeout=30_000)
            assert operations.count() > 50
            summary = httpx.get(f"{base}/openapi.json").json()["paths"]["/api/v1/customers"]["post"][
                "summary"
            ]
            page.locator("h2", has_text=summary).first.wait_for(timeout=10_000)
        finally:
            context.close()
    # ReDoc's "powered by" logo points at its vendor's CDN; the page's policy keeps the browser from trying.
    assert not blocked, blocked


def test_the_docs_assets_are_served_locally(db: Database, clock: FixedClock) -> None:
    with api_client(db, clock) as client:
        html = client.get("/docs").text
        assert "/static/swagger-ui/swagger-ui-bundle.js" in html
        assert client.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200
        assert "/static/redoc/redoc.standalone.js" in client.get("/redoc").text
        assert client.get("/static/redoc/redoc.standalone.js").status_code == 200


def test_no_cdn_in_the_source() -> None:
    """No page of ours loads a script or stylesheet from a third-party host."""
    offenders = [
        str(path)
        for path in SRC.rglob("*.py")
        for host in ("cdn.jsdelivr.net", "unpkg.com", "cdnjs.cloudflare.com", "fonts.googleapis.com")
        if host in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
