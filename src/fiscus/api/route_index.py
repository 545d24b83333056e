"""Route matching by path prefix instead of trying every route in turn.

FastAPI 0.16x keeps each included router as a nested branch and matches a request by trying every
branch and every route in order, with several scope-dict manipulations per candidate: about 3 us per
route. The app has ~180 routes in ~30 routers, so `/healthz` (registered last) cost ~600 us of CPU
in routing alone, ten times the whole of a bare FastAPI request (issue 18).

`install` indexes the app's top-level routes by the literal path segments their routes start with
(a trie of segments). A request walks the trie along its own path; the routes that can match it at
all (fully, partially for a 405, or with or without a trailing slash for the redirect) are exactly
those whose literal prefix lies on that walk, so the app's own router runs over that subset, in the
original order, with its own logic: same first match, same 405, same redirects, same 404. The
subset for each trie node is a shallow copy of the router built once at start-up.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRouter
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Host, Mount
from starlette.types import Receive, Scope, Send


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    indices: set[int] = field(default_factory=set)
    router: APIRouter | None = None


def _literal_segments(path: object) -> list[str] | None:
    """The path's leading segments that hold no parameter, or None when nothing literal is known."""
    if not isinstance(path, str) or not path.startswith("/"):
        return None
    segments: list[str] = []
    for segment in path[1:].split("/"):
        if "{" in segment:
            break
        segments.append(segment)
    while segments and segments[-1] == "":  # a trailing slash: the route may redirect the bare path
        segments.pop()
    return segments


def _leaf_paths(route: Any) -> list[list[str] | None]:
    """The literal prefixes of every route a top-level route can match (None: anything)."""
    from fastapi.routing import _EffectiveRouteContext, _IncludedRouter

    if isinstance(route, _IncludedRouter):
        out: list[list[str] | None] = []
        for candidate in route.effective_candidates():
            out.extend(_leaf_paths(candidate))
        return out
    if isinstance(route, _EffectiveRouteContext):
        if route.starlette_route is not None:
            return _leaf_paths(route.starlette_route)
        if type(route.original_route).__name__ == "_FrontendRouteGroup":
            return [None]
        return [_literal_segments(route.path)]
    if isinstance(route, Host):
        return [None]
    if isinstance(route, (Mount, BaseRoute)):
        return [_literal_segments(getattr(route, "path", None))]
    return [None]


class RouteIndex:
    """The router's `middleware_stack`: picks the trie node's router, falls back to the full one for
    anything but HTTP."""

    def __init__(self, router: APIRouter) -> None:
        self.router = router
        self._index()

    def _index(self) -> None:
        router = self.router
        self.indexed = len(router.routes)
        self.root = _Node()
        for index, route in enumerate(router.routes):
            for segments in _leaf_paths(route):
                node = self.root
                for segment in segments or ():
                    node = node.children.setdefault(segment, _Node())
                node.indices.add(index)
        self._build(self.root, set())

    def _build(self, node: _Node, inherited: set[int]) -> None:
        indices = inherited | node.indices
        subset = copy.copy(self.router)
        subset.routes = [self.router.routes[i] for i in sorted(indices)]
        node.router = subset
        for child in node.children.values():
            self._build(child, indices)

    def router_for(self, route_path: str) -> APIRouter:
        node = self.root
        for segment in route_path[1:].split("/"):
            child = node.children.get(segment)
            if child is None:
                break
            node = child
        assert node.router is not None
        return node.router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.router.app(scope, receive, send)
            return
        if len(self.router.routes) != self.indexed:  # a route added after start-up
            self._index()
        scope.setdefault("router", self.router)  # url_for sees every route
        await self.router_for(get_route_path(scope)).app(scope, receive, send)


def install(app: FastAPI) -> bool:
    """Index the app's routes; call after the last route is added. Left out (False) where the router
    has middleware of its own or low-priority (frontend) routes, which the subsets would not see."""
    router = app.router
    if router.middleware_stack != router.app or any(True for _ in router._iter_low_priority_routes()):
        return False
    router.middleware_stack = RouteIndex(router)
    return True
