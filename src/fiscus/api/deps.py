"""Request-scoped dependencies: the container, the caller, its scope, and rate limiting."""

from __future__ import annotations

import threading
import time
from typing import Annotated

from fastapi import Depends, Request

from fiscus.api.errors import ApiError
from fiscus.bootstrap import Container
from fiscus.queries.scope import Scope
from fiscus.services.access import Principal, authenticate

AUTH_CACHE_SECONDS = 10.0
"""A verified credential is trusted for this long in one process; a revocation takes effect within it."""


class _AuthCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, secret: str) -> Principal | None:
        with self._lock:
            hit = self._entries.get(secret)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        return None

    def put(self, secret: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[secret] = (time.monotonic() + AUTH_CACHE_SECONDS, principal)


class RateLimiter:
    """A token bucket per credential, per process: `rate` requests a second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, int], tuple[float, float]] = {}

    def take(self, key: tuple[str, int]) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


def container(request: Request) -> Container:
    c: Container = request.app.state.container
    return c


def resolve_principal(request: Request) -> Principal:
    """The caller, authenticated once per request (the idempotency layer may have done it already)."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(
            401,
            "send an API key or customer token as `Authorization: Bearer <secret>`",
            headers={"WWW-Authenticate": 'Bearer realm="fiscus"'},
        )
    secret = secret.strip()
    c = container(request)
    cache: _AuthCache = request.app.state.auth_cache
    principal = cache.get(secret)
    if principal is None:
        principal = authenticate(c.db, c.clock, secret)
        if principal is None:
            raise ApiError(
                401,
                "the credential is unknown, revoked or expired",
                code="invalid_credential",
                headers={"WWW-Authenticate": 'Bearer realm="fiscus", error="invalid_token"'},
            )
        cache.put(secret, principal)
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = limiter.take((principal.kind.value, principal.credential_id))
    if wait:
        raise ApiError(
            429, "rate limit exceeded for this credential", headers={"Retry-After": str(max(1, round(wait)))}
        )
    request.state.principal = principal
    return principal


def org_principal(principal: Annotated[Principal, Depends(resolve_principal)]) -> Principal:
    """Operations that only the organisation itself may perform."""
    if principal.is_customer:
        raise ApiError(
            403,
            "customer tokens are read-only and limited to the customer's own documents",
            code="insufficient_scope",
        )
    return principal


def scope_of(principal: Annotated[Principal, Depends(resolve_principal)]) -> Scope:
    return Scope(principal.organization_id, principal.customer_id)


ContainerDep = Annotated[Container, Depends(container)]
PrincipalDep = Annotated[Principal, Depends(resolve_principal)]
OrgDep = Annotated[Principal, Depends(org_principal)]
ScopeDep = Annotated[Scope, Depends(scope_of)]
