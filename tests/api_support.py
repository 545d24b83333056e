"""An API world for tests: two organisations, each with two customers, keys, tokens and documents,
served by the real app (TestClient in-process, or a real uvicorn server on loopback)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fiscus.adapters.db.engine import Database
from fiscus.api.app import create_app
from fiscus.bootstrap import Container
from fiscus.config import Settings
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.services.access import create_api_key, create_customer_token
from fiscus.services.billing_run import run_billing
from fiscus.services.orders import create_order
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.builders import Tenant, make_customer, make_tenant


@dataclass
class OrgWorld:
    tenant: Tenant
    key: str
    customers: list[int] = field(default_factory=list)
    tokens: dict[int, str] = field(default_factory=dict)

    @property
    def org_id(self) -> int:
        return self.tenant.org_id


def build_world(db: Database, clock: FixedClock) -> list[OrgWorld]:
    """Two organisations × two customers, each customer with a subscription billed three times and an
    order, so every resource has objects to enumerate."""
    worlds = []
    for kind, slug, doc in (("bg", "alpha", DocumentType.PROFORMA), ("us", "beta", DocumentType.INVOICE)):
        tenant = make_tenant(db, clock, kind, slug=slug, order_document=doc)
        world = OrgWorld(tenant, create_api_key(db, clock, tenant.org_id).secret)
        for n in range(2):
            cid = make_customer(db, clock, tenant, n + (10 if slug == "beta" else 0))
            world.customers.append(cid)
            world.tokens[cid] = create_customer_token(db, clock, tenant.org_id, cid).secret
            create_subscription(db, clock, tenant.org_id, cid, [ItemSpec(tenant.monthly, 1)])
            create_order(db, clock, tenant.org_id, cid, [ItemSpec(tenant.one_off, 2)])
        worlds.append(world)
    start = clock.now()
    for days in (0, 31, 62):
        clock.set(start + timedelta(days=days))
        run_billing(db, clock)
    return worlds


def make_app(db: Database, clock: FixedClock, **settings: object) -> FastAPI:
    base = {
        "database_url": db.url,
        "rate_limit_per_second": 10_000.0,
        "rate_limit_burst": 10_000.0,
        "log_level": "WARNING",
        **settings,
    }
    return create_app(Container(Settings(**base), db, clock))  # type: ignore[arg-type]


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@contextmanager
def api_client(db: Database, clock: FixedClock, **settings: object) -> Iterator[TestClient]:
    with TestClient(make_app(db, clock, **settings), raise_server_exceptions=False) as client:
        yield client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """The app under a real uvicorn server on a loopback port (a free one unless given: an app whose
    public URL must be its own address is built for a port chosen first), in a thread."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
