"""`billing: "now"` on POST /subscriptions: the first period is invoiced in the same request, by the
billing run's code, and the next run does not bill it again; a trial has nothing to bill yet."""

from __future__ import annotations

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from fiscus.services.billing_run import run_billing
from tests.api_support import api_client, auth
from tests.builders import make_customer, make_tenant


def test_billing_now_issues_the_first_period_at_once_and_only_once(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    cid = make_customer(db, clock, tenant)
    key = create_api_key(db, clock, tenant.org_id).secret
    items = [{"price_id": tenant.monthly, "quantity": "1"}]
    with api_client(db, clock) as client:
        r = client.post(
            "/api/v1/subscriptions",
            json={"customer_id": cid, "items": items, "billing": "now"},
            headers=auth(key),
        )
        assert r.status_code == 201, r.text
        body = r.json()
        [doc_id] = body["billed_document_ids"]
        doc = client.get(f"/api/v1/documents/{doc_id}", headers=auth(key)).json()
        later = client.post(
            "/api/v1/subscriptions", json={"customer_id": cid, "items": items}, headers=auth(key)
        ).json()
        trial = client.post(
            "/api/v1/subscriptions",
            json={"customer_id": cid, "items": items, "billing": "now", "trial_days": 14},
            headers=auth(key),
        ).json()
        bad = client.post(
            "/api/v1/subscriptions",
            json={"customer_id": cid, "items": items, "billing": "soon"},
            headers=auth(key),
        )
    assert doc["status"] == "open"
    assert doc["number"]
    assert doc["subscription_id"] == body["id"]
    assert body["current_period_start"] is not None
    assert "billed_document_ids" not in later  # the default waits for the run
    assert trial["billed_document_ids"] == []
    assert bad.status_code == 422
    summary = run_billing(db, clock)  # the next run, at the same instant
    assert summary.subscriptions == 1  # only the one created without billing "now"
    d = t.documents.c
    with db.read() as conn:
        per_sub = list(conn.execute(select(d.id).where(d.subscription_id == body["id"])).scalars())
    assert per_sub == [doc_id]
