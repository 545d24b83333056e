"""The demo's orchestrator: seed each registered organisation that does not exist yet by replaying its
scenario into a test-mode sandbox, bill up to now, collect through the gateway, and hand out test-mode
credentials (kept, so a second run shows the same ones and writes nothing)."""

from __future__ import annotations

import random
import time

from rich.console import Console
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.payments.gateway import NAME as GATEWAY
from fiscus.demo.clock import HISTORY
from fiscus.demo.console import ensure_demo_operator
from fiscus.demo.gateway import Payments
from fiscus.demo.registry import SLUGS, definitions
from fiscus.demo.simulation import Simulation
from fiscus.demo.summary import DemoResult, count, summary
from fiscus.domain.clock import Clock
from fiscus.services.access import (
    create_api_key,
    create_customer_token,
    stored_customer_tokens,
    stored_test_keys,
)
from fiscus.services.billing_run import run_billing
from fiscus.services.payments.collection import run_collection
from fiscus.services.payments.janitor import settle_unknown


def is_seeded(db: Database) -> bool:
    """Whether any demo organisation exists (the demo seeds only those that do not). Checked by the
    live organisations' slugs: each is made in one transaction with its sandbox."""
    with db.read() as conn:
        return (
            conn.execute(select(t.organizations.c.id).where(t.organizations.c.slug.in_(SLUGS))).first()
            is not None
        )


def seed_demo(
    db: Database,
    clock: Clock,
    *,
    quiet: bool = False,
    seed: int = 20261123,
    gateway_url: str | None = None,
) -> DemoResult:
    """Seed the organisations that do not exist yet with a year of history, then bill up to now and,
    with a gateway, collect what is due.

    Each organisation draws from its own `Random(seed, slug)` (payments from a stream of their own), so
    it comes out the same whether it is seeded alone or with the others. Without a gateway nobody pays
    by card: customers pay by bank transfer, as recorded payments.
    """
    err = Console(stderr=True, quiet=quiet)
    now = clock.now()
    with db.read() as conn:
        existing = set(conn.execute(select(t.organizations.c.slug)).scalars())
    created = False
    payments = Payments(gateway_url) if gateway_url else None
    try:
        for scenario in definitions():
            slug = scenario.spec.slug
            if slug in existing:
                err.print(f"[dim]{slug}: already seeded[/dim]")
                continue
            began = time.perf_counter_ns()
            sim = Simulation(
                db,
                scenario,
                random.Random(f"{seed}:{slug}"),
                now - HISTORY,
                now,
                payments,
                random.Random(f"{seed}:{slug}:payments"),
                random.Random(f"{seed}:{slug}:usage"),
            )
            org_id = sim.run(clock)
            created = True
            with db.read() as conn:
                documents = count(conn, t.documents, org_id)
                customers = count(conn, t.customers, org_id)
                attempts = count(conn, t.payment_attempts, org_id, t.payment_attempts.c.provider == GATEWAY)
            elapsed_ms = (time.perf_counter_ns() - began) // 1_000_000
            err.print(
                f"[green]{slug}[/green]: {customers} customers, {documents} documents, "
                f"{attempts} card payment attempts, {elapsed_ms} ms"
            )
        if created:
            # Only after seeding: on a database seeded before, billing and collecting belong to the
            # worker (`fiscus demo` runs one while it serves), so a second run writes nothing.
            run_billing(db, clock)
            if payments is not None:
                settle_unknown(db, clock, payments.provider)
                run_collection(db, clock, payments.provider)
    finally:
        if payments is not None:
            payments.close()
    result = summary(db, created)
    result.gateway_url = gateway_url
    _issue_credentials(db, clock, result)
    result.console_login = ensure_demo_operator(db, clock, [o.id for o in result.organizations])
    return result


def _issue_credentials(db: Database, clock: Clock, result: DemoResult) -> None:
    """A test-mode API key per sandbox and a token per customer, made once: test-mode secrets are kept
    (services/access.py says why), so later runs show the same ones and create nothing."""
    for org in result.organizations:
        kept = stored_test_keys(db, org.id, name="demo")
        org.api_key = (
            kept[0].secret if kept else create_api_key(db, clock, org.id, name="demo", actor="demo").secret
        )
        tokens = stored_customer_tokens(db, clock, org.id)
        for c in org.customer_ids:
            if c not in tokens:
                tokens[c] = create_customer_token(db, clock, org.id, c, actor="demo").secret
        org.customer_tokens = {c: tokens[c] for c in org.customer_ids}
