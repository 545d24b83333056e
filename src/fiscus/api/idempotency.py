"""`Idempotency-Key` on POST: a route class that claims the key, runs the endpoint once, stores its
response, and replays it for retries (services/idempotency.py holds the rules)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from fiscus.api.deps import container, resolve_principal
from fiscus.api.errors import PROBLEM, ApiError, domain_problem
from fiscus.domain.errors import DomainError, ValidationError
from fiscus.services import idempotency as store
from fiscus.services.idempotency import ClaimState

MAX_KEY_LENGTH = 255
KEY_PATTERN = re.compile(r"^[!-~]([ -~]{0,253}[!-~])?$")
"""1 to 255 printable ASCII characters, no space at either end (HTTP trims those, so a key that
began or ended with one would not be the key the client keeps)."""


KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": KEY_PATTERN.pattern},
    "description": (
        "retries with the same key and body replay the first response (48 hours); the same key with "
        "another body is 422 `idempotency_key_mismatch`; while the first request still runs, 409"
    ),
}
MAX_PATH_LENGTH = 500
"""The stored request path's column width (`idempotency_keys.path`)."""


class IdempotentRoute(APIRoute):
    """Every POST of the native API takes an `Idempotency-Key`, and its OpenAPI operation says so."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if "POST" in (self.methods or set()):
            extra = dict(self.openapi_extra or {})
            params = [p for p in extra.get("parameters", []) if p.get("name") != KEY_PARAMETER["name"]]
            extra["parameters"] = [*params, KEY_PARAMETER]
            self.openapi_extra = extra

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            key = request.headers.get("idempotency-key")
            if request.method != "POST" or key is None:
                return await handler(request)
            if not KEY_PATTERN.match(key):
                raise ApiError(
                    400,
                    f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
                    code="invalid_idempotency_key",
                    errors=[{"pointer": "/header/Idempotency-Key", "field": "Idempotency-Key"}],
                )
            if len(request.url.path) > MAX_PATH_LENGTH or "\x00" in request.url.path:
                # No route's path is this long (ids have at most 19 digits) or holds a NUL: the handler
                # refuses its parameters before anything is written, so there is nothing to claim.
                return await handler(request)
            principal = await run_in_threadpool(resolve_principal, request)
            c = container(request)
            body = await request.body()
            fingerprint = hashlib.sha256(body).hexdigest()
            org = principal.organization_id
            claim = await run_in_threadpool(
                store.claim, c.db, c.clock, org, key, request.method, request.url.path, fingerprint
            )
            if claim.state is ClaimState.MISMATCH:
                raise ApiError(
                    422,
                    "this Idempotency-Key was used with a different request",
                    code="idempotency_key_mismatch",
                )
            if claim.state is ClaimState.IN_PROGRESS:
                raise ApiError(
                    409,
                    "a request with this Idempotency-Key is still being processed",
                    code="idempotency_key_in_use",
                    headers={"Retry-After": "1"},
                )
            if claim.state is ClaimState.REPLAY:
                return Response(
                    claim.body or "",
                    status_code=claim.status or 200,
                    media_type=claim.content_type,
                    headers={"Idempotent-Replayed": "true"},
                )
            try:
                response = await handler(request)
            except ValidationError as exc:
                await run_in_threadpool(store.release, c.db, org, key)
                return domain_problem(exc)
            except DomainError as exc:
                response = domain_problem(exc)
            except (RequestValidationError, ApiError):
                await run_in_threadpool(store.release, c.db, org, key)
                raise
            except BaseException:
                await run_in_threadpool(store.release, c.db, org, key)
                raise
            if response.status_code >= 500 or response.status_code == 422:
                await run_in_threadpool(store.release, c.db, org, key)
                return response
            content = bytes(response.body).decode()
            media = response.headers.get(
                "content-type", PROBLEM if response.status_code >= 400 else "application/json"
            )
            await run_in_threadpool(store.complete, c.db, org, key, response.status_code, content, media)
            return response

        return route
