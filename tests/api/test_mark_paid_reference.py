"""`POST /documents/{id}/mark_paid` with the payment's reference: stored stripped on the external attempt
(visible as the payment's `provider_charge_id`) and in the audit trail; blank, too long or unknown fields
are 422 problems naming the field, as the OpenAPI document states."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from fiscus.services.billing_run import run_billing
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.api_support import api_client, auth
from tests.builders import make_customer, make_tenant


def _open_invoices(db: Database, clock: FixedClock) -> tuple[dict[str, str], list[int]]:
    tenant = make_tenant(db, clock)
    for n in range(2):
        customer = make_customer(db, clock, tenant, n)
        create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)])
    run_billing(db, clock)
    clock.advance(timedelta(minutes=1))
    d = t.documents.c
    with db.read() as conn:
        ids = conn.execute(
            select(d.id).where(d.organization_id == tenant.org_id, d.status == "open").order_by(d.id)
        ).scalars()
        return auth(create_api_key(db, clock, tenant.org_id).secret), list(ids)


def test_mark_paid_keeps_the_reference(db: Database, clock: FixedClock) -> None:
    headers, (with_ref, without_ref) = _open_invoices(db, clock)
    client: TestClient
    with api_client(db, clock) as client:
        schema = client.get("/openapi.json").json()
        body = schema["components"]["schemas"]["MarkPaidIn"]["properties"]["reference"]
        assert body["anyOf"][0]["maxLength"] == 100
        for bad in ({"reference": "   "}, {"reference": "x" * 101}, {"reference": 5}, {"other": "x"}):
            answer = client.post(f"/api/v1/documents/{with_ref}/mark_paid", json=bad, headers=headers)
            assert answer.status_code == 422, bad
        paid = client.post(
            f"/api/v1/documents/{with_ref}/mark_paid", json={"reference": " TRF-2026-0042 "}, headers=headers
        )
        assert paid.status_code == 200
        assert paid.json()["status"] == "paid"
        plain = client.post(f"/api/v1/documents/{without_ref}/mark_paid", headers=headers)
        assert plain.status_code == 200
        payments = client.get(f"/api/v1/documents/{with_ref}/payments", headers=headers).json()["data"]
    assert [p["provider_charge_id"] for p in payments] == ["TRF-2026-0042"]
    pa, a = t.payment_attempts.c, t.audit_events.c
    with db.read() as conn:
        refs = {
            r.document_id: r.provider_charge_id
            for r in conn.execute(select(pa.document_id, pa.provider_charge_id))
        }
        audit = conn.execute(
            select(a.after).where(a.entity_id == with_ref, a.action == "external_payment")
        ).scalar_one()
    assert refs == {with_ref: "TRF-2026-0042", without_ref: None}
    assert audit["reference"] == "TRF-2026-0042"
