"""Card data never reaches Fiscus, its logs, or the gateway's ledger; one customer's cards are never
another's.

Cards are tokenised the ways a customer's browser or a shop does it (the gateway's hosted form and
`POST /v1/payment_methods`), then attached, charged, declined, captured, refunded and reported by
webhook, with every logger at DEBUG. Then everything Fiscus wrote or logged is searched for the full
numbers (as typed, with spaces or dashes, and bare) and the CVCs.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import structlog
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.errors import InvalidFieldError, NotFoundError
from fiscus.domain.payments import AttemptStatus
from fiscus.gateway import cards
from fiscus.gateway.app import create_gateway_app
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.payments.captures import capture_payment
from fiscus.services.payments.charging import charge_document
from fiscus.services.payments.collection import run_collection
from fiscus.services.payments.methods import (
    add_card,
    detach_payment_method,
    set_default_payment_method,
    set_subscription_payment_method,
)
from fiscus.services.payments.provider_events import handle_provider_event
from fiscus.services.payments.refunds import refund_payment
from fiscus.services.payments.settings import update_payment_settings
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.builders import Tenant, make_customer, make_tenant
from tests.payments.test_webhook_order import WebhookReceiver, webhook_receiver
from tests.payments_support import GatewayProcess, gateway_process

MASTERCARD = "5555555555554444"
CVC = {
    cards.SUCCESS: "8461",
    cards.INSUFFICIENT_FUNDS: "9372",
    cards.DO_NOT_HONOR: "5183",
    MASTERCARD: "6947",
    cards.EXPIRED_CARD: "7358",
}
"""Test cards with CVCs chosen to look like nothing else Fiscus stores (no year, amount or number)."""
NOT_A_CARD = "4242424242424241"
"""Fails the Luhn check: refused, and must not be echoed either."""
HOLDER = "Ada Q. Cardholder"


def spaced(number: str) -> str:
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))


def dashed(number: str) -> str:
    return "-".join(number[i : i + 4] for i in range(0, len(number), 4))


SECRETS = [form for n in [*CVC, NOT_A_CARD] for form in (n, spaced(n), dashed(n))]
CVC_PATTERN = re.compile(r"(?<![0-9A-Za-z.])(" + "|".join(CVC.values()) + r")(?![0-9A-Za-z]|\.[0-9])")
"""A CVC standing alone: not inside an id, a longer number or a decimal (a log's elapsed seconds)."""


def leaks(haystack: str | bytes) -> list[str]:
    """Every card number (in any of the forms people type) and CVC found in `haystack`."""
    text_ = haystack.decode("latin-1") if isinstance(haystack, bytes) else haystack
    found = [s for s in SECRETS if s in text_]
    found += [m.group(0) for m in CVC_PATTERN.finditer(text_)]
    return found


STANDARD_RECORD_KEYS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}


def record_text(record: logging.LogRecord) -> str:
    """A log record's message, arguments, exception and any extra fields (structured loggers put data
    there), without the timing fields whose digits would look like a CVC."""
    extra = {k: v for k, v in record.__dict__.items() if k not in STANDARD_RECORD_KEYS}
    return f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text or ''} {extra!r}"


def context(haystack: str) -> list[str]:
    """Where the leaks are, with some text around them (for the failure message)."""
    return [haystack[max(0, i - 80) : i + 40] for s in leaks(haystack) if (i := haystack.find(s)) >= 0]


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as r:
        yield r


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, receiver: WebhookReceiver) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("gw"), webhook_url=receiver.url) as gw:
        yield gw


def _post(base: str | TestClient, path: str, **kwargs: Any) -> Any:
    """POST to the gateway in process (a TestClient) or over HTTP (its URL)."""
    if isinstance(base, TestClient):
        return base.post(path, **kwargs)
    return httpx.post(f"{base}{path}", **kwargs)


def hosted_tokenise(
    base: str | TestClient, number: str, cvc: str, holder: str = HOLDER
) -> dict[str, list[str]]:
    """Post the card as the hosted form does (the browser to the gateway); the query the browser is sent
    back with."""
    form = {
        "card_number": number,
        "exp_month": "12",
        "exp_year": "2031",
        "cvc": cvc,
        "holder": holder,
        "return_url": "http://127.0.0.1:8000/pay/return?invoice=7",
        "state": uuid.uuid4().hex,
    }
    r = _post(base, "/hosted/tokenize", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert not leaks(location), location
    assert not leaks(r.text)
    return parse_qs(urlsplit(location).query)


def api_tokenise(base: str | TestClient, number: str, cvc: str) -> str:
    body = {"card_number": number, "exp_month": 11, "exp_year": 2032, "cvc": cvc, "holder": HOLDER}
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    r = _post(base, "/v1/payment_methods", json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert not leaks(r.text)
    return str(r.json()["token"])


@contextmanager
def every_logger_at_debug(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """caplog at DEBUG on the root, on every logger that sets its own level (SQLAlchemy's is WARN
    unless told: at DEBUG it logs every statement, its parameters and result rows) and on every
    logger that does not propagate."""
    caplog.set_level(logging.DEBUG)
    loggers = [
        logging.getLogger(name)
        for name in ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", *logging.root.manager.loggerDict)
    ]
    detached: list[logging.Logger] = []
    for logger in loggers:
        if logger.level != logging.NOTSET:
            caplog.set_level(logging.DEBUG, logger=logger.name)
        if not logger.propagate and caplog.handler not in logger.handlers:
            logger.addHandler(caplog.handler)
            detached.append(logger)
    try:
        yield
    finally:
        for logger in detached:
            logger.removeHandler(caplog.handler)


def dump_database(db: Database) -> str:
    """Every row of every table, as text."""
    parts: list[str] = []
    with db.read() as conn:
        for name in sorted(inspect(conn).get_table_names()):
            parts.append(f"== {name}")
            for row in conn.execute(text(f'SELECT * FROM "{name}"')):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


def file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


def _invoice(db: Database, clock: FixedClock, tenant: Tenant, cid: int, quantity: int = 2) -> int:
    order = create_order(db, clock, tenant.org_id, cid, [ItemSpec(tenant.one_off, quantity)])
    return bill_order_now(db, clock, tenant.org_id, order)


def test_card_numbers_and_cvcs_appear_in_no_database_and_no_log(
    db: Database,
    clock: FixedClock,
    gateway: GatewayProcess,
    receiver: WebhookReceiver,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    provider = gateway.provider()
    with every_logger_at_debug(caplog), structlog.testing.capture_logs() as struct_logs:
        # The browser's way: the hosted form, the number as people type it.
        back = hosted_tokenise(gateway.url, spaced(cards.SUCCESS), CVC[cards.SUCCESS])
        assert set(back) == {"invoice", "state", "token"}
        refused = hosted_tokenise(gateway.url, spaced(NOT_A_CARD), "8461")
        assert refused["error"] == ["invalid_card_number"]
        mastercard = hosted_tokenise(gateway.url, dashed(MASTERCARD), CVC[MASTERCARD])["token"][0]
        # A shop's server, with a bare and a dashed number.
        insufficient = api_tokenise(gateway.url, cards.INSUFFICIENT_FUNDS, CVC[cards.INSUFFICIENT_FUNDS])
        do_not_honor = api_tokenise(gateway.url, dashed(cards.DO_NOT_HONOR), CVC[cards.DO_NOT_HONOR])
        expired = api_tokenise(gateway.url, cards.EXPIRED_CARD, CVC[cards.EXPIRED_CARD])

        tenant = make_tenant(db, clock, "bg")
        org = tenant.org_id
        ada, bob, eve = (make_customer(db, clock, tenant, n) for n in range(3))
        success_pm = add_card(db, clock, provider, org, ada, token=back["token"][0], holder=HOLDER)
        insufficient_pm = add_card(
            db, clock, provider, org, ada, token=insufficient, holder=HOLDER, make_default=False
        )
        add_card(db, clock, provider, org, bob, token=do_not_honor, holder=HOLDER)
        add_card(db, clock, provider, org, eve, token=expired, holder=HOLDER)

        paid = _invoice(db, clock, tenant, ada)
        declined = _invoice(db, clock, tenant, ada)
        hard = _invoice(db, clock, tenant, bob)
        expired_doc = _invoice(db, clock, tenant, eve)
        outcome = charge_document(db, clock, provider, org, paid)
        assert outcome.status is AttemptStatus.SUCCEEDED
        outcome = charge_document(db, clock, provider, org, declined, method_id=insufficient_pm)
        assert (outcome.status, outcome.error_code) == (AttemptStatus.FAILED, "insufficient_funds")
        summary = run_collection(db, clock, provider)  # the declined and expired cards, by the worker
        assert summary.failed >= 2
        refund_payment(db, clock, provider, org, paid, amount_minor=100, reason="goodwill")

        # Authorise then capture, on a card attached to another organisation's customer.
        other = make_tenant(db, clock, "us", slug="other")
        update_payment_settings(db, clock, other.org_id, capture_mode="authorize")
        zed = make_customer(db, clock, other, 9)
        add_card(db, clock, provider, other.org_id, zed, token=mastercard, holder=HOLDER)
        held = charge_document(db, clock, provider, other.org_id, _invoice(db, clock, other, zed))
        assert held.status is AttemptStatus.AUTHORIZED
        capture_payment(db, clock, provider, other.org_id, held.attempt_id)

        # The gateway's webhooks for all of it (the capture's is the last one), received and applied.
        with db.read() as conn:
            held_key = conn.execute(
                select(t.payment_attempts.c.idempotency_key).where(t.payment_attempts.c.id == held.attempt_id)
            ).scalar_one()
        receiver.wait_for(held_key, 2)
        deliveries = receiver.snapshot()
        assert deliveries
        for delivery in deliveries:
            assert not leaks(delivery.body)
            handle_provider_event(
                db, clock, provider.name, provider.parse_webhook(delivery.body, delivery.headers)
            )

    with db.read() as conn:
        statuses = dict(conn.execute(select(t.documents.c.id, t.documents.c.status)).all())
    assert statuses[paid] == "paid"
    assert statuses[declined] == "paid"  # declined on the API's card, then the worker used the default
    assert statuses[hard] == statuses[expired_doc] == "open"
    del success_pm

    # Fiscus's database, row by row (both legs) and, on SQLite, byte by byte (free pages and WAL too).
    dump = dump_database(db)
    assert HOLDER in dump
    assert "4242" in dump
    assert "payment_methods" in dump
    assert not leaks(dump)
    if db.is_sqlite:
        path = make_url(db.url).database
        assert path
        raw = file_bytes(Path(path))
        assert HOLDER.encode() in raw
        assert not leaks(raw)
    # The gateway's own ledger keeps no number either (nor the CVC).
    ledger = file_bytes(gateway.db_path)
    assert ledger
    assert b"visa" in ledger
    assert not leaks(ledger)

    # Every log line: Python logging at DEBUG for all loggers, structlog, stdout/stderr, the gateway's.
    records = "\n".join(record_text(r) for r in caplog.records)
    assert "/v1/charges" in records  # the capture saw the HTTP calls
    assert "INSERT INTO payment_methods" in records
    assert HOLDER in records
    out, err = capsys.readouterr()
    gateway_log = gateway.log_path.read_text()
    assert "POST /v1/charges" in gateway_log
    for name, logged in (
        ("python logging", records),
        ("structlog", repr(struct_logs)),
        ("stdout", out),
        ("stderr", err),
        ("gateway process log", gateway_log),
    ):
        assert not leaks(logged), (name, context(logged))
    del tmp_path


def test_the_gateway_app_logs_no_card_data_even_when_refusing_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """In process, so its own loggers are captured at DEBUG too."""
    with (
        every_logger_at_debug(caplog),
        structlog.testing.capture_logs() as struct_logs,
        TestClient(create_gateway_app(tmp_path / "g.db")) as client,
    ):
        assert hosted_tokenise(client, spaced(cards.SUCCESS), CVC[cards.SUCCESS])["token"]
        assert hosted_tokenise(client, NOT_A_CARD, CVC[cards.SUCCESS])["error"] == ["invalid_card_number"]
        bad_cvc = hosted_tokenise(client, cards.DO_NOT_HONOR, "85")
        assert bad_cvc["error"] == ["invalid_cvc"]
        api_tokenise(client, dashed(MASTERCARD), CVC[MASTERCARD])
        body = {"card_number": NOT_A_CARD, "exp_month": 1, "exp_year": 2030, "cvc": "8461"}
        refused = client.post("/v1/payment_methods", json=body, headers={"Idempotency-Key": "k1"})
        assert refused.status_code == 422
        assert not leaks(refused.text)
        body = {"card_number": cards.SUCCESS, "exp_month": 13, "exp_year": 2030, "cvc": "8461"}
        refused = client.post("/v1/payment_methods", json=body, headers={"Idempotency-Key": "k2"})
        assert refused.status_code == 422
        assert not leaks(refused.text)
    logged = "\n".join(record_text(r) for r in caplog.records)
    assert "hosted tokenisation" in logged
    assert not leaks(logged)
    assert not leaks(repr(struct_logs))
    assert not leaks(file_bytes(tmp_path / "g.db"))


def test_the_search_finds_what_it_looks_for() -> None:
    assert leaks(f"card={cards.SUCCESS}") == [cards.SUCCESS]
    assert leaks(b"n: 4000-0000-0000-9995") == [dashed(cards.INSUFFICIENT_FUNDS)]
    assert leaks('{"cvc": "8461"}') == ["8461"]
    assert leaks(spaced(MASTERCARD)) == [spaced(MASTERCARD)]
    assert leaks("cvc=9372, ") == ["9372"]
    assert not leaks("pm_ab8461cd ch_84619 0000008461 2026-01-15T09:30:00 4242 fiscus_att_x8461y")
    assert not leaks("'relativeCreated': 7358.0298 'created': 1.9372 in 0.8461s")


# --- one customer's cards are not another's -------------------------------------------------------


@pytest.fixture
def two_customers(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> tuple[Tenant, int, int, int, str]:
    """An organisation with customers Ada (with a card) and Bob; returns tenant, ada, bob, Ada's
    method id and its token."""
    tenant = make_tenant(db, clock, "bg")
    ada, bob = make_customer(db, clock, tenant, 1), make_customer(db, clock, tenant, 2)
    token = gateway.tokenise(cards.SUCCESS)
    method = add_card(db, clock, gateway.provider(), tenant.org_id, ada, token=token)
    return tenant, ada, bob, method, token


def test_a_card_attached_to_one_customer_cannot_be_attached_to_another(
    db: Database,
    clock: FixedClock,
    gateway: GatewayProcess,
    two_customers: tuple[Tenant, int, int, int, str],
) -> None:
    tenant, ada, bob, method, token = two_customers
    provider = gateway.provider()
    with pytest.raises(InvalidFieldError) as refused:
        add_card(db, clock, provider, tenant.org_id, bob, token=token)
    assert refused.value.field == "token"
    # Attaching it again to its own customer is harmless: the same method.
    assert add_card(db, clock, provider, tenant.org_id, ada, token=token) == method
    # Nor to a customer of another organisation using the same gateway.
    other = make_tenant(db, clock, "us", slug="other")
    mallory = make_customer(db, clock, other, 3)
    with pytest.raises(InvalidFieldError) as refused:
        add_card(db, clock, provider, other.org_id, mallory, token=token)
    assert refused.value.field == "token"
    with db.read() as conn:
        owners = conn.execute(
            select(t.payment_methods.c.customer_id).where(t.payment_methods.c.provider_token == token)
        ).all()
    assert owners == [(ada,)]


def test_another_customers_card_cannot_be_made_default_named_by_a_subscription_or_charged(
    db: Database,
    clock: FixedClock,
    gateway: GatewayProcess,
    two_customers: tuple[Tenant, int, int, int, str],
) -> None:
    tenant, ada, bob, method, _token = two_customers
    org = tenant.org_id
    provider = gateway.provider()
    with pytest.raises(InvalidFieldError) as refused:
        set_default_payment_method(db, clock, org, bob, method)
    assert refused.value.field == "payment_method_id"
    subscription = create_subscription(db, clock, org, bob, [ItemSpec(tenant.monthly, 1)])
    with pytest.raises(InvalidFieldError) as refused:
        set_subscription_payment_method(db, clock, org, subscription, method)
    assert refused.value.field == "payment_method_id"
    bobs_invoice = _invoice(db, clock, tenant, bob)
    charges_before = len(gateway.ledger()["charges"])  # type: ignore[arg-type]
    with pytest.raises(InvalidFieldError) as refused:
        charge_document(db, clock, provider, org, bobs_invoice, method_id=method)
    assert refused.value.field == "payment_method_id"
    # Bob has no card of his own: the worker does not fall back to anyone else's.
    assert run_collection(db, clock, provider).attempted == 0
    assert len(gateway.ledger()["charges"]) == charges_before  # type: ignore[arg-type]
    with db.read() as conn:
        bob_row = conn.execute(select(t.customers).where(t.customers.c.id == bob)).mappings().one()
        sub_row = (
            conn.execute(select(t.subscriptions).where(t.subscriptions.c.id == subscription)).mappings().one()
        )
        attempts = conn.execute(select(t.payment_attempts.c.id)).all()
    assert bob_row["default_payment_method_id"] is None
    assert sub_row["payment_method_id"] is None
    assert attempts == []
    del ada


def test_another_organisations_card_is_not_found(
    db: Database,
    clock: FixedClock,
    gateway: GatewayProcess,
    two_customers: tuple[Tenant, int, int, int, str],
) -> None:
    tenant, _ada, _bob, method, _token = two_customers
    other = make_tenant(db, clock, "us", slug="other")
    mallory = make_customer(db, clock, other, 3)
    with pytest.raises(NotFoundError):
        set_default_payment_method(db, clock, other.org_id, mallory, method)
    subscription = create_subscription(db, clock, other.org_id, mallory, [ItemSpec(other.monthly, 1)])
    with pytest.raises(NotFoundError):
        set_subscription_payment_method(db, clock, other.org_id, subscription, method)
    with pytest.raises(NotFoundError):
        charge_document(
            db, clock, gateway.provider(), other.org_id, _invoice(db, clock, other, mallory), method_id=method
        )
    with pytest.raises(NotFoundError):
        detach_payment_method(db, clock, other.org_id, method)
    with db.read() as conn:
        status = conn.execute(
            select(t.payment_methods.c.status).where(t.payment_methods.c.id == method)
        ).scalar_one()
    assert status == "active"
    del tenant
