"""An archived price takes no new subscription or order; subscriptions already on it keep billing; it
can be offered again. Through the API and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from fiscus.services.billing_run import run_billing
from fiscus.services.subscriptions import ItemSpec, change_subscription, create_subscription
from tests.api_support import api_client, auth
from tests.builders import make_customer, make_tenant


def test_archived_price_takes_nothing_new_and_existing_subscriptions_continue(
    db: Database, clock: FixedClock
) -> None:
    tenant = make_tenant(db, clock, "bg")
    cid = make_customer(db, clock, tenant)
    sid = create_subscription(db, clock, tenant.org_id, cid, [ItemSpec(tenant.monthly, 1)])
    key = create_api_key(db, clock, tenant.org_id).secret
    with api_client(db, clock) as client:
        r = client.post(f"/api/v1/prices/{tenant.monthly}/archive", headers=auth(key))
        assert r.status_code == 200, r.text
        assert r.json()["active"] is False
        sub = client.post(
            "/api/v1/subscriptions",
            json={"customer_id": cid, "items": [{"price_id": tenant.monthly, "quantity": "1"}]},
            headers=auth(key),
        )
        assert sub.status_code == 409  # well-formed, refused by the data: a field conflict
        assert sub.json()["errors"][0]["field"] == "items.0.price_id"
        assert "archived" in sub.json()["detail"]
        order = client.post(
            "/api/v1/orders",
            json={"customer_id": cid, "items": [{"price_id": tenant.one_off, "quantity": "1"}]},
            headers=auth(key),
        )
        assert order.status_code == 201  # other prices are untouched
        client.post(f"/api/v1/prices/{tenant.one_off}/archive", headers=auth(key))
        refused = client.post(
            "/api/v1/orders",
            json={"customer_id": cid, "items": [{"price_id": tenant.one_off, "quantity": "1"}]},
            headers=auth(key),
        )
        assert refused.status_code == 409
    # the existing subscription keeps its archived price, through a change that keeps it, and is billed
    change_subscription(db, clock, tenant.org_id, sid, [ItemSpec(tenant.monthly, 2)])
    clock.set(clock.now() + timedelta(days=1))
    summary = run_billing(db, clock)
    assert summary.subscriptions == 1
    with api_client(db, clock) as client:
        again = client.post(f"/api/v1/prices/{tenant.monthly}/unarchive", headers=auth(key))
        assert again.json()["active"] is True
        ok = client.post(
            "/api/v1/subscriptions",
            json={"customer_id": cid, "items": [{"price_id": tenant.monthly, "quantity": "1"}]},
            headers=auth(key),
        )
        assert ok.status_code == 201
    with db.read() as conn:
        actions = list(
            conn.execute(
                select(t.audit_events.c.action).where(
                    t.audit_events.c.entity_type == "price", t.audit_events.c.entity_id == tenant.monthly
                )
            ).scalars()
        )
    assert actions[-2:] == ["archived", "unarchived"]


def test_cli_archives_a_price(db: Database, db_url: str, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    env = {**os.environ, "FISCUS_DATABASE_URL": db_url}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fiscus.cli",
            "prices",
            "archive",
            str(tenant.monthly),
            "--org",
            str(tenant.org_id),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stderr
    with db.read() as conn:
        active = conn.execute(
            select(func.count()).where(t.prices.c.id == tenant.monthly, t.prices.c.active.is_(True))
        ).scalar_one()
    assert active == 0
