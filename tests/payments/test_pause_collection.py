"""Pausing a subscription's collection: invoices are still issued and numbered, the worker charges
nothing (no first charge, no retry) until the pause ends by hand or at `resumes_at`; the API and the
events say so. Real gateway process, both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.errors import FieldConflictError, InvalidStateError, NotFoundError
from fiscus.gateway import cards
from fiscus.services.access import create_api_key
from fiscus.services.billing_run import run_billing
from fiscus.services.collection_pause import pause_collection, resume_collection
from fiscus.services.payments.collection import run_collection
from fiscus.services.payments.methods import add_card
from fiscus.services.subscriptions import ItemSpec, cancel_subscription, create_subscription
from tests.api_support import api_client, auth
from tests.builders import make_customer, make_tenant
from tests.payments_support import GatewayProcess, gateway_process


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("gw-pause")) as gw:
        yield gw


def _docs(db: Database, sub_id: int) -> list[dict[str, object]]:
    d = t.documents.c
    with db.read() as conn:
        rows = conn.execute(select(t.documents).where(d.subscription_id == sub_id).order_by(d.id))
        return [dict(r) for r in rows.mappings()]


def _events(db: Database, org_id: int) -> list[str]:
    o = t.outbox_events.c
    with db.read() as conn:
        rows = conn.execute(select(o.type).where(o.organization_id == org_id).order_by(o.id)).scalars()
        return [x for x in rows if "collection" in x]


def test_paused_subscription_is_invoiced_but_not_charged_until_resumed(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    tenant = make_tenant(db, clock, "bg", slug="pause-a")
    cid = make_customer(db, clock, tenant)
    add_card(db, clock, gateway.provider(), tenant.org_id, cid, token=gateway.tokenise(cards.SUCCESS))
    sub = create_subscription(db, clock, tenant.org_id, cid, [ItemSpec(tenant.monthly, 1)])
    other = make_tenant(db, clock, "bg", slug="pause-b")
    with pytest.raises(NotFoundError):
        pause_collection(db, clock, other.org_id, sub)  # another organisation's id
    with pytest.raises(FieldConflictError) as past:
        pause_collection(db, clock, tenant.org_id, sub, resumes_at=clock.now())
    assert past.value.field == "resumes_at"
    pause_collection(db, clock, tenant.org_id, sub, actor="test")
    run_billing(db, clock)
    (doc,) = _docs(db, sub)
    assert doc["status"] == "open"
    assert doc["number"]  # issued and numbered as usual
    assert doc["next_payment_attempt_at"] is not None  # planned, and waiting
    assert run_collection(db, clock, gateway.provider()).attempted == 0
    assert _docs(db, sub)[0]["status"] == "open"
    with pytest.raises(NotFoundError):
        resume_collection(db, clock, other.org_id, sub)
    resume_collection(db, clock, tenant.org_id, sub, actor="test")
    with pytest.raises(InvalidStateError):
        resume_collection(db, clock, tenant.org_id, sub)  # not paused any more
    assert run_collection(db, clock, gateway.provider()).succeeded == 1
    assert _docs(db, sub)[0]["status"] == "paid"
    assert _events(db, tenant.org_id) == ["subscription.collection_paused", "subscription.collection_resumed"]


def test_pause_ends_by_itself_at_resumes_at_and_refuses_ended_subscriptions(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    tenant = make_tenant(db, clock, "bg", slug="pause-c")
    cid = make_customer(db, clock, tenant)
    add_card(db, clock, gateway.provider(), tenant.org_id, cid, token=gateway.tokenise(cards.SUCCESS))
    sub = create_subscription(db, clock, tenant.org_id, cid, [ItemSpec(tenant.monthly, 1)])
    start = clock.now()
    pause_collection(db, clock, tenant.org_id, sub, resumes_at=start + timedelta(days=3))
    run_billing(db, clock)
    assert run_collection(db, clock, gateway.provider()).attempted == 0
    clock.set(start + timedelta(days=3))
    assert run_collection(db, clock, gateway.provider()).succeeded == 1
    cancel_subscription(db, clock, tenant.org_id, sub, at_period_end=False)
    with pytest.raises(InvalidStateError):
        pause_collection(db, clock, tenant.org_id, sub)


def test_api_pause_and_resume_collection(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg", slug="pause-api")
    other = make_tenant(db, clock, "bg", slug="pause-api-b")
    cid = make_customer(db, clock, tenant)
    sub = create_subscription(db, clock, tenant.org_id, cid, [ItemSpec(tenant.monthly, 1)])
    h = auth(create_api_key(db, clock, tenant.org_id).secret)
    foreign = auth(create_api_key(db, clock, other.org_id).secret)
    base = f"/api/v1/subscriptions/{sub}"
    with api_client(db, clock) as api:
        assert api.get(base, headers=h).json()["pause_collection"] is None
        when = (clock.now() + timedelta(days=10)).isoformat()
        paused = api.post(f"{base}/pause_collection", json={"resumes_at": when}, headers=h)
        assert paused.status_code == 200, paused.text
        assert paused.json()["pause_collection"]["resumes_at"] is not None
        listed = api.get("/api/v1/subscriptions", headers=h).json()["data"]
        assert [s["pause_collection"] is not None for s in listed] == [True]
        assert api.post(f"{base}/pause_collection", json={}, headers=foreign).status_code == 404
        past = api.post(f"{base}/pause_collection", json={"resumes_at": "2020-01-01T00:00:00Z"}, headers=h)
        assert past.status_code == 409
        assert past.json()["code"] == "field_conflict"
        naive = api.post(f"{base}/pause_collection", json={"resumes_at": "2030-01-01T00:00:00"}, headers=h)
        assert naive.status_code == 422
        assert api.post(f"{base}/resume_collection", headers=h).json()["pause_collection"] is None
        again = api.post(f"{base}/resume_collection", headers=h)
        assert again.status_code == 409
        assert again.json()["code"] == "invalid_state"
