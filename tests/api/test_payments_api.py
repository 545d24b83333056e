"""The payments API as a client uses it, against the test gateway running as its own process: cards by
token, defaults, charges and declines, captures, refunds with credit notes, settings, inbound webhooks;
who may see what; bad input as 422 problems; 409 when payments are not configured."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks import Webhook

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.gateway import cards
from fiscus.services.access import create_api_key, create_customer_token
from fiscus.services.billing_run import run_billing
from fiscus.services.reconcile import reconcile
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.api_support import api_client, auth
from tests.builders import make_customer, make_tenant
from tests.payments_support import WEBHOOK_SECRET, GatewayProcess, gateway_process


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("gw-api")) as gw:
        yield gw


@dataclass
class Shop:
    org_id: int
    key: str
    customers: list[int] = field(default_factory=list)
    tokens: dict[int, str] = field(default_factory=dict)
    invoices: dict[int, int] = field(default_factory=dict)
    """customer → its open invoice"""

    @property
    def h(self) -> dict[str, str]:
        return auth(self.key)


def _shop(db: Database, clock: FixedClock, kind: str, slug: str, customers: int = 2) -> Shop:
    """An organisation whose customers each have one open invoice (a billed monthly subscription)."""
    tenant = make_tenant(db, clock, kind, slug=slug)
    shop = Shop(tenant.org_id, create_api_key(db, clock, tenant.org_id).secret)
    for n in range(customers):
        cid = make_customer(db, clock, tenant, n + (100 if kind == "us" else 0))
        shop.customers.append(cid)
        shop.tokens[cid] = create_customer_token(db, clock, tenant.org_id, cid).secret
        create_subscription(db, clock, tenant.org_id, cid, [ItemSpec(tenant.monthly, 1)])
    run_billing(db, clock)
    d = t.documents.c
    with db.read() as conn:
        for cid, doc_id in conn.execute(
            select(d.customer_id, d.id).where(d.organization_id == tenant.org_id, d.status == "open")
        ):
            shop.invoices[cid] = doc_id
    assert len(shop.invoices) == customers
    return shop


@pytest.fixture
def client(db: Database, clock: FixedClock, gateway: GatewayProcess) -> Iterator[TestClient]:
    with api_client(db, clock, gateway_url=gateway.url, gateway_webhook_secret=WEBHOOK_SECRET) as api:
        yield api


def _add_card(
    api: TestClient,
    gateway: GatewayProcess,
    headers: dict[str, str],
    customer: int,
    number: str,
    **extra: Any,
) -> dict[str, Any]:
    token = gateway.tokenise(number)
    r = api.post(
        f"/api/v1/customers/{customer}/payment_methods", json={"token": token, **extra}, headers=headers
    )
    assert r.status_code == 201, r.text
    assert token not in r.text  # the provider's token stays inside Fiscus
    body: dict[str, Any] = r.json()
    return body


def _problem(r: Any, status: int, field_name: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    if field_name is not None:
        assert field_name in {e["field"] for e in body["errors"]}, body
    return body


def _clean(db: Database) -> None:
    bad = {k: v for k, v in reconcile(db).items() if v}
    assert not bad, bad


def _minor(amount: str) -> int:
    return int(Decimal(amount) * 100)


def test_cards_by_token_default_list_and_detach(
    db: Database, clock: FixedClock, gateway: GatewayProcess, client: TestClient
) -> None:
    shop = _shop(db, clock, "bg", "cards", customers=1)
    [cid] = shop.customers
    first = _add_card(client, gateway, shop.h, cid, cards.SUCCESS, holder="Ivan Petrov")
    assert first["object"] == "payment_method"
    assert first["customer_id"] == cid
    assert (first["type"], first["network"], first["brand"], first["last4"]) == (
        "card",
        "visa",
        "visa",
        "4242",
    )
    assert (first["exp_month"], first["exp_year"], first["status"]) == (12, 2099, "active")
    assert first["fingerprint"]
    assert first["is_default"] is True
    assert first["holder"] == "Ivan Petrov"
    second = _add_card(client, gateway, shop.h, cid, "5555555555554444", make_default=False)
    assert (second["brand"], second["last4"], second["is_default"]) == ("mastercard", "4444", False)

    listed = client.get(f"/api/v1/customers/{cid}/payment_methods", headers=shop.h).json()
    assert [m["id"] for m in listed["data"]] == [second["id"], first["id"]]
    assert (
        client.get(f"/api/v1/customers/{cid}", headers=shop.h).json()["default_payment_method_id"]
        == first["id"]
    )

    r = client.post(
        f"/api/v1/customers/{cid}/default_payment_method",
        json={"payment_method_id": second["id"]},
        headers=shop.h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["is_default"] is True
    assert client.get(f"/api/v1/payment_methods/{first['id']}", headers=shop.h).json()["is_default"] is False

    detached = client.delete(f"/api/v1/payment_methods/{second['id']}", headers=shop.h)
    assert detached.status_code == 200, detached.text
    assert (detached.json()["status"], detached.json()["is_default"]) == ("detached", False)
    assert client.get(f"/api/v1/customers/{cid}", headers=shop.h).json()["default_payment_method_id"] is None
    active = client.get(f"/api/v1/customers/{cid}/payment_methods?status=active", headers=shop.h).json()
    assert [m["id"] for m in active["data"]] == [first["id"]]
    r = client.post(
        f"/api/v1/customers/{cid}/default_payment_method",
        json={"payment_method_id": second["id"]},
        headers=shop.h,
    )
    _problem(r, 422, "payment_method_id")

    # a subscription may name its own method; null goes back to the customer's default
    with db.read() as conn:
        sub_id = conn.execute(
            select(t.subscriptions.c.id).where(t.subscriptions.c.customer_id == cid)
        ).scalar_one()
    r = client.post(
        f"/api/v1/subscriptions/{sub_id}/payment_method",
        json={"payment_method_id": first["id"]},
        headers=shop.h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["payment_method_id"] == first["id"]
    r = client.post(
        f"/api/v1/subscriptions/{sub_id}/payment_method", json={"payment_method_id": None}, headers=shop.h
    )
    assert r.json()["payment_method_id"] is None

    # an unknown token names the field
    r = client.post(f"/api/v1/customers/{cid}/payment_methods", json={"token": "pm_nope"}, headers=shop.h)
    _problem(r, 404, "token")
    with db.read() as conn:
        stored = json.dumps(
            [dict(r) for r in conn.execute(select(t.payment_methods)).mappings()], default=str
        )
    assert cards.SUCCESS not in stored
    assert "5555555555554444" not in stored


def test_customer_tokens_and_other_organisations_see_only_their_own(
    db: Database, clock: FixedClock, gateway: GatewayProcess, client: TestClient
) -> None:
    x = _shop(db, clock, "bg", "org-x")
    y = _shop(db, clock, "us", "org-y", customers=1)
    a, b = x.customers
    ta, tb = auth(x.tokens[a]), auth(x.tokens[b])
    own = _add_card(client, gateway, ta, a, cards.SUCCESS)  # a customer adds a card to itself
    theirs = _add_card(client, gateway, x.h, b, cards.SUCCESS)
    paid = client.post(f"/api/v1/documents/{x.invoices[b]}/payments", json={}, headers=x.h)
    assert paid.json()["status"] == "succeeded", paid.text
    payment = paid.json()["id"]

    # customer A: never B's cards, payments or documents
    token = gateway.tokenise(cards.SUCCESS)
    _problem(client.post(f"/api/v1/customers/{b}/payment_methods", json={"token": token}, headers=ta), 404)
    _problem(client.get(f"/api/v1/customers/{b}/payment_methods", headers=ta), 404)
    _problem(client.get(f"/api/v1/payment_methods/{theirs['id']}", headers=ta), 404)
    _problem(client.get(f"/api/v1/payments/{payment}", headers=ta), 404)
    _problem(client.get(f"/api/v1/documents/{x.invoices[b]}/payments", headers=ta), 404)
    _problem(client.post(f"/api/v1/documents/{x.invoices[b]}/payments", json={}, headers=ta), 404)
    r = client.post(
        f"/api/v1/documents/{x.invoices[a]}/payments", json={"payment_method_id": theirs["id"]}, headers=ta
    )
    _problem(r, 404)
    assert client.get("/api/v1/payments", headers=ta).json()["data"] == []
    assert [
        m["id"] for m in client.get(f"/api/v1/customers/{a}/payment_methods", headers=ta).json()["data"]
    ] == [own["id"]]
    # customer tokens do not manage money
    _problem(client.delete(f"/api/v1/payment_methods/{own['id']}", headers=ta), 403)
    _problem(client.post(f"/api/v1/documents/{x.invoices[b]}/refunds", json={"reason": "x"}, headers=tb), 403)
    _problem(client.post(f"/api/v1/payments/{payment}/void", headers=tb), 403)
    _problem(client.get("/api/v1/payment_settings", headers=tb), 403)
    # customer B sees its own payment
    assert [p["id"] for p in client.get("/api/v1/payments", headers=tb).json()["data"]] == [payment]
    assert client.get(f"/api/v1/payments/{payment}", headers=tb).status_code == 200

    # organisation Y enumerating X's ids: 404 everywhere, nothing in its lists
    for path in (
        f"/api/v1/payment_methods/{own['id']}",
        f"/api/v1/payment_methods/{theirs['id']}",
        f"/api/v1/payments/{payment}",
        f"/api/v1/customers/{a}/payment_methods",
        f"/api/v1/documents/{x.invoices[b]}/payments",
        f"/api/v1/documents/{x.invoices[b]}/refunds",
    ):
        _problem(client.get(path, headers=y.h), 404)
    for method, path, body in (
        ("POST", f"/api/v1/documents/{x.invoices[a]}/payments", {}),
        ("POST", f"/api/v1/documents/{x.invoices[b]}/refunds", {"reason": "taken"}),
        ("POST", f"/api/v1/payments/{payment}/capture", {}),
        ("POST", f"/api/v1/payments/{payment}/void", None),
        ("DELETE", f"/api/v1/payment_methods/{own['id']}", None),
        ("POST", f"/api/v1/customers/{a}/default_payment_method", {"payment_method_id": own["id"]}),
        ("POST", f"/api/v1/customers/{a}/payment_methods", {"token": token}),
    ):
        _problem(client.request(method, path, json=body, headers=y.h), 404)
    yc = y.customers[0]
    r = client.post(
        f"/api/v1/documents/{y.invoices[yc]}/payments", json={"payment_method_id": own["id"]}, headers=y.h
    )
    _problem(r, 404)
    assert client.get("/api/v1/payments?limit=100", headers=y.h).json()["data"] == []
    assert client.get(f"/api/v1/payments?document_id={x.invoices[b]}", headers=y.h).json()["data"] == []
    assert client.get(f"/api/v1/documents/{x.invoices[a]}", headers=ta).json()["status"] == "open"
    # a customer pays its own document with its own card
    mine = client.post(
        f"/api/v1/documents/{x.invoices[a]}/payments", json={"payment_method_id": own["id"]}, headers=ta
    )
    assert mine.status_code == 201, mine.text
    assert mine.json()["status"] == "succeeded"
    assert client.get(f"/api/v1/documents/{x.invoices[a]}", headers=ta).json()["status"] == "paid"
    _clean(db)


def test_a_charge_pays_the_document(
    db: Database, clock: FixedClock, gateway: GatewayProcess, client: TestClient
) -> None:
    shop = _shop(db, clock, "bg", "charge", customers=1)
    [cid] = shop.customers
    doc_id = shop.invoices[cid]
    method = _add_card(client, gateway, shop.h, cid, cards.SUCCESS)
    before = client.get(f"/api/v1/documents/{doc_id}", headers=shop.h).json()
    assert (before["status"], before["amount_refunded"]) == ("open", "0.00")
    clock.advance(timedelta(minutes=1))
    r = client.post(
        f"/api/v1/documents/{doc_id}/payments", json={}, headers={**shop.h, "Idempotency-Key": "c1"}
    )
    assert r.status_code == 201, r.text
    attempt = r.json()
    assert attempt["object"] == "payment"
    assert (attempt["status"], attempt["document_id"], attempt["paid_document_id"]) == (
        "succeeded",
        doc_id,
        doc_id,
    )
    assert attempt["amount"] == before["total"] == attempt["captured_amount"] == attempt["authorized_amount"]
    assert (attempt["currency"], attempt["payment_method_id"]) == (before["currency"], method["id"])
    assert attempt["card"] == {"brand": "visa", "last4": "4242"}
    assert (attempt["error"], attempt["hard_decline"], attempt["trigger"]) == (None, False, "api")
    assert attempt["provider_charge_id"]
    assert attempt["settled_at"]
    assert attempt["captured_at"]
    assert attempt["refunded_amount"] == "0.00"
    # the retried request replays the answer and charges nothing more
    again = client.post(
        f"/api/v1/documents/{doc_id}/payments", json={}, headers={**shop.h, "Idempotency-Key": "c1"}
    )
    assert again.json() == attempt
    assert again.headers.get("idempotent-replayed") == "true"

    doc = client.get(f"/api/v1/documents/{doc_id}", headers=shop.h).json()
    assert (doc["status"], doc["amount_paid"], doc["amount_due"]) == ("paid", before["total"], "0.00")
    assert doc["next_payment_attempt_at"] is None
    assert doc["paid_at"]
    assert (
        client.get(f"/api/v1/documents/{doc_id}", headers=auth(shop.tokens[cid])).json()["status"] == "paid"
    )
    listed = client.get(f"/api/v1/documents/{doc_id}/payments", headers=shop.h).json()["data"]
    assert [a["id"] for a in listed] == [attempt["id"]]
    assert client.get(f"/api/v1/payments?document_id={doc_id}&status=succeeded", headers=shop.h).json()[
        "data"
    ]
    assert client.get("/api/v1/payments?status=failed", headers=shop.h).json()["data"] == []
    assert client.get(f"/api/v1/payments/{attempt['id']}", headers=shop.h).json() == attempt
    # nothing is due any more
    _problem(client.post(f"/api/v1/documents/{doc_id}/payments", json={}, headers=shop.h), 409)
    assert [c for c in _charges(gateway) if c["id"] == attempt["provider_charge_id"]]
    _clean(db)


@pytest.mark.parametrize(
    ("number", "code", "hard"),
    [
        (cards.INSUFFICIENT_FUNDS, "insufficient_funds", False),
        (cards.DO_NOT_HONOR, "do_not_honor", True),
        (cards.EXPIRED_CARD, "expired_card", True),
        (cards.PROCESSING_ERROR, "processing_error", False),
    ],
)
def test_declines_show_the_error(
    db: Database,
    clock: FixedClock,
    gateway: GatewayProcess,
    client: TestClient,
    number: str,
    code: str,
    hard: bool,
) -> None:
    shop = _shop(db, clock, "bg", "declines", customers=1)
    [cid] = shop.customers
    doc_id = shop.invoices[cid]
    _add_card(client, gateway, shop.h, cid, number)
    untried = client.get(f"/api/v1/documents/{doc_id}", headers=shop.h).json()  # rendered and cached
    assert (untried["payment_attempt_count"], untried["last_payment_attempt_at"]) == (0, None)
    r = client.post(f"/api/v1/documents/{doc_id}/payments", json={}, headers=shop.h)
    assert r.status_code == 201, r.text
    attempt = r.json()
    assert attempt["status"] == "failed"
    # the clock has not moved, and the document shows the attempt all the same (listed too)
    for doc in (
        client.get(f"/api/v1/documents/{doc_id}", headers=shop.h).json(),
        client.get("/api/v1/documents", headers=shop.h).json()["data"][0],
    ):
        assert doc["payment_attempt_count"] == 1
        assert doc["last_payment_attempt_at"] == attempt["created_at"]
        assert doc["last_payment_attempt_status"] == "failed"
    assert attempt["error"]["code"] == code
    assert attempt["error"]["message"]
    assert attempt["hard_decline"] is hard
    assert attempt["captured_amount"] == "0.00"
    assert attempt["paid_document_id"] is None
    doc = client.get(f"/api/v1/documents/{doc_id}", headers=shop.h).json()
    assert (doc["status"], doc["amount_paid"]) == ("open", "0.00")
    assert (
        client.get("/api/v1/payments?status=failed", headers=shop.h).json()["data"][0]["id"] == attempt["id"]
    )
    _clean(db)


def test_refunds_with_credit_notes_and_over_refund_refused(
    db: Database, clock: FixedClock, gateway: GatewayProcess, client: TestClient
) -> None:
    shop = _shop(db, clock, "bg", "refunds", customers=1)
    [cid] = shop.customers
    doc_id = shop.invoices[cid]
    _add_card(client, gateway, shop.h, cid, cards.SUCCESS)
    attempt = client.post(f"/api/v1/documents/{doc_id}/payments", json={}, headers=shop.h).json()
    total = attempt["captured_amount"]
    url = f"/api/v1/documents/{doc_id}/refunds"

    over = str(Decimal(total) + Decimal("0.01"))
    body = _problem(
        client.post(url, json={"amount": over, "reason": "too much"}, headers=shop.h), 409, "amount"
    )
    assert total in body["detail"]
    _problem(client.post(url, json={"amount": "1.001", "reason": "cents"}, headers=shop.h), 409, "amount")
    _problem(client.post(url, json={"amount": "0", "reason": "zero"}, headers=shop.h), 422, "amount")
    _problem(client.post(url, json={"amount": "-1.00", "reason": "minus"}, headers=shop.h), 422, "amount")
    _problem(client.post(url, json={"amount": 1.5, "reason": "float"}, headers=shop.h), 422, "amount")
    _problem(client.post(url, json={"amount": "1.00"}, headers=shop.h), 422, "reason")

    clock.advance(timedelta(minutes=1))
    r = client.post(url, json={"amount": "1.00", "reason": "goodwill"}, headers=shop.h)
    assert r.status_code == 201, r.text
    [partial] = r.json()["data"]
    assert (partial["object"], partial["amount"], partial["status"]) == ("refund", "1.00", "succeeded")
    assert (partial["payment_id"], partial["document_id"], partial["reason"]) == (
        attempt["id"],
        doc_id,
        "goodwill",
    )
    note = client.get(f"/api/v1/documents/{partial['credit_note_id']}", headers=shop.h).json()
    assert (note["type"], note["corrected_document_id"], note["total"]) == ("credit_note", doc_id, "1.00")
    doc = client.get(f"/api/v1/documents/{doc_id}", headers=shop.h).json()
    assert (doc["amount_refunded"], doc["amount_credited"], doc["status"]) == ("1.00", "1.00", "paid")
    assert client.get(f"/api/v1/payments/{attempt['id']}", headers=shop.h).json()["refunded_amount"] == "1.00"

    clock.advance(timedelta(minutes=1))
    rest = client.post(url, json={"reason": "cancelled"}, headers=shop.h)
    assert rest.status_code == 201, rest.text
    [full] = rest.json()["data"]
    assert _minor(full["amount"]) == _minor(total) - 100
    assert full["credit_note_id"] is not None
    doc = client.get(f"/api/v1/documents/{doc_id}", headers=shop.h).json()
    assert doc["amount_refunded"] == total
    listed = client.get(url, headers=shop.h).json()["data"]
    assert [r["id"] for r in listed] == [partial["id"], full["id"]]
    assert client.get(url, headers=auth(shop.tokens[cid])).json()["data"] == listed
    # nothing is left to refund
    _problem(client.post(url, json={"reason": "again"}, headers=shop.h), 409)
    _problem(client.post(url, json={"amount": "0.01", "reason": "again"}, headers=shop.h), 409, "amount")
    [charge] = [c for c in _charges(gateway) if c["id"] == attempt["provider_charge_id"]]
    assert charge["refunded_amount"] == _minor(total)
    _clean(db)


def test_authorise_capture_part_and_void(
    db: Database, clock: FixedClock, gateway: GatewayProcess, client: TestClient
) -> None:
    shop = _shop(db, clock, "bg", "authorise")
    first, second = shop.customers
    settings = client.get("/api/v1/payment_settings", headers=shop.h).json()
    assert settings == {
        "object": "payment_settings",
        "auto_collect": True,
        "capture_mode": "sale",
        "retry_days": [1, 3, 5, 7],
        "retry_final_action": "leave_open",
    }
    r = client.patch("/api/v1/payment_settings", json={"capture_mode": "authorize"}, headers=shop.h)
    assert r.status_code == 200, r.text
    assert r.json()["capture_mode"] == "authorize"
    assert r.json()["retry_days"] == [1, 3, 5, 7]
    for cid in shop.customers:
        _add_card(client, gateway, shop.h, cid, cards.SUCCESS)

    authorised = client.post(
        f"/api/v1/documents/{shop.invoices[first]}/payments", json={}, headers=shop.h
    ).json()
    assert (authorised["status"], authorised["captured_amount"]) == ("authorized", "0.00")
    total = authorised["authorized_amount"]
    capture = f"/api/v1/payments/{authorised['id']}/capture"
    _problem(client.post(capture, json={"amount": str(Decimal(total) + 1)}, headers=shop.h), 422, "amount")
    _problem(client.post(capture, json={"amount": "0.001"}, headers=shop.h), 409, "amount")
    part = str(Decimal(total) - Decimal("2.00"))
    r = client.post(capture, json={"amount": part}, headers=shop.h)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["captured_amount"]) == ("succeeded", part)
    doc = client.get(f"/api/v1/documents/{shop.invoices[first]}", headers=shop.h).json()
    assert (doc["status"], doc["amount_paid"], doc["amount_due"]) == ("open", part, "2.00")
    _problem(client.post(capture, json={}, headers=shop.h), 409)

    other = client.post(f"/api/v1/documents/{shop.invoices[second]}/payments", json={}, headers=shop.h).json()
    assert other["status"] == "authorized"
    voided = client.post(f"/api/v1/payments/{other['id']}/void", headers=shop.h)
    assert voided.status_code == 200, voided.text
    assert voided.json()["status"] == "canceled"
    _problem(client.post(f"/api/v1/payments/{other['id']}/void", headers=shop.h), 409)
    assert (
        client.get(f"/api/v1/documents/{shop.invoices[second]}", headers=shop.h).json()["amount_paid"]
        == "0.00"
    )
    _clean(db)


def test_bad_input_is_a_problem_naming_the_field(
    db: Database, clock: FixedClock, gateway: GatewayProcess, client: TestClient
) -> None:
    shop = _shop(db, clock, "bg", "bad-input")
    first, second = shop.customers
    doc = shop.invoices[first]
    # no card yet
    _problem(
        client.post(f"/api/v1/documents/{doc}/payments", json={}, headers=shop.h), 409, "payment_method_id"
    )
    foreign = _add_card(client, gateway, shop.h, second, cards.SUCCESS)
    r = client.post(
        f"/api/v1/documents/{doc}/payments", json={"payment_method_id": foreign["id"]}, headers=shop.h
    )
    _problem(r, 422, "payment_method_id")
    cases: list[tuple[str, str, Any, str]] = [
        ("POST", f"/api/v1/documents/{doc}/payments", {"payment_method_id": "abc"}, "payment_method_id"),
        ("POST", f"/api/v1/documents/{doc}/payments", {"payment_method_id": 0}, "payment_method_id"),
        ("POST", f"/api/v1/documents/{doc}/payments", {"card_number": cards.SUCCESS}, "card_number"),
        ("POST", f"/api/v1/customers/{first}/payment_methods", {"token": ""}, "token"),
        ("POST", f"/api/v1/customers/{first}/payment_methods", {"token": "x" * 101}, "token"),
        (
            "POST",
            f"/api/v1/customers/{first}/payment_methods",
            {"token": "pm_x", "make_default": "yes"},
            "make_default",
        ),
        ("POST", f"/api/v1/customers/{first}/default_payment_method", {}, "payment_method_id"),
        ("PATCH", "/api/v1/payment_settings", {"retry_days": [3, 1]}, "retry_days"),
        ("PATCH", "/api/v1/payment_settings", {"retry_days": ["1"]}, "retry_days.0"),
        ("PATCH", "/api/v1/payment_settings", {"retry_days": [0]}, "retry_days.0"),
        ("PATCH", "/api/v1/payment_settings", {"retry_days": list(range(1, 11))}, "retry_days"),
        ("PATCH", "/api/v1/payment_settings", {"capture_mode": "later"}, "capture_mode"),
        ("PATCH", "/api/v1/payment_settings", {"retry_final_action": "explode"}, "retry_final_action"),
        ("PATCH", "/api/v1/payment_settings", {"auto_collect": "true"}, "auto_collect"),
        ("POST", f"/api/v1/documents/{doc}/refunds", {"reason": "x", "amount": "NaN"}, "amount"),
        ("POST", f"/api/v1/documents/{doc}/refunds", {"reason": "x" * 1001}, "reason"),
    ]
    for method, path, body, field_name in cases:
        r = client.request(method, path, json=body, headers=shop.h)
        _problem(r, 422, field_name)
    # refusing states is 409, not 500: refund with nothing paid, capture a failed/absent payment
    _problem(client.post(f"/api/v1/documents/{doc}/refunds", json={"reason": "x"}, headers=shop.h), 409)
    _problem(client.get("/api/v1/payments/999999", headers=shop.h), 404)
    _problem(client.get("/api/v1/payments?status=weird", headers=shop.h), 422, "status")
    _problem(client.get("/api/v1/payments?limit=0", headers=shop.h), 422, "limit")
    credit = client.post(
        f"/api/v1/documents/{doc}/credit_notes",
        json={"mode": "full", "reason": "x", "disposition": "reduce_due"},
        headers=shop.h,
    ).json()
    _problem(client.post(f"/api/v1/documents/{credit['id']}/payments", json={}, headers=shop.h), 409)
    _problem(client.post(f"/api/v1/documents/{doc}/payments", json={}, headers=shop.h), 409)  # nothing due
    # the settings did not move
    assert client.get("/api/v1/payment_settings", headers=shop.h).json()["retry_days"] == [1, 3, 5, 7]
    r = client.post(
        "/api/v1/payment_settings",
        json={"retry_days": [2, 4], "retry_final_action": "mark_uncollectible", "auto_collect": False},
        headers=shop.h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["retry_days"] == [2, 4]
    assert r.json()["auto_collect"] is False


def test_409_when_payments_are_not_configured(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    shop = _shop(db, clock, "bg", "unconfigured")
    other = _shop(db, clock, "us", "unconfigured-other", customers=1)
    cid = shop.customers[0]
    doc = shop.invoices[cid]
    with api_client(db, clock) as api:
        token = gateway.tokenise(cards.SUCCESS)
        for path, body in (
            (f"/api/v1/customers/{cid}/payment_methods", {"token": token}),
            (f"/api/v1/documents/{doc}/payments", {}),
            (f"/api/v1/documents/{doc}/refunds", {"reason": "x"}),
            ("/api/v1/webhooks/gateway", {}),
        ):
            problem = _problem(api.post(path, json=body, headers=shop.h), 409)
            assert problem["detail"] == "payments are not configured (FISCUS_GATEWAY_URL)"
            assert problem["code"] == "payments_not_configured"
        # another tenant's ids are still 404, not 409
        _problem(api.post(f"/api/v1/documents/{doc}/payments", json={}, headers=other.h), 404)
        # reading needs no provider
        assert api.get(f"/api/v1/customers/{cid}/payment_methods", headers=shop.h).json()["data"] == []
        assert api.get("/api/v1/payments", headers=shop.h).json()["data"] == []
        assert api.get("/api/v1/payment_settings", headers=shop.h).status_code == 200


def _signed(event: dict[str, Any], secret: str = WEBHOOK_SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event)
    msg_id = event["id"]
    now = datetime.now(UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
        "content-type": "application/json",
    }
    return body.encode(), headers


def test_inbound_webhooks_are_verified_and_deduplicated(
    db: Database, clock: FixedClock, gateway: GatewayProcess, client: TestClient
) -> None:
    shop = _shop(db, clock, "bg", "hooks", customers=1)
    [cid] = shop.customers
    doc_id = shop.invoices[cid]
    _add_card(client, gateway, shop.h, cid, cards.SUCCESS)
    attempt = client.post(f"/api/v1/documents/{doc_id}/payments", json={}, headers=shop.h).json()
    charge = httpx_get(f"{gateway.url}/v1/charges/{attempt['provider_charge_id']}")
    # a refund made in the provider's dashboard arrives only by webhook
    refunded = {**charge, "refunded_amount": 150, "status": charge["status"]}
    event = {
        "id": "evt_" + os.urandom(6).hex(),
        "type": "charge.refunded",
        "created_at": "x",
        "data": refunded,
    }
    body, headers = _signed(event)
    url = "/api/v1/webhooks/gateway"

    _problem(client.post(url, content=body, headers={**headers, "webhook-signature": "v1,AAAA"}), 401)
    forged, forged_headers = _signed(
        event, secret="whsec_" + "Zm9yZ2VkLXNlY3JldC1mb3JnZWQtc2VjcmV0LTEyMzQ1Ng=="
    )
    _problem(client.post(url, content=forged, headers=forged_headers), 401)
    _problem(client.post(url, content=b"not json", headers=headers), 401)
    _problem(client.post(url, content=body, headers={"content-type": "application/json"}), 401)

    r = client.post(url, content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"received": True, "duplicate": False}
    replay = client.post(url, content=body, headers=headers)
    assert replay.json() == {"received": True, "duplicate": True}
    refunds = client.get(f"/api/v1/documents/{doc_id}/refunds", headers=shop.h).json()["data"]
    assert [(r["amount"], r["status"]) for r in refunds] == [("1.50", "succeeded")]
    assert refunds[0]["credit_note_id"] is not None
    # a charge Fiscus does not know is acknowledged and ignored
    stranger = {**charge, "id": "ch_unknown", "reference": "someone-else"}
    body, headers = _signed(
        {"id": "evt_" + os.urandom(6).hex(), "type": "charge.succeeded", "data": stranger}
    )
    assert client.post(url, content=body, headers=headers).json() == {"received": True, "duplicate": False}


def httpx_get(url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(url).json()
    return body


def _charges(gateway: GatewayProcess) -> list[dict[str, Any]]:
    return httpx_get(f"{gateway.url}/v1/ledger")["charges"]  # type: ignore[no-any-return]
