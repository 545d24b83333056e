"""The HTTP application: the native API under /api/v1, operations endpoints, and (later) the
compatibility dialects and pages. Everything here parses, calls a service or a query, and presents."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace

import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from fiscus import logs
from fiscus.adapters.db.migrations import is_up_to_date
from fiscus.api import docs, errors, openapi_links, operation_docs, route_index
from fiscus.api.deps import RateLimiter, _AuthCache
from fiscus.api.dialects import billing, payments, vps
from fiscus.api.middleware import InputGuard, ObservabilityMiddleware
from fiscus.api.presenters import RenderedCache
from fiscus.api.routes import (
    billing_runs,
    catalog,
    credit_notes,
    customers,
    discounts,
    documents,
    einvoices,
    email_settings,
    files,
    orders,
    organizations,
    portal,
    subscriptions,
    usage,
    webhooks,
)
from fiscus.api.routes import credits as credit_routes
from fiscus.api.routes import payments as payment_routes
from fiscus.bootstrap import Container, build, payment_provider
from fiscus.web import console as operator_console
from fiscus.web import rendering as web
from fiscus.web.email import unsubscribe
from fiscus.web.pay import page as payment_page
from fiscus.web.portal import routes as portal_pages

DESCRIPTION = """Fiscus's own API. Authenticate with `Authorization: Bearer <key>`: an organisation API key
(`fsk_live_…`/`fsk_test_…`) or a customer token (`fct_…`: that customer's own documents, payments and
payment methods only; read-only, except adding a card to itself and paying its own documents).
Amounts are decimal strings in the currency's minor units; money sent as a JSON number is refused.
Every POST takes an `Idempotency-Key`. Errors are RFC 9457 problem details with a stable `code`."""


def create_app(container: Container | None = None) -> FastAPI:
    c = container or build()
    if c.payments is None and c.settings.gateway_url:
        c = replace(c, payments=payment_provider(c.settings))  # a container made without its provider
    logs.configure(c.settings.log_level)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="billing-run")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = c.settings.request_threads
        yield
        executor.shutdown(wait=True)

    app = FastAPI(
        title="Fiscus",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.container = c
    app.state.auth_cache = _AuthCache()
    app.state.rate_limiter = RateLimiter(c.settings.rate_limit_per_second, c.settings.rate_limit_burst)
    app.state.executor = executor
    app.state.rendered = RenderedCache()
    settings = c.settings
    errors.install(
        app,
        surfaces=[
            (settings.dialect_billing_prefix + billing.BASE_PATH, billing.server_error),
            (settings.dialect_payments_prefix + payments.BASE_PATH, payments.server_error),
            (settings.dialect_vps_prefix + vps.BASE_PATH, vps.server_error),
        ],
    )
    app.add_middleware(InputGuard)
    docs.install(app)
    app.add_middleware(
        ObservabilityMiddleware, max_body_bytes=c.settings.max_body_bytes, access_log=c.settings.access_log
    )
    for module in (
        customers,
        catalog,
        subscriptions,
        orders,
        documents,
        credit_notes,
        files,
        einvoices,
        email_settings,
        billing_runs,
        webhooks,
        organizations,
        discounts,
        usage,
        portal,
    ):
        app.include_router(module.api)
    app.include_router(organizations.admin)
    app.include_router(payment_routes.api)
    app.include_router(credit_routes.api)  # issue 17: bought credit
    app.include_router(payment_routes.inbound)
    for dialect in (billing, payments, vps):
        app.include_router(dialect.router(c.settings))
    app.include_router(payment_page.router)
    app.include_router(unsubscribe.router)
    portal_pages.install(app)
    app.include_router(operator_console.router)
    web.mount_static(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=None)
    def readyz() -> JSONResponse:
        try:
            with c.db.read() as conn:
                conn.execute(text("SELECT 1"))
            migrated = is_up_to_date(c.db.engine)
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "detail": str(exc)}, status_code=503)
        if not migrated:
            return JSONResponse({"status": "unavailable", "detail": "database not migrated"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    operation_docs.apply(app)
    openapi_links.apply(app)
    route_index.install(app)
    return app


GC_GEN0_THRESHOLD = 20_000
"""Allocations between young collections in a serving process (CPython's default: 700). A list request
allocates thousands of short-lived objects; with the default, every few requests paid a collection, and
every tenth of those a walk of the middle generation."""


def create_serving_app() -> FastAPI:
    """`fiscus serve`'s factory: the app, then everything built at start-up (routes, schemas, templates,
    the import graph: ~220,000 tracked objects) moved out of the collector's reach with `gc.freeze()`,
    so a full collection no longer walks them: each such walk took ~140 ms of CPU on the loaded bench
    machine, the worker's longest pause (issue 18's p99 tails); after the freeze, a few microseconds."""
    app = create_app()
    gc.collect()
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
    return app
