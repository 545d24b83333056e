"""The dunning policy's emails from start to end (a failure email, the final notice before the last
retry, the email saying what the final action did) and the receipt for a payment recorded by hand,
each switchable per organisation, with previews of the new kind in every language."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_email import email_outbox
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.gateway import cards
from fiscus.queries.dashboard import dashboard
from fiscus.services.billing_run import run_billing
from fiscus.services.documents import mark_paid
from fiscus.services.emails.preview import preview_email
from fiscus.services.emails.settings import update_email_settings
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.payments.collection import run_collection
from fiscus.services.payments.methods import add_card
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.builders import Tenant, make_customer, make_tenant
from tests.payments_support import GatewayProcess, gateway_process


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("gw"), extra_args=("--timeout-seconds", "4")) as gw:
        yield gw


def _rows(db: Database, org_id: int) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [
            dict(r)
            for r in conn.execute(
                select(email_outbox)
                .where(email_outbox.c.organization_id == org_id)
                .order_by(email_outbox.c.id)
            ).mappings()
        ]


def _subscribed(
    db: Database, clock: FixedClock, gateway: GatewayProcess, tenant: Tenant, number: str, n: int
) -> tuple[int, int]:
    customer = make_customer(db, clock, tenant, n, locale="bg", email=f"c{n}@example.com")
    add_card(db, clock, gateway.provider(), tenant.org_id, customer, token=gateway.tokenise(number))
    sub = create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)])
    return customer, int(sub)


def test_dunning_emails_to_the_final_action_and_a_receipt_for_a_payment_by_hand(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    tenant = make_tenant(db, clock, "bg")
    update_email_settings(
        db, clock, tenant.org_id, {"dunning": {"retry_days": [1, 2], "final_action": "cancel_subscription"}}
    )
    _customer, sub = _subscribed(db, clock, gateway, tenant, cards.INSUFFICIENT_FUNDS, 1)
    run_billing(db, clock)
    first = clock.now()
    for day in (0, 1, 2):  # the first charge, then both retries: all declined
        clock.set(first + timedelta(days=day))
        assert run_collection(db, clock, gateway.provider()).failed == 1
    rows = _rows(db, tenant.org_id)
    assert [r["kind"] for r in rows] == [
        "invoice_issued",
        "payment_failed",
        "final_notice",  # before the last retry
        "payment_failed",  # the last try: no retry follows
        "final_action",  # ... and the subscription is cancelled
    ]
    assert rows[-1]["data"]["action"] == "cancel_subscription"
    with db.read() as conn:
        status = conn.execute(select(t.subscriptions.c.status).where(t.subscriptions.c.id == sub)).scalar()
        subject, text, html = preview_email(conn, tenant.org_id, "final_action", rows[-1]["document_id"])
    assert status == "canceled"
    assert subject.startswith("Абонаментът ви е прекратен")  # the customer's language
    assert "List-Unsubscribe" not in html
    # Once the schedule is spent nothing more is queued, however often collection runs.
    clock.set(first + timedelta(days=5))
    assert run_collection(db, clock, gateway.provider()).attempted == 0
    assert len(_rows(db, tenant.org_id)) == 5

    # A hard decline ends the schedule at once: the invoice is written off, and the customer told,
    # unless the organisation switched that email off.
    update_email_settings(db, clock, tenant.org_id, {"dunning": {"final_action": "mark_uncollectible"}})
    _subscribed(db, clock, gateway, tenant, cards.DO_NOT_HONOR, 2)
    run_billing(db, clock)
    assert run_collection(db, clock, gateway.provider()).failed == 1
    new = _rows(db, tenant.org_id)[5:]
    assert [(r["kind"], r["data"].get("action")) for r in new] == [
        ("invoice_issued", None),
        ("payment_failed", None),
        ("final_action", "mark_uncollectible"),
    ]
    with db.read() as conn:
        subject, text, _html = preview_email(
            conn, tenant.org_id, "final_action", new[-1]["document_id"], "en"
        )
    assert subject.startswith("We stopped collecting payment for")
    assert "/pay/" in text  # an uncollectible invoice can still be paid on the hosted page
    update_email_settings(db, clock, tenant.org_id, {"disabled": ["final_action", "payment_receipt"]})
    _subscribed(db, clock, gateway, tenant, cards.DO_NOT_HONOR, 3)
    run_billing(db, clock)
    assert run_collection(db, clock, gateway.provider()).failed == 1
    assert [r["kind"] for r in _rows(db, tenant.org_id)[8:]] == ["invoice_issued", "payment_failed"]

    # A payment recorded by hand (bank transfer) gets a receipt, once the switch is back on.
    customer = make_customer(db, clock, tenant, 4, locale="ru", email="c4@example.com")
    order = create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, 1)])
    switched_off = bill_order_now(db, clock, tenant.org_id, order)
    mark_paid(db, clock, tenant.org_id, switched_off)
    update_email_settings(db, clock, tenant.org_id, {"disabled": []})
    order = create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, 2)])
    doc = bill_order_now(db, clock, tenant.org_id, order)
    mark_paid(db, clock, tenant.org_id, doc)
    receipts = [r for r in _rows(db, tenant.org_id) if r["kind"] == "payment_receipt"]
    assert [(r["document_id"], r["recipient"]) for r in receipts] == [(doc, "c4@example.com")]
    with db.read() as conn:
        subject, text, _html = preview_email(conn, tenant.org_id, "payment_receipt", doc)
    assert "Мы получили ваш платёж" in text


def test_final_action_previews_in_every_language(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    customer = make_customer(db, clock, tenant, locale="kk")
    order = create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, 1)])
    doc = bill_order_now(db, clock, tenant.org_id, order)
    seen = set()
    with db.write() as conn:
        for action in ("mark_uncollectible", "cancel_subscription"):
            conn.execute(
                t.organizations.update()
                .where(t.organizations.c.id == tenant.org_id)
                .values(retry_final_action=action)
            )
            for lang in ("en", "bg", "ru", "kk"):
                subject, text, html = preview_email(conn, tenant.org_id, "final_action", doc, lang)
                assert f'<html lang="{lang}">' in html
                assert "{" not in subject + text  # every placeholder filled
                seen.add(subject)
    assert len(seen) == 8


def test_recovery_rate_counts_what_dunning_recovers(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    """Three first charges fail: one is recovered by a retry, one is a proforma the customer then paid
    by bank transfer (marked paid: the payment lands on the invoice it became), one stays unpaid."""
    tenant = make_tenant(db, clock, "bg", subscription_document=DocumentType.PROFORMA)
    update_email_settings(
        db, clock, tenant.org_id, {"dunning": {"retry_days": [1], "final_action": "leave_open"}}
    )
    customers = [_subscribed(db, clock, gateway, tenant, cards.INSUFFICIENT_FUNDS, n)[0] for n in range(3)]
    run_billing(db, clock)
    first = clock.now()
    assert run_collection(db, clock, gateway.provider()).failed == 3
    with db.read() as conn:
        docs = dict(
            conn.execute(
                select(t.documents.c.customer_id, t.documents.c.id).where(
                    t.documents.c.organization_id == tenant.org_id
                )
            ).all()
        )
    token = gateway.tokenise(cards.SUCCESS)  # the first customer gives a new card before the retry
    add_card(db, clock, gateway.provider(), tenant.org_id, customers[0], token=token, make_default=True)
    clock.set(first + timedelta(days=1))
    run_collection(db, clock, gateway.provider())
    mark_paid(db, clock, tenant.org_id, docs[customers[1]])  # the second pays by bank transfer
    with db.read() as conn:
        dash = dashboard(conn, tenant.org_id, "EUR", first.date(), first.date(), "day", now=clock.now())
    [bucket] = dash.payments
    assert (bucket.recovery.numerator, bucket.recovery.denominator) == (2, 3)
