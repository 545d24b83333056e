"""The test payment gateway: tokens, test cards, idempotency, capture/refund/void, webhooks, timeouts."""

from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from fiscus.gateway import cards, create_gateway_app

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _clock() -> datetime:
    return NOW


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.db"


@pytest.fixture
def client(db_path: Path) -> Iterator[TestClient]:
    app = create_gateway_app(db_path, clock=_clock, slow_seconds=0.2, timeout_seconds=0.3)
    with TestClient(app) as test_client:
        yield test_client


def _post(client: TestClient | httpx.Client, path: str, body: dict[str, Any], key: str | None = None) -> Any:
    return client.post(path, json=body, headers={"Idempotency-Key": key or secrets.token_hex(8)})


def _tokenise(client: TestClient | httpx.Client, number: str, exp: tuple[int, int] = (12, 2030)) -> str:
    card = {
        "card_number": number,
        "exp_month": exp[0],
        "exp_year": exp[1],
        "cvc": "123",
        "holder": "A Person",
    }
    response = _post(client, "/v1/payment_methods", card)
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def _charge(
    client: TestClient, token: str, amount: int = 2000, *, capture: bool = True, key: str | None = None
) -> Any:
    body = {"token": token, "amount": amount, "currency": "EUR", "capture": capture, "reference": "inv-1"}
    return _post(client, "/v1/charges", body, key)


def test_test_cards_pass_luhn_and_brands_follow_the_iin() -> None:
    for number in cards.SCENARIOS:
        assert cards.luhn_valid(number), number
    assert not cards.luhn_valid("4242424242424241")
    assert cards.brand_of(cards.SUCCESS) == "visa"
    assert cards.brand_of("5555555555554444") == "mastercard"
    assert cards.brand_of("2223003122003222") == "mastercard"
    assert cards.brand_of("378282246310005") == "amex"
    assert cards.brand_of("6011111111111117") == "unknown"


def test_tokenisation_returns_card_facts_and_never_stores_the_number(
    client: TestClient, db_path: Path
) -> None:
    card = {"card_number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    first = _post(client, "/v1/payment_methods", card).json()
    second = _post(client, "/v1/payment_methods", card).json()
    assert first["brand"] == "visa"
    assert first["last4"] == "4242"
    assert (first["exp_month"], first["exp_year"]) == (12, 2030)
    assert first["token"] != second["token"]
    assert first["fingerprint"] == second["fingerprint"]  # same card, same fingerprint
    assert cards.SUCCESS not in json.dumps(first)

    bad = _post(client, "/v1/payment_methods", {**card, "card_number": "4242424242424241"})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_card_number"
    assert "4242424242424241" not in bad.text

    stored = b"".join(p.read_bytes() for p in db_path.parent.iterdir() if p.name.startswith(db_path.name))
    assert len(stored) > 0
    assert cards.SUCCESS.encode() not in stored
    assert b"4242 4242 4242 4242" not in stored
    assert cards.SUCCESS.encode("utf-16-le") not in stored


def test_every_post_requires_an_idempotency_key(client: TestClient) -> None:
    response = client.post("/v1/charges", json={"token": "pm_x", "amount": 1, "currency": "EUR"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_required"


@pytest.mark.parametrize(
    ("number", "status", "decline_code"),
    [
        (cards.SUCCESS, "succeeded", None),
        (cards.INSUFFICIENT_FUNDS, "declined", "insufficient_funds"),
        (cards.EXPIRED_CARD, "declined", "expired_card"),
        (cards.DO_NOT_HONOR, "declined", "do_not_honor"),
        (cards.PROCESSING_ERROR, "failed", "processing_error"),
        (cards.SLOW, "succeeded", None),
    ],
)
def test_test_card_outcomes(client: TestClient, number: str, status: str, decline_code: str | None) -> None:
    token = _tokenise(client, number)
    started = time.monotonic()
    response = _charge(client, token)
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.text
    charge = response.json()
    assert (charge["status"], charge["decline_code"]) == (status, decline_code)
    assert charge["amount"] == 2000
    assert charge["captured_amount"] == (2000 if status == "succeeded" else 0)
    assert charge["refunded_amount"] == 0
    assert charge["created_at"] == "2026-05-01T12:00:00Z"
    if number == cards.SLOW:
        assert elapsed >= 0.2
    assert client.get(f"/v1/charges/{charge['id']}").json() == charge
    assert [c["id"] for c in client.get("/v1/ledger").json()["charges"]] == [charge["id"]]


def test_a_past_expiry_is_accepted_at_tokenisation_and_declined_at_charge(client: TestClient) -> None:
    token = _tokenise(client, cards.SUCCESS, exp=(4, 2026))
    charge = _charge(client, token).json()
    assert (charge["status"], charge["decline_code"]) == ("declined", "expired_card")
    current_month = _tokenise(client, cards.SUCCESS, exp=(5, 2026))
    assert _charge(client, current_month).json()["status"] == "succeeded"


def test_idempotent_replay_charges_once_and_a_changed_body_is_refused(client: TestClient) -> None:
    token = _tokenise(client, cards.SUCCESS)
    first = _charge(client, token, key="order-42")
    again = _charge(client, token, key="order-42")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert first.headers["idempotent-replayed"] == "false"

    changed = _charge(client, token, amount=2001, key="order-42")
    assert changed.status_code == 422
    assert changed.json()["error"]["code"] == "idempotency_key_reused"
    other_endpoint = _post(client, f"/v1/charges/{first.json()['id']}/refunds", {"amount": 1}, "order-42")
    assert other_endpoint.status_code == 422

    ledger = client.get("/v1/ledger").json()
    assert len(ledger["charges"]) == 1
    assert len(ledger["captures"]) == 1
    assert ledger["refunds"] == []
    found = client.get("/v1/charges", params={"idempotency_key": "order-42"}).json()["data"]
    assert [c["id"] for c in found] == [first.json()["id"]]


def test_authorise_partial_capture_partial_refunds_then_over_refund(client: TestClient) -> None:
    token = _tokenise(client, cards.SUCCESS)
    auth = _charge(client, token, 2000, capture=False).json()
    assert (auth["status"], auth["captured_amount"]) == ("authorized", 0)
    charge_id = auth["id"]

    refund_before_capture = _post(client, f"/v1/charges/{charge_id}/refunds", {"amount": 100})
    assert refund_before_capture.status_code == 409
    too_much = _post(client, f"/v1/charges/{charge_id}/capture", {"amount": 2001})
    assert too_much.status_code == 422
    assert too_much.json()["error"]["code"] == "amount_exceeds_authorized"

    captured = _post(client, f"/v1/charges/{charge_id}/capture", {"amount": 1500}).json()
    assert (captured["status"], captured["captured_amount"]) == ("succeeded", 1500)
    assert _post(client, f"/v1/charges/{charge_id}/capture", {"amount": 100}).status_code == 409

    r1 = _post(client, f"/v1/charges/{charge_id}/refunds", {"amount": 500}, "refund-1")
    r2 = _post(client, f"/v1/charges/{charge_id}/refunds", {"amount": 700}, "refund-2")
    assert r1.status_code == r2.status_code == 201
    assert r2.json()["charge"]["refunded_amount"] == 1200
    assert _post(client, f"/v1/charges/{charge_id}/refunds", {"amount": 500}, "refund-1").json() == r1.json()

    over = _post(client, f"/v1/charges/{charge_id}/refunds", {"amount": 301})
    assert over.status_code == 422
    error = over.json()["error"]
    assert error["code"] == "amount_exceeds_refundable"
    assert "only 300 EUR" in error["message"]

    charge = client.get(f"/v1/charges/{charge_id}").json()
    assert (charge["captured_amount"], charge["refunded_amount"]) == (1500, 1200)
    ledger = client.get("/v1/ledger").json()
    assert [c["amount"] for c in ledger["captures"]] == [1500]
    assert [r["amount"] for r in ledger["refunds"]] == [500, 700]
    assert _post(client, f"/v1/charges/{charge_id}/refunds", {"amount": 300}).status_code == 201


def test_void_releases_an_authorisation(client: TestClient) -> None:
    token = _tokenise(client, cards.SUCCESS)
    auth = _charge(client, token, 900, capture=False).json()
    voided = client.post(f"/v1/charges/{auth['id']}/void", headers={"Idempotency-Key": "void-1"})
    assert voided.status_code == 200, voided.text
    assert voided.json()["status"] == "voided"
    assert _post(client, f"/v1/charges/{auth['id']}/capture", {}).status_code == 409
    assert _post(client, f"/v1/charges/{auth['id']}/void", {}).status_code == 409
    assert client.get("/v1/ledger").json()["captures"] == []


def test_invalid_amounts_are_refused(client: TestClient) -> None:
    token = _tokenise(client, cards.SUCCESS)
    for amount in (0, -5, 10.5, "10"):
        body = {"token": token, "amount": amount, "currency": "EUR"}
        assert _post(client, "/v1/charges", body).status_code == 422
    assert client.get("/v1/charges/ch_nope").status_code == 404
    assert client.get("/v1/ledger").json()["charges"] == []


class _Receiver:
    """A loopback HTTP server that records webhook deliveries."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        received = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.deliveries) >= count


def test_signed_webhooks_reach_a_loopback_receiver(db_path: Path) -> None:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    receiver = _Receiver()
    try:
        app = create_gateway_app(db_path, webhook_url=receiver.url, webhook_secret=secret, clock=_clock)
        with TestClient(app) as client:
            token = _tokenise(client, cards.SUCCESS)
            auth = _charge(client, token, capture=False).json()
            captured = _post(client, f"/v1/charges/{auth['id']}/capture", {"amount": 1000}).json()
            refund = _post(client, f"/v1/charges/{auth['id']}/refunds", {"amount": 400}).json()
            _charge(client, _tokenise(client, cards.DO_NOT_HONOR))
            _charge(client, token, key="k1")
            _charge(client, token, key="k1")  # a replay sends no second event
            receiver.wait_for(5)
        time.sleep(0.1)
        events = [Webhook(secret).verify(body, headers) for headers, body in receiver.deliveries]
        assert [e["type"] for e in events] == [
            "charge.succeeded",
            "charge.captured",
            "charge.refunded",
            "charge.failed",
            "charge.succeeded",
        ]
        assert events[0]["data"]["status"] == "authorized"
        # Each event carries the whole charge as it was after that change, reference and currency included.
        assert [e["data"] for e in events[:3]] == [auth, captured, refund["charge"]]
        assert (events[0]["data"]["reference"], events[0]["data"]["currency"]) == ("inv-1", "EUR")
        assert events[2]["data"]["refunded_amount"] == 400
        assert events[3]["data"]["decline_code"] == "do_not_honor"
        assert len({e["id"] for e in events}) == 5
        headers, body = receiver.deliveries[0]
        with pytest.raises(Exception, match="signature"):
            Webhook(secret).verify(body.replace(b"authorized", b"succeeded"), headers)
    finally:
        receiver.server.shutdown()


def test_an_undeliverable_webhook_never_affects_the_charge(db_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    secret = "whsec_" + base64.b64encode(b"x" * 24).decode()
    app = create_gateway_app(
        db_path,
        webhook_url=f"http://127.0.0.1:{dead_port}/hooks",
        webhook_secret=secret,
        webhook_retry_delays=(0.01,),
    )
    with TestClient(app) as client:
        charge = _charge(client, _tokenise(client, cards.SUCCESS))
        assert charge.status_code == 201
        assert charge.json()["status"] == "succeeded"


@pytest.fixture
def live_gateway(db_path: Path) -> Iterator[str]:
    """The gateway on a real uvicorn server on loopback, for a real client timeout."""
    app: FastAPI = create_gateway_app(db_path, clock=_clock, timeout_seconds=1.5)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


def test_timeout_card_leaves_an_unknown_outcome_that_the_key_settles(live_gateway: str) -> None:
    with httpx.Client(base_url=live_gateway, timeout=0.5) as http:
        token = _tokenise(http, cards.TIMEOUT)
        body = {"token": token, "amount": 4200, "currency": "EUR", "reference": "inv-7"}
        with pytest.raises(httpx.TimeoutException):
            _post(http, "/v1/charges", body, "pay-inv-7")

        found = http.get("/v1/charges", params={"idempotency_key": "pay-inv-7"}).json()["data"]
        assert len(found) == 1
        assert (found[0]["status"], found[0]["amount"]) == ("succeeded", 4200)
        assert [c["id"] for c in http.get("/v1/ledger").json()["charges"]] == [found[0]["id"]]

        retried = _post(http, "/v1/charges", body, "pay-inv-7")  # a replay answers at once
        assert retried.json()["id"] == found[0]["id"]
        assert len(http.get("/v1/ledger").json()["charges"]) == 1
        assert http.get("/v1/charges", params={"idempotency_key": "never-used"}).json()["data"] == []


def test_racing_retries_with_one_key_charge_once(live_gateway: str) -> None:
    with httpx.Client(base_url=live_gateway, timeout=5) as http:
        token = _tokenise(http, cards.SUCCESS)
        body = {"token": token, "amount": 500, "currency": "EUR"}
        results: list[str] = []

        def pay() -> None:
            results.append(_post(http, "/v1/charges", body, "race-1").json()["id"])

        threads = [threading.Thread(target=pay) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 8
        assert len(set(results)) == 1
        assert len(http.get("/v1/ledger").json()["charges"]) == 1
