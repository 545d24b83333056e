"""The prefix index over the routes (`fiscus.api.route_index`) answers every request exactly as
FastAPI's own in-order matching does: same status, same redirect, same allowed methods, same route
in the metrics. Checked over every route of the app with its parameters filled in, each with and
without a trailing slash, under every method, plus paths no route serves."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.routing import _EffectiveRouteContext, _IncludedRouter
from starlette.routing import BaseRoute, Mount

from fiscus.adapters.db.engine import Database
from fiscus.api import route_index
from fiscus.domain.clock import FixedClock
from tests.api_support import make_app

METHODS = ("GET", "POST", "DELETE")


def _leaves(routes: list[Any]) -> list[Any]:
    out: list[Any] = []
    for route in routes:
        if isinstance(route, _IncludedRouter):
            out.extend(_leaves(route.effective_candidates()))
        else:
            out.append(route.starlette_route or route if isinstance(route, _EffectiveRouteContext) else route)
    return out


def _paths(routes: list[BaseRoute]) -> set[str]:
    out = {"/", "", "/nope", "/api", "/api/v1", "/api/v1/nope", "/v1", "/static", "/portal", "/console"}
    for route in _leaves(routes):
        path = getattr(route, "path", None)
        if not isinstance(path, str) or path == "/openapi.json":  # matched like /healthz, slow to build
            continue
        filled = re.sub(r"\{[^}]+\}", "1", path)
        if isinstance(route, Mount):
            filled += "/vendor/htmx.min.js"
        out |= {filled.rstrip("/") or "/", filled.rstrip("/") + "/"}
    return out


async def _call(app: Any, method: str, path: str) -> tuple[int, str | None, str | None, str]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
        "server": ("test", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    start: dict[str, Any] = {}
    messages = [{"type": "http.request", "body": b"{}", "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)

    await app(scope, receive, send)
    headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}
    route = getattr(scope.get("route"), "path", None)
    return start["status"], headers.get("location"), headers.get("allow"), str(route)


def _answers(app: Any, requests: list[tuple[str, str]]) -> list[tuple[int, str | None, str | None, str]]:
    async def run() -> list[tuple[int, str | None, str | None, str]]:
        return [await _call(app, method, path) for method, path in requests]

    # a loop of its own on a thread of its own: the session's Playwright browser may hold this thread's
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


def test_the_index_matches_as_fastapi_does(db: Database, clock: FixedClock) -> None:
    app = make_app(db, clock)
    index = app.router.middleware_stack
    assert isinstance(index, route_index.RouteIndex)
    for path in ("/healthz", "/api/v1/documents", "/v1/invoices"):  # a few routes each, in order
        positions = [app.router.routes.index(r) for r in index.router_for(path).routes]
        assert positions == sorted(positions)
        assert len(positions) < len(app.router.routes) / 3
    paths = sorted(_paths(app.routes))
    assert len(paths) > 200
    requests = [(method, path) for path in paths for method in METHODS]
    indexed = _answers(app, requests)
    app.router.middleware_stack = app.router.app  # FastAPI's own matching
    assert _answers(app, requests) == indexed
    assert {status for status, *_rest in indexed} >= {200, 401, 404, 405, 307}


def test_a_route_added_later_is_served(db: Database, clock: FixedClock) -> None:
    app = make_app(db, clock)

    @app.get("/added-later")
    async def later() -> dict[str, str]:
        return {"ok": "yes"}

    assert _answers(app, [("GET", "/added-later")])[0][0] == 200
