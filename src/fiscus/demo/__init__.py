"""`fiscus demo`: three organisations with a year of simulated history, written through the services.

The history is replayed rather than inserted so that every row comes from the same use cases
production runs, at historical instants read from the simulation's clock: the demo data then satisfies
every invariant `fiscus reconcile` checks, and exercises trials, proration, cancellations, proformas
and reverse charge the way real traffic would.

With a gateway (`fiscus demo` starts the built-in test gateway as its own process), customers also pay:
cards tokenised at the gateway as a browser would, charged by the collection worker on issue with
retries on schedule, declines, a lost answer settled by the janitor, authorisations captured (one
partly), and refunds with their credit notes; all over real HTTP with the simulation's moving clock.

The parts: `scenario` (the shape of an organisation's scenario) and one module per organisation
(`kz_marketplace`, `bg_vps`, `us_saas`) listed in `registry`; `planning` (every random choice),
`clock` (the simulation clock and its agenda), `simulation` (the replay), `collection` (the card side
of the year), `gateway` (the gateway process and the demo's provider), `seed` (the orchestrator),
`summary` and `printing` (what is there, read back and printed).
"""

from __future__ import annotations

from fiscus.demo.gateway import (
    GatewayProcess,
    WorkerProcess,
    free_port,
    gateway_process,
    new_webhook_secret,
    reset_gateway_ledger,
)
from fiscus.demo.printing import describe
from fiscus.demo.registry import SANDBOX_SLUGS, SLUGS
from fiscus.demo.seed import is_seeded, seed_demo
from fiscus.demo.summary import (
    TEST_CARDS,
    DemoOrganization,
    DemoResult,
    PaymentLink,
    find_payment_links,
    server_url,
)

__all__ = [
    "SANDBOX_SLUGS",
    "SLUGS",
    "TEST_CARDS",
    "DemoOrganization",
    "DemoResult",
    "GatewayProcess",
    "PaymentLink",
    "WorkerProcess",
    "describe",
    "find_payment_links",
    "free_port",
    "gateway_process",
    "is_seeded",
    "new_webhook_secret",
    "reset_gateway_ledger",
    "seed_demo",
    "server_url",
]
