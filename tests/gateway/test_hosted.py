"""The hosted card form (POST /hosted/tokenize) and GET /v1/payment_methods/{token}."""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fiscus.gateway import cards, create_gateway_app

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
RETURN = "http://127.0.0.1:8000/pay/return"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.db"


@pytest.fixture
def client(db_path: Path) -> Iterator[TestClient]:
    with TestClient(create_gateway_app(db_path, clock=lambda: NOW)) as test_client:
        yield test_client


def _form(**overrides: str) -> dict[str, str]:
    form = {
        "card_number": "4242 4242 4242 4242",
        "exp_month": "12",
        "exp_year": "2030",
        "cvc": "123",
        "holder": "A Person",
        "return_url": RETURN,
        "state": "st-1",
    }
    return {**form, **overrides}


def _hosted(client: TestClient, form: dict[str, str]) -> Any:
    return client.post("/hosted/tokenize", data=form, follow_redirects=False)


def _query(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query, keep_blank_values=True)


def test_a_token_can_be_looked_up_and_an_unknown_one_is_404(client: TestClient) -> None:
    card = {"card_number": cards.SUCCESS, "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    created = client.post("/v1/payment_methods", json=card, headers={"Idempotency-Key": "pm-1"}).json()
    found = client.get(f"/v1/payment_methods/{created['token']}")
    assert found.status_code == 200
    assert found.json() == created
    assert set(found.json()) == {"token", "brand", "last4", "exp_month", "exp_year", "fingerprint"}

    missing = client.get("/v1/payment_methods/pm_nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "no_such_payment_method"
    assert set(missing.json()["error"]) == {"code", "message"}


def test_hosted_form_redirects_with_a_token_that_can_be_charged(client: TestClient) -> None:
    response = _hosted(client, _form())
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(RETURN + "?")
    query = _query(location)
    assert query["state"] == ["st-1"]
    assert set(query) == {"state", "token"}
    token = query["token"][0]

    method = client.get(f"/v1/payment_methods/{token}").json()
    assert (method["brand"], method["last4"], method["exp_month"], method["exp_year"]) == (
        "visa",
        "4242",
        12,
        2030,
    )
    body = {"token": token, "amount": 1250, "currency": "eur", "reference": "inv-9"}
    charge = client.post("/v1/charges", json=body, headers={"Idempotency-Key": "hosted-1"})
    assert charge.status_code == 201
    assert charge.json()["status"] == "succeeded"
    assert (charge.json()["currency"], charge.json()["reference"]) == ("EUR", "inv-9")
    assert charge.json()["payment_method"] == token


def test_the_return_urls_own_query_and_fragment_are_kept(client: TestClient) -> None:
    return_url = "http://localhost:9000/checkout/done?order=42&note=a%20b&flag&token=planted#top"
    location = _hosted(client, _form(return_url=return_url, state="ünï code & more")).headers["location"]
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc, parts.path, parts.fragment) == (
        "http",
        "localhost:9000",
        "/checkout/done",
        "top",
    )
    assert parts.query.startswith("order=42&note=a%20b&flag&state=")
    query = _query(location)
    assert query["order"] == ["42"]
    assert query["note"] == ["a b"]
    assert query["state"] == ["ünï code & more"]
    assert len(query["token"]) == 1  # the planted one is dropped
    assert query["token"][0].startswith("pm_")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"card_number": "4242424242424241"}, "invalid_card_number"),
        ({"card_number": "4242"}, "invalid_card_number"),
        ({"card_number": ""}, "invalid_card_number"),
        ({"exp_month": "13"}, "invalid_expiry"),
        ({"exp_month": "0"}, "invalid_expiry"),
        ({"exp_month": "+5"}, "invalid_expiry"),
        ({"exp_month": " 5"}, "invalid_expiry"),
        ({"exp_month": "1_2"}, "invalid_expiry"),
        ({"exp_month": "٥"}, "invalid_expiry"),  # an Arabic-Indic five: int() would take it
        ({"exp_year": "30"}, "invalid_expiry"),
        ({"exp_year": "2030.0"}, "invalid_expiry"),
        ({"exp_year": ""}, "invalid_expiry"),
        ({"cvc": "12"}, "invalid_cvc"),
        ({"cvc": "12345"}, "invalid_cvc"),
        ({"cvc": "12a"}, "invalid_cvc"),
        ({"holder": "x" * 201}, "invalid_holder"),
    ],
)
def test_invalid_cards_redirect_back_with_an_error(
    client: TestClient, overrides: dict[str, str], code: str
) -> None:
    response = _hosted(client, _form(**overrides))
    assert response.status_code == 303
    query = _query(response.headers["location"])
    assert query["state"] == ["st-1"]
    assert query["error"] == [code]
    assert query["message"][0]
    assert "token" not in query
    assert client.get("/v1/ledger").json()["charges"] == []


@pytest.mark.parametrize(
    "return_url",
    [
        "https://evil.example/return",
        "http://127.0.0.1.evil.example/return",
        "http://127.0.0.1@evil.example/return",
        "http://evil.example\\@127.0.0.1/return",
        "http://127.0.0.1\\evil.example/return",
        "//127.0.0.1/return",
        "/pay/return",
        "javascript://127.0.0.1/%0aalert(1)",
        "ftp://127.0.0.1/return",
        " http://127.0.0.1/return",
        "http://127.0.0.1/re\turn",
        "http://127.0.0.1:99999/return",
        "",
    ],
)
def test_a_return_url_off_the_allowed_origins_is_400_not_a_redirect(
    client: TestClient, return_url: str
) -> None:
    response = _hosted(client, _form(return_url=return_url))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_return_url"
    assert "location" not in response.headers
    assert client.get("/v1/ledger").json()["charges"] == []


def test_without_return_url_the_form_is_refused(client: TestClient) -> None:
    form = _form()
    del form["return_url"]
    assert _hosted(client, form).json()["error"]["code"] == "invalid_return_url"


def test_loopback_hosts_on_any_port_are_allowed_by_default(client: TestClient) -> None:
    for url in (
        "http://127.0.0.1/r",
        "https://localhost:4443/r",
        "http://[::1]:8000/r",
        "HTTP://LocalHost/r",
    ):
        assert _hosted(client, _form(return_url=url)).status_code == 303, url


def test_configured_origins_replace_the_loopback_default(db_path: Path) -> None:
    app = create_gateway_app(
        db_path, allowed_return_origins=["https://shop.example", "http://127.0.0.1:8000"]
    )
    with TestClient(app) as client:
        for url in ("https://shop.example/r?x=1", "https://SHOP.example:443/r", "http://127.0.0.1:8000/r"):
            assert _hosted(client, _form(return_url=url)).status_code == 303, url
        for url in ("http://shop.example/r", "https://shop.example:8443/r", "http://127.0.0.1:8001/r"):
            assert _hosted(client, _form(return_url=url)).status_code == 400, url


@pytest.mark.parametrize(
    "origin", ["shop.example", "https://shop.example/path", "ftp://shop.example", "https://"]
)
def test_an_allowed_origin_that_is_not_an_origin_is_refused_at_startup(db_path: Path, origin: str) -> None:
    with pytest.raises(ValueError, match="origin"):
        create_gateway_app(db_path, allowed_return_origins=[origin])


def test_state_is_limited_and_the_body_must_be_a_form(client: TestClient) -> None:
    assert _hosted(client, _form(state="s" * 500)).status_code == 303
    too_long = _hosted(client, _form(state="s" * 501))
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] == "invalid_state"

    as_json = client.post("/hosted/tokenize", json=_form(), follow_redirects=False)
    assert as_json.status_code == 415
    twice = client.post(
        "/hosted/tokenize",
        content="return_url=http%3A%2F%2F127.0.0.1%2Fr&cvc=123&cvc=456",
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert twice.status_code == 400
    assert twice.json()["error"]["code"] == "invalid_form"


def test_the_card_number_and_cvc_appear_in_no_response_redirect_or_log(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cvc = "9071"
    good = _form(card_number=cards.SUCCESS, cvc=cvc)
    bad_luhn = _form(card_number="4242424242424241", cvc=cvc)
    bad_expiry = _form(card_number=cards.SUCCESS, exp_month="13", cvc=cvc)
    bad_cvc = _form(card_number=cards.SUCCESS, cvc="90712")
    off_origin = _form(card_number=cards.SUCCESS, cvc=cvc, return_url="https://evil.example/")
    responses = [_hosted(client, form) for form in (good, bad_luhn, bad_expiry, bad_cvc, off_origin)]
    assert [r.status_code for r in responses] == [303, 303, 303, 303, 400]

    token = _query(responses[0].headers["location"])["token"][0]
    looked_up = client.get(f"/v1/payment_methods/{token}")
    seen = [
        *(json.dumps(dict(r.headers)) + r.text for r in responses),
        looked_up.text,
        *(record.getMessage() for record in caplog.records),
        caplog.text,
    ]
    secrets_sent = (cards.SUCCESS, "4242424242424241", "424242424242", cvc, "90712")
    for text in seen:
        # Random tokens and fingerprints may hold any four digits by chance; no card number hides there.
        text = re.sub(r"pm_[0-9a-f]+|[0-9a-f]{64}", "", text)
        for secret in secrets_sent:
            assert secret not in text
    assert any("hosted tokenisation" in record.getMessage() for record in caplog.records)


def test_cli_passes_allowed_return_origins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from fiscus import cli
    from fiscus.gateway import app as gateway_app

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(gateway_app, "serve_gateway", lambda *args, **kwargs: calls.append(kwargs))
    db = str(tmp_path / f"gw-{secrets.token_hex(4)}.db")
    origins = [
        "--allow-return-origin",
        "https://shop.example",
        "--allow-return-origin",
        "http://127.0.0.1:8000",
    ]
    result = CliRunner().invoke(cli.app, ["gateway", "--db", db, *origins])
    assert result.exit_code == 0, result.output
    assert calls[0]["allowed_return_origins"] == ["https://shop.example", "http://127.0.0.1:8000"]

    CliRunner().invoke(cli.app, ["gateway", "--db", db])
    assert calls[1]["allowed_return_origins"] is None

    bad = CliRunner().invoke(cli.app, ["gateway", "--db", db, "--allow-return-origin", "shop.example"])
    assert bad.exit_code != 0
    assert len(calls) == 2
