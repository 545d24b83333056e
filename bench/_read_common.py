"""api_read.py's constants, endpoints and data set-up."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _setup import ANCHOR, CREATED, TZ, create_catalog, settle
from billing_run import Target
from rich.console import Console
from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from fiscus.services.billing_run import run_billing
from fiscus.testing.bulk import bulk_customers, bulk_subscriptions

ROOT = Path(__file__).resolve().parent.parent
FISCUS = ROOT / ".venv" / "bin" / "fiscus"
SERVER_CPU = "0"
WRK_CPU = "1"
CUSTOMERS = 1_000
BILLING_RUNS = 3
WARMUP_SECONDS = 3
GOAL_RPS = 3_000
"""Requests per second per worker core the issue asks for (information only, never an exit code)."""
GOAL_P99_MS = 30.0
GOAL_CONNECTIONS = 50
DATABASES = ("sqlite", "postgresql")

console = Console(highlight=False, width=130)


def say(message: str = "") -> None:
    console.print(message, markup=False, soft_wrap=True)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One measured GET. `path` may name fields of Fixture in braces ({document_id}, {customer_id})."""

    label: str
    path: str
    baseline: bool = False


ENDPOINTS: list[Endpoint] = [
    Endpoint("native list of 20", "/api/v1/documents?limit=20"),
    Endpoint("native get one", "/api/v1/documents/{document_id}"),
    Endpoint("seed 000 list (DRF, 20)", "/v1/billing/invoices/?pageSize=20"),
    Endpoint("seed 001 list (cursor, 20)", "/invoices?limit=20"),
    Endpoint("seed 002 list (Laravel, 30)", "/v1/invoices?page=2"),
    Endpoint("hello: /healthz", "/healthz", baseline=True),
]
"""What is measured, in this order; add a row to measure another endpoint. Exactly one baseline."""

PHASES: list[tuple[str, str, str]] = [
    ("auth: authenticate() (on an auth-cache miss only)", "fiscus.api.deps", "authenticate"),
    ("query: page_document_stamps", "fiscus.api.routes.documents", "page_document_stamps"),
    ("query: page_document_stamps", "fiscus.api.dialects.payments", "page_document_stamps"),
    ("query: document_stamp", "fiscus.api.routes.documents", "document_stamp"),
    ("query: count_documents (dialect totals)", "fiscus.api.dialects.billing", "count_documents"),
    ("query: count_documents (dialect totals)", "fiscus.api.dialects.vps", "count_documents"),
    ("query: offset_document_stamps", "fiscus.api.dialects.billing", "offset_document_stamps"),
    ("query: offset_document_stamps", "fiscus.api.dialects.vps", "offset_document_stamps"),
    ("query: load_documents (cache misses)", "fiscus.api.routes.documents", "load_documents"),
    ("query: load_documents (cache misses)", "fiscus.api.dialects.billing", "load_documents"),
    ("query: load_documents (cache misses)", "fiscus.api.dialects.vps", "load_documents"),
    ("query: load_documents (cache misses)", "fiscus.api.dialects.payments", "load_documents"),
    ("presentation: presenters.document (cache misses)", "fiscus.api.presenters", "document"),
    ("encoding: presenters.encode (cache misses)", "fiscus.api.presenters", "encode"),
    ("encoding: presenters.list_bytes (the page from cached bodies)", "fiscus.api.presenters", "list_bytes"),
    ("encoding: presenters.json_response (msgspec)", "fiscus.api.presenters", "json_response"),
]
"""--profile: (label, module, attribute) of the functions the request path calls through a module
attribute, timed by wrapping that attribute. None of them nests inside another."""


# --------------------------------------------------------------------------- data set-up


@dataclass(frozen=True, slots=True)
class Fixture:
    url: str
    org_id: int
    customer_id: int
    document_id: int
    secret: str
    key_prefix: str
    invoices: int
    lines: int
    migrate_seconds: float
    setup_seconds: float

    def path(self, endpoint: Endpoint) -> str:
        return endpoint.path.format(document_id=self.document_id, customer_id=self.customer_id)


def run_instant(month: int) -> datetime:
    """One hour after the start of the month-th monthly period (0: the anchor), in Sofia."""
    local = ANCHOR.astimezone(TZ)
    years, month0 = divmod(local.month - 1 + month, 12)
    start = local.replace(year=local.year + years, month=month0 + 1)
    return start.astimezone(UTC) + timedelta(hours=1)


def prepare(target: Target) -> tuple[Database, Fixture]:
    """Migrations, organisation and catalog, customers and subscriptions, three billing runs, a key."""
    db, migrate = target.fresh("api_read")
    started = time.perf_counter()
    clock = FixedClock(CREATED)
    cat = create_catalog(db, clock)  # BG, EUR, Europe/Sofia, 20% VAT, vat_id BG175074752
    customers = bulk_customers(db, cat.org_id, CUSTOMERS, now=clock.now())
    bulk_subscriptions(db, cat.org_id, customers, [cat.price_a], start=ANCHOR, now=clock.now())
    for month in range(BILLING_RUNS):
        at = run_instant(month)
        summary = run_billing(db, FixedClock(at), at=at)
        failed = f", {len(summary.failed_subscriptions)} FAILED" if summary.failed_subscriptions else ""
        say(
            f"[{target.name}] billing run at {at.isoformat()}: {summary.documents:,} invoices in "
            f"{summary.seconds:.2f}s, totals {summary.totals}{failed}"
        )
    key = create_api_key(db, FixedClock(run_instant(BILLING_RUNS - 1)), cat.org_id, name="bench")
    settle(db)
    d = t.documents.c
    with db.read() as conn:
        invoices = conn.execute(
            select(func.count()).where(d.type == "invoice", d.status == "open", d.number.is_not(None))
        ).scalar_one()
        lines = conn.execute(select(func.count()).select_from(t.document_lines)).scalar_one()
        # "some id": a document from the middle of the table, neither the newest nor the oldest.
        middle = select(func.min(d.id) + (func.max(d.id) - func.min(d.id)) / 2)
        document_id = conn.execute(middle).scalar_one()
    fixture = Fixture(
        url=db.url,
        org_id=cat.org_id,
        customer_id=customers[len(customers) // 2],
        document_id=int(document_id),
        secret=key.secret,
        key_prefix=key.prefix,
        invoices=int(invoices),
        lines=int(lines),
        migrate_seconds=migrate,
        setup_seconds=time.perf_counter() - started,
    )
    return db, fixture


class Non2xxError(RuntimeError):
    """Error responses: the figures would measure the error path, not the endpoint."""
