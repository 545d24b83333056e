"""A console world for tests: two organisations with customers (one named with markup), subscriptions
billed twice, operators of every role in the first, one operator of the second only; and a signed-in
TestClient helper that reads the CSRF token off the page as a browser would."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_console_sort import DOCUMENT_BUYER, DOCUMENT_DUE
from fiscus.domain.clock import FixedClock
from fiscus.queries import console_documents as cd
from fiscus.queries.documents import load_documents
from fiscus.queries.scope import Scope
from fiscus.services.billing_run import run_billing
from fiscus.services.operators import create_operator
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.builders import Tenant, make_customer, make_tenant
from tests.console.settings_support import SettingsIds, build_settings

PASSWORD = "correct horse battery"
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
ROLES = ("admin", "finance", "support", "viewer")


@dataclass
class ConsoleWorld:
    tenant: Tenant
    other: Tenant
    customer_id: int
    subscription_id: int
    document_id: int
    other_document_id: int
    emails: dict[str, str] = field(default_factory=dict)
    """role → e-mail of an operator of `tenant`; "outsider" → an operator of `other` only."""
    settings: SettingsIds | None = None
    """The catalog and settings objects (tests/console/settings_support.py)."""


def build_world(db: Database, clock: FixedClock) -> ConsoleWorld:
    tenant = make_tenant(db, clock, "bg", slug="console-a")
    other = make_tenant(db, clock, "us", slug="console-b")
    customer = make_customer(db, clock, tenant, 1, name=f"Evil {XSS}", email="evil@example.com")
    plain = make_customer(db, clock, tenant, 2, name="Plain Customer", email="plain@example.com")
    foreign = make_customer(db, clock, other, 3, name="Foreign Buyer", email="foreign@example.com")
    sub = create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)])
    create_subscription(db, clock, tenant.org_id, plain, [ItemSpec(tenant.monthly, 2)])
    create_subscription(db, clock, other.org_id, foreign, [ItemSpec(other.monthly, 1)])
    start = clock.now()
    run_billing(db, clock)
    clock.set(start + timedelta(days=31))
    run_billing(db, clock)
    with db.read() as conn:
        d = t.documents.c
        doc = conn.execute(
            select(d.id)
            .where(d.organization_id == tenant.org_id, d.customer_id == customer)
            .order_by(d.id)
            .limit(1)
        ).scalar()
        other_doc = conn.execute(select(d.id).where(d.organization_id == other.org_id)).scalar()
    assert doc is not None
    assert other_doc is not None
    world = ConsoleWorld(tenant, other, customer, sub, int(doc), int(other_doc))
    for role in ROLES:
        email = f"{role}@console.example"
        create_operator(db, clock, email=email, org_id=tenant.org_id, role=role, password=PASSWORD)
        world.emails[role] = email
    create_operator(
        db, clock, email="outsider@console.example", org_id=other.org_id, role="admin", password=PASSWORD
    )
    world.emails["outsider"] = "outsider@console.example"
    world.settings = build_settings(db, clock, tenant.org_id, other.org_id, other.monthly)
    return world


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def login(client: TestClient, email: str, password: str = PASSWORD, next_path: str = "/console/") -> None:
    page = client.get("/console/login")
    answer = client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": csrf_token(page.text), "next": next_path},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def assert_sort_keys_hold(db: Database, org_id: int) -> int:
    """For every document of the organisation, the indexed sort keys (`tables_console_sort`) equal
    what the API shows: the amount due the document view computes and the buyer's name it carries;
    and the list sorted by amount due is that order. Returns how many documents were checked."""
    d = t.documents.c
    with db.read() as conn:
        keys = {
            int(r.id): (int(r.due), str(r.buyer))
            for r in conn.execute(
                select(d.id, DOCUMENT_DUE.label("due"), DOCUMENT_BUYER.label("buyer")).where(
                    d.organization_id == org_id
                )
            )
        }
        views = load_documents(conn, Scope(org_id), sorted(keys), lines=False, products=False)
        listed = cd.page(conn, cd.DocumentQuery(org_id, sort="amount_due"), limit=10_000).rows
    computed = {v.id: (v.amount_due_minor, str(v.buyer["name"])) for v in views}
    assert keys == computed
    assert [r["id"] for r in listed] == sorted(keys, key=lambda i: (keys[i][0], i), reverse=True)
    assert all(r["amount_due_minor"] == keys[r["id"]][0] for r in listed)
    return len(keys)
