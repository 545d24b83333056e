"""Email settings and the dunning policy through the API, the switches that stop an email, the
unsubscribe link of reminders, the worker's time-based reminders, and previews with real data."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_email import email_outbox, email_suppressions
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from fiscus.services.billing_run import run_billing
from fiscus.services.emails.compose import Links
from fiscus.services.emails.preview import preview_email
from fiscus.services.emails.scheduled import queue_scheduled
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.payment_links import link_secret
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.api_support import auth, make_app
from tests.builders import Tenant, make_customer, make_tenant
from tests.pages.support import PUBLIC_URL


def _rows(db: Database) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [dict(r) for r in conn.execute(select(email_outbox).order_by(email_outbox.c.id)).mappings()]


@pytest.fixture
def world(db: Database, clock: FixedClock) -> Iterator[tuple[Tenant, TestClient]]:
    tenant = make_tenant(db, clock, "bg")
    key = create_api_key(db, clock, tenant.org_id).secret
    with TestClient(make_app(db, clock, public_url=PUBLIC_URL), headers=auth(key)) as client:
        yield tenant, client


def test_settings_and_dunning_policy_through_the_api(
    db: Database, clock: FixedClock, world: tuple[Tenant, TestClient]
) -> None:
    tenant, api = world
    body = api.get("/api/v1/email_settings").json()
    assert body["dunning"] == {
        "retry_days": [1, 3, 5, 7],
        "final_action": "leave_open",
        "emails": ["payment_failed", "payment_failed", "payment_failed", "final_notice", "payment_failed"],
    }
    changed = api.patch(
        "/api/v1/email_settings",
        json={
            "reply_to": "accounts@hosting.example",
            "brand_color": "#AA3300",
            "disabled": ["invoice_issued"],
            "dunning": {"retry_days": [2, 4], "final_action": "mark_uncollectible"},
        },
    )
    assert changed.status_code == 200, changed.text
    after = changed.json()
    assert after["brand_color"] == "#aa3300"
    assert after["disabled"] == ["invoice_issued"]
    assert after["dunning"]["emails"] == ["payment_failed", "final_notice", "payment_failed"]
    # One policy: the retry schedule the payment settings show is the dunning policy's.
    payment = api.get("/api/v1/payment_settings").json()
    assert (payment["retry_days"], payment["retry_final_action"]) == ([2, 4], "mark_uncollectible")

    misfit = api.patch("/api/v1/email_settings", json={"dunning": {"emails": ["payment_failed"]}})
    assert misfit.status_code == 409  # fine for another stored schedule: a conflict with this one
    assert misfit.json()["code"] == "field_conflict"
    assert misfit.json()["errors"][0]["pointer"] == "/body/dunning/emails"
    wrong = api.patch(
        "/api/v1/email_settings", json={"dunning": {"retry_days": [2], "emails": ["payment_failed"]}}
    )
    assert wrong.status_code == 422  # the body alone disagrees with itself
    assert "dunning.emails" in wrong.text
    for bad in (
        {"from_address": "not an address"},
        {"from_address": "Billing <billing@hosting.example>"},  # a bare address: the name is from_name
        {"reply_to": "a@b"},
        {"from_name": "Billing\r\nBcc: x@evil.example"},
        {"brand_color": "red"},
        {"disabled": ["spam"]},
    ):
        assert api.patch("/api/v1/email_settings", json=bad).status_code == 422, bad
    assert api.get("/api/v1/email_settings").json() == after  # a refused change changes nothing

    # Switched off: an issued invoice queues no email.
    customer = make_customer(db, clock, tenant)
    order = create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, 1)])
    bill_order_now(db, clock, tenant.org_id, order)
    assert _rows(db) == []


def test_unsubscribe_stops_reminders_not_documents(
    db: Database, clock: FixedClock, world: tuple[Tenant, TestClient]
) -> None:
    tenant, api = world
    customer = make_customer(db, clock, tenant, email="Mila@Example.com")
    create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.yearly, 1)])
    run_billing(db, clock)
    later = FixedClock(clock.now() + timedelta(days=360))  # 5 days before the yearly renewal
    assert queue_scheduled(db, later) == 1
    assert queue_scheduled(db, later) == 0  # idempotent by key
    assert [r["kind"] for r in _rows(db)] == ["invoice_issued", "renewal_upcoming"]

    links = Links(PUBLIC_URL, link_secret(db, clock, None))
    with db.read() as conn:
        _subject, text, _html = preview_email(
            conn, tenant.org_id, "renewal_upcoming", customer, "en", links=links
        )
    url = links.unsubscribe(tenant.org_id, "Mila@Example.com")
    assert url in text
    assert "January 15, 2027" in text
    path = url.removeprefix(PUBLIC_URL)
    assert api.get(path).status_code == 200
    assert api.get(path[:-3] + "abc").status_code == 404
    with db.read() as conn:
        assert conn.execute(select(email_suppressions)).first() is None  # looking is not unsubscribing
    assert api.post(path).status_code == 200
    assert [r["status"] for r in _rows(db)] == ["queued", "suppressed"]
    # The next invoice still goes; the next reminder is suppressed at once.
    order = create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, 1)])
    bill_order_now(db, clock, tenant.org_id, order)
    assert _rows(db)[-1]["status"] == "queued"


def test_previews_in_every_language(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "kz")
    customer = make_customer(db, clock, tenant, locale="kk")
    create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)], trial_days=14)
    order = create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, 1)])
    doc = bill_order_now(db, clock, tenant.org_id, order)
    seen = set()
    with db.read() as conn:
        for lang in ("en", "bg", "ru", "kk"):
            for kind in ("invoice_issued", "payment_failed", "final_notice", "payment_receipt"):
                subject, text, html = preview_email(conn, tenant.org_id, kind, doc, lang)
                assert f'<html lang="{lang}">' in html
                assert subject
                assert text
                seen.add(subject)
            subject, _text, html = preview_email(conn, tenant.org_id, "trial_ending", customer, lang)
            assert "29" in subject  # the trial's last day, 14 days on
            seen.add(subject)
        _s, _t, html = preview_email(conn, tenant.org_id, "invoice_issued", doc, None)
        assert '<html lang="kk">' in html  # the customer's own language by default
        assert "<script" not in html
    assert len(seen) == 20
