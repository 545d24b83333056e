"""A draft discarded unissued (its subscription cancelled before it was issued: void, never numbered) is
not a document anyone issued: the compatibility dialects neither list nor count nor show it, while the
native API, the organisation's full record, keeps it as void without a number (docs/discounts.md)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from fiscus.services.billing_run import run_billing
from fiscus.services.documents import issue_document
from fiscus.services.org_settings import update_settings
from fiscus.services.subscriptions import ItemSpec, cancel_subscription, create_subscription
from tests.api_support import api_client, auth
from tests.builders import make_customer, make_tenant


def test_dialects_leave_out_a_discarded_draft(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    update_settings(db, clock, tenant.org_id, {"auto_issue": False})
    cid = make_customer(db, clock, tenant)
    sid = create_subscription(db, clock, tenant.org_id, cid, [ItemSpec(tenant.monthly, 1)])
    run_billing(db, clock, at=clock.now() + timedelta(days=40))
    clock.set(clock.now() + timedelta(days=2))
    d = t.documents.c
    with db.read() as conn:
        current, ahead = conn.execute(select(d.id).where(d.subscription_id == sid).order_by(d.id)).scalars()
    issue_document(db, clock, tenant.org_id, current)
    cancel_subscription(db, clock, tenant.org_id, sid, at_period_end=False)
    h = auth(create_api_key(db, clock, tenant.org_id).secret)
    with api_client(db, clock) as api:
        billing = api.get("/v1/billing/invoices/", headers=h).json()
        assert (billing["count"], [i["id"] for i in billing["results"]]) == (1, [current])
        assert api.get(f"/v1/billing/invoices/{ahead}/", headers=h).status_code == 404
        payments = api.get("/invoices", headers=h).json()["data"]["items"]
        assert [i["id"] for i in payments] == [str(current)]
        assert api.get(f"/invoices/{ahead}", headers=h).status_code == 404
        vps = api.get("/v1/invoices", headers=h).json()
        assert (vps["meta"]["total"], [i["id"] for i in vps["data"]]) == (1, [current])
        assert api.get(f"/v1/invoices/{ahead}", headers=h).status_code == 404
        native = api.get("/api/v1/documents", params={"status": "void"}, headers=h).json()["data"]
        assert [(x["id"], x["number"]) for x in native] == [(ahead, None)]
