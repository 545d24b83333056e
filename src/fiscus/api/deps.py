"""Request-scoped dependencies: the container, the caller, its scope, and rate limiting."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, ParamSpec

from fastapi import Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from fiscus.api.errors import ApiError
from fiscus.bootstrap import Container
from fiscus.queries.scope import Scope
from fiscus.services.access import Principal, authenticate

P = ParamSpec("P")
AUTH_CACHE_SECONDS = 10.0
"""A verified credential is trusted for this long in one process; a revocation takes effect within it."""


class _AuthCache:
    """Verified credentials, per process. When an entry expires, the first request to see it
    re-verifies it while the others keep using it for that short moment: without this, every
    concurrent request of a busy key missed together every AUTH_CACHE_SECONDS and piled onto the
    database at once (the p99 spikes seen in bench/api_read.py)."""

    REFRESH_GRACE = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._refreshing: dict[str, float] = {}

    def get(self, secret: str) -> Principal | None:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(secret)
            if hit is None:
                return None
            if hit[0] > now:
                return hit[1]
            started = self._refreshing.get(secret)
            if started is not None and now - started < self.REFRESH_GRACE:
                return hit[1]  # another request is re-verifying it right now
            self._refreshing[secret] = now
            return None

    def would_hit(self, secret: str) -> bool:
        """Whether `get` would answer from memory (fresh, or being re-verified by another request)."""
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(secret)
            if hit is None:
                return False
            started = self._refreshing.get(secret)
            return hit[0] > now or (started is not None and now - started < self.REFRESH_GRACE)

    def put(self, secret: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[secret] = (time.monotonic() + AUTH_CACHE_SECONDS, principal)
            self._refreshing.pop(secret, None)

    def forget(self, secret: str) -> None:
        """A credential that failed re-verification (revoked, expired) is dropped at once."""
        with self._lock:
            self._entries.pop(secret, None)
            self._refreshing.pop(secret, None)


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


def _secret(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(
            401,
            "send an API key or customer token as `Authorization: Bearer <secret>`",
            headers={"WWW-Authenticate": 'Bearer realm="fiscus"'},
        )
    return secret.strip()


def _known(request: Request) -> bool:
    """Whether the caller is settled without touching the database (this request, or the cache)."""
    state = request.state
    if getattr(state, "principal", None) is not None or getattr(state, "auth_error", None) is not None:
        return True
    try:
        secret = _secret(request)
    except ApiError:
        return True
    cache: _AuthCache = request.app.state.auth_cache
    return cache.would_hit(secret)


def resolve_principal(request: Request) -> Principal:
    """The caller, authenticated once per request (the idempotency layer or a dialect may have done it
    already) and rate-limited once per request."""
    state = request.state
    cached = getattr(state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    failed = getattr(state, "auth_error", None)
    if isinstance(failed, ApiError):
        raise failed
    try:
        principal = _authenticate(request)
    except ApiError as exc:
        state.auth_error = exc
        raise
    state.principal = principal
    return principal


def _authenticate(request: Request) -> Principal:
    secret = _secret(request)
    c = container(request)
    cache: _AuthCache = request.app.state.auth_cache
    principal = cache.get(secret)
    if principal is None:
        principal = authenticate(c.db, c.clock, secret)
        if principal is None:
            cache.forget(secret)
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
    return principal


async def principal_on_loop(request: Request) -> Principal:
    """The caller, without a thread hop when it is already known; a database look-up (cache miss,
    once per credential per AUTH_CACHE_SECONDS) goes to the thread pool so the loop never waits on it."""
    if _known(request):
        return resolve_principal(request)
    return await run_in_threadpool(resolve_principal, request)


def on_loop(handler: Callable[P, Response]) -> Callable[P, Coroutine[Any, Any, Response]]:
    """Run a short read handler on the event loop instead of the thread pool.

    Reads of one page take about a millisecond; the thread-pool hop around them cost more than that
    (measured in bench/api_read.py). Writes, which may wait for a lock, stay in the thread pool. The
    caller is authenticated first, off the loop if that needs the database.
    """

    @functools.wraps(handler)
    async def run(*args: P.args, **kwargs: P.kwargs) -> Response:
        request = next((a for a in (*args, *kwargs.values()) if isinstance(a, Request)), None)
        if request is not None:
            with contextlib.suppress(ApiError):
                await principal_on_loop(request)
        return handler(*args, **kwargs)

    return run


async def org_principal(principal: Annotated[Principal, Depends(principal_on_loop)]) -> Principal:
    """Operations that only the organisation itself may perform."""
    if principal.is_customer:
        raise ApiError(
            403,
            "customer tokens are read-only and limited to the customer's own documents",
            code="insufficient_scope",
        )
    return principal


async def scope_of(principal: Annotated[Principal, Depends(principal_on_loop)]) -> Scope:
    return Scope(principal.organization_id, principal.customer_id)


async def container_dep(request: Request) -> Container:
    return container(request)


ContainerDep = Annotated[Container, Depends(container_dep)]
PrincipalDep = Annotated[Principal, Depends(principal_on_loop)]
OrgDep = Annotated[Principal, Depends(org_principal)]
ScopeDep = Annotated[Scope, Depends(scope_of)]
