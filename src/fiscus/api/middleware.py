"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path): request ids, JSON access
logs, Prometheus metrics, and a request body size limit."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BILLING_DOCUMENTS = Counter(
    "fiscus_billing_documents_total", "Documents created by billing runs in this process"
)
BILLING_RUNS = Counter("fiscus_billing_runs_total", "Billing runs finished in this process", ["outcome"])
REQUESTS = Counter("fiscus_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "fiscus_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
log = structlog.get_logger("fiscus.http")


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int = 1_048_576, access_log: bool = True) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 100 and incoming.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _too_large(send, request_id, self.max_body_bytes)
            return
        started = time.perf_counter()
        status = 500
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            status = 413
            await _too_large(send, request_id, self.max_body_bytes)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_of(scope)
            method = scope.get("method", "")
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(elapsed)
            if status >= 500 or (scope.get("path", "").startswith("/api/") and method != "GET"):
                log.info(
                    "request",
                    request_id=request_id,
                    method=method,
                    path=scope.get("path"),
                    route=route,
                    status=status,
                    ms=round(elapsed * 1000, 2),
                )


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, request_id: str, limit: int) -> None:
    body: dict[str, Any] = {
        "type": "https://fiscus.dev/problems/payload_too_large",
        "title": "Request body too large",
        "status": 413,
        "detail": f"request bodies are limited to {limit} bytes",
        "code": "payload_too_large",
    }
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(payload)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


NATIVE_PREFIX = "/api/"


class NulGuard:
    """NUL characters in the native API's query string are refused at the edge with a 422 problem
    naming the parameter: PostgreSQL cannot store or compare them in text, so one reaching a
    query would be a 500 (JSON bodies are checked by the request models, `schemas.In`). The dialects
    parse their own parameters, as the systems they copy do, and are left alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.startswith(NATIVE_PREFIX):
            await self.app(scope, receive, send)
            return
        field = _nul_field(bytes(scope.get("query_string", b"")))
        if field is None:
            await self.app(scope, receive, send)
            return
        where, name = field
        body: dict[str, Any] = {
            "type": "https://fiscus.dev/problems/validation_error",
            "title": "The input is not valid",
            "status": 422,
            "detail": f"{name}: must not contain NUL characters",
            "code": "validation_error",
            "errors": [
                {"pointer": f"/{where}/{name}", "field": name, "detail": "must not contain NUL characters"}
            ],
        }
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 422,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _nul_field(query: bytes) -> tuple[str, str] | None:
    """Where a NUL is: ("query", the parameter's name), or None. A NUL in the path fails the path
    parameter's own validation, which names it."""
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in key or "\x00" in value:
            return "query", key.replace("\x00", "\\0")[:100]
    return None
