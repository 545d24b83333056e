"""End to end over real HTTP: a real Fiscus server (uvicorn) and the test gateway as its own process,
each calling the other — Fiscus charges over the provider port, the gateway posts signed webhooks back
to /api/v1/webhooks/gateway. Everything a client does goes through Fiscus's API. After each scenario
Fiscus's invariants hold (`reconcile`) and its records match the gateway's ledger one to one: no charge
twice, nothing paid without a capture.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.gateway import cards
from fiscus.services.access import create_api_key
from fiscus.services.billing_run import run_billing
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.payments.charging import charge_document
from fiscus.services.payments.collection import run_collection
from fiscus.services.payments.janitor import settle_unknown
from fiscus.services.payments.methods import add_card
from fiscus.services.reconcile import reconcile
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.api_support import auth, free_port, live_server, make_app
from tests.builders import make_customer, make_tenant
from tests.payments_support import WEBHOOK_SECRET, GatewayProcess, gateway_process

pytestmark = pytest.mark.slow  # long: collected first (conftest)

CLIENT_TIMEOUT = 1.5
"""Fiscus's read timeout towards the gateway: normal answers come in milliseconds."""
GATEWAY_HOLD = 4.0
"""How long the gateway holds the TIMEOUT card's answer: well past Fiscus's timeout."""
WAIT = 30.0
"""Upper bound for asynchronous effects (webhooks) to show; tests poll, never assert timings."""


@dataclass
class Stack:
    base: str
    gateway: GatewayProcess
    http: httpx.Client
    org_id: int
    customer_id: int
    invoice_id: int

    def get(self, path: str) -> dict[str, Any]:
        r = self.http.get(path)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def post(self, path: str, body: Any = None, status: int | None = None) -> dict[str, Any]:
        r = self.http.post(path, json=body if body is not None else {})
        if status is not None:
            assert r.status_code == status, r.text
        result: dict[str, Any] = r.json()
        return result

    def document(self) -> dict[str, Any]:
        return self.get(f"/api/v1/documents/{self.invoice_id}")

    def add_card(self, number: str, **extra: Any) -> dict[str, Any]:
        token = self.gateway.tokenise(number)
        return self.post(
            f"/api/v1/customers/{self.customer_id}/payment_methods", {"token": token, **extra}, status=201
        )

    def charge(self, **body: Any) -> dict[str, Any]:
        return self.post(f"/api/v1/documents/{self.invoice_id}/payments", body, status=201)


@contextmanager
def stack(
    db: Database, clock: FixedClock, tmp_path: Path, *, webhooks: bool = True, slug: str = "e2e"
) -> Iterator[Stack]:
    """One organisation with one customer and one open invoice, served by a live Fiscus whose provider
    is a gateway process that (with `webhooks`) posts its events back to that server."""
    tenant = make_tenant(db, clock, "bg", slug=slug)
    customer = make_customer(db, clock, tenant)
    create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)])
    run_billing(db, clock)
    with db.read() as conn:
        invoice = conn.execute(
            select(t.documents.c.id).where(t.documents.c.organization_id == tenant.org_id)
        ).scalar_one()
    key = create_api_key(db, clock, tenant.org_id).secret
    gateway_port = free_port()
    app = make_app(
        db,
        clock,
        gateway_url=f"http://127.0.0.1:{gateway_port}",
        gateway_webhook_secret=WEBHOOK_SECRET,
        gateway_timeout_seconds=CLIENT_TIMEOUT,
    )
    with live_server(app) as base:
        hook = f"{base}/api/v1/webhooks/gateway" if webhooks else None
        with (
            gateway_process(
                tmp_path,
                port=gateway_port,
                webhook_url=hook,
                extra_args=("--timeout-seconds", str(GATEWAY_HOLD)),
            ) as gw,
            httpx.Client(base_url=base, headers=auth(key), timeout=30) as http,
        ):
            yield Stack(base, gw, http, tenant.org_id, customer, invoice)


def wait_until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {WAIT} s: {what}")
        time.sleep(0.05)


def inbound_events(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(t.inbound_events)).scalar_one())


def ledger_charges(gw: GatewayProcess) -> list[dict[str, Any]]:
    charges: list[dict[str, Any]] = httpx.get(f"{gw.url}/v1/ledger").json()["charges"]
    return charges


def iso(at: datetime) -> str:
    """An instant as the API writes it."""
    return at.isoformat().replace("+00:00", "Z")


def minor(amount: str) -> int:
    return int(Decimal(amount).scaleb(2))


def assert_consistent(db: Database, gw: GatewayProcess) -> None:
    """`reconcile` finds nothing, and Fiscus's captures and refunds per charge are the gateway's."""
    bad = {k: v for k, v in reconcile(db).items() if v}
    assert not bad, bad
    charges = {c["id"]: c for c in ledger_charges(gw)}
    pa, pc, pr = t.payment_attempts.c, t.payment_captures.c, t.payment_refunds.c
    with db.read() as conn:
        attempts = conn.execute(
            select(pa.id, pa.idempotency_key, pa.provider_charge_id, pa.status).where(
                pa.provider == "test_gateway"
            )
        ).all()
        captured = dict(
            conn.execute(
                select(pc.attempt_id, func.sum(pc.amount_minor))
                .where(pc.status == "succeeded")
                .group_by(pc.attempt_id)
            ).all()
        )
        refunded = dict(
            conn.execute(
                select(pr.attempt_id, func.sum(pr.amount_minor))
                .where(pr.status == "succeeded")
                .group_by(pr.attempt_id)
            ).all()
        )
    by_reference = {c["reference"]: c for c in charges.values()}
    for attempt_id, key, charge_id, status in attempts:
        assert status not in ("pending", "unknown"), (attempt_id, status)
        charge = charges.get(charge_id) if charge_id else by_reference.get(key)
        if charge is None:  # never reached the gateway
            assert status == "failed"
            continue
        assert int(captured.get(attempt_id, 0)) == charge["captured_amount"], (attempt_id, charge)
        assert int(refunded.get(attempt_id, 0)) == charge["refunded_amount"], (attempt_id, charge)
    known = {a.provider_charge_id for a in attempts}
    money_moved = {cid for cid, c in charges.items() if c["captured_amount"] > 0}
    assert money_moved <= known, money_moved - known


def test_success(db: Database, clock: FixedClock, tmp_path: Path) -> None:
    with stack(db, clock, tmp_path) as s:
        method = s.add_card(cards.SUCCESS)
        total = s.document()["total"]
        attempt = s.charge()
        assert attempt["status"] == "succeeded"
        assert attempt["captured_amount"] == total
        assert attempt["payment_method_id"] == method["id"]
        doc = s.document()
        assert (doc["status"], doc["amount_paid"], doc["amount_due"]) == ("paid", total, "0.00")
        # the gateway's webhook for the charge arrives and changes nothing
        wait_until("the charge's webhook is received", lambda: inbound_events(db) >= 1)
        assert s.document()["amount_paid"] == total
        assert s.get(f"/api/v1/documents/{s.invoice_id}/payments")["data"][0]["captured_amount"] == total
        assert_consistent(db, s.gateway)


@pytest.mark.parametrize(
    ("number", "code", "hard"),
    [
        (cards.INSUFFICIENT_FUNDS, "insufficient_funds", False),
        (cards.EXPIRED_CARD, "expired_card", True),
        (cards.DO_NOT_HONOR, "do_not_honor", True),
        (cards.PROCESSING_ERROR, "processing_error", False),
    ],
)
def test_each_decline(
    db: Database, clock: FixedClock, tmp_path: Path, number: str, code: str, hard: bool
) -> None:
    with stack(db, clock, tmp_path) as s:
        s.add_card(number)
        attempt = s.charge()
        assert attempt["status"] == "failed"
        assert attempt["error"]["code"] == code
        assert attempt["error"]["message"]
        assert attempt["hard_decline"] is hard
        wait_until("the decline's webhook is received", lambda: inbound_events(db) >= 1)
        doc = s.document()
        assert (doc["status"], doc["amount_paid"]) == ("open", "0.00")
        [listed] = s.get(f"/api/v1/payments?document_id={s.invoice_id}")["data"]
        assert listed["error"] == attempt["error"]
        assert listed["captured_amount"] == "0.00"
        # a working card pays it afterwards
        s.add_card(cards.SUCCESS)
        clock.advance(timedelta(minutes=1))
        assert s.charge()["status"] == "succeeded"
        assert s.document()["status"] == "paid"
        wait_until("both webhooks are received", lambda: inbound_events(db) >= 2)
        assert_consistent(db, s.gateway)


def test_retry_schedule_with_a_moving_clock(db: Database, clock: FixedClock, tmp_path: Path) -> None:
    with stack(db, clock, tmp_path) as s:
        r = s.http.patch("/api/v1/payment_settings", json={"retry_days": [1, 3, 5]})
        assert r.status_code == 200, r.text
        s.add_card(cards.INSUFFICIENT_FUNDS)
        provider = s.gateway.provider()
        assert s.document()["next_payment_attempt_at"] is not None
        clock.advance(timedelta(seconds=1))
        first = clock.now()

        summary = run_collection(db, clock, provider)  # the automatic charge planned at issue
        assert (summary.attempted, summary.failed) == (1, 1)
        doc = s.document()
        assert doc["status"] == "open"
        assert doc["next_payment_attempt_at"] == iso(first + timedelta(days=1))
        clock.advance(timedelta(hours=23))
        assert run_collection(db, clock, provider).attempted == 0  # not due yet

        clock.set(first + timedelta(days=1))
        assert run_collection(db, clock, provider).failed == 1
        assert s.document()["next_payment_attempt_at"] == iso(first + timedelta(days=3))
        # the customer gives a card that works before the next retry
        s.add_card(cards.SUCCESS)
        clock.set(first + timedelta(days=3))
        assert run_collection(db, clock, provider).succeeded == 1
        doc = s.document()
        assert (doc["status"], doc["amount_due"], doc["next_payment_attempt_at"]) == ("paid", "0.00", None)
        attempts = s.get(f"/api/v1/documents/{s.invoice_id}/payments")["data"]
        assert [(a["trigger"], a["status"]) for a in attempts] == [
            ("automatic", "failed"),
            ("retry", "failed"),
            ("retry", "succeeded"),
        ]
        assert [a["card"]["last4"] for a in attempts] == ["9995", "9995", "4242"]
        clock.set(first + timedelta(days=5))
        assert run_collection(db, clock, provider).attempted == 0
        wait_until("three webhooks are received", lambda: inbound_events(db) >= 3)
        assert_consistent(db, s.gateway)


def test_retries_exhausted_and_hard_declines_stop(db: Database, clock: FixedClock, tmp_path: Path) -> None:
    with stack(db, clock, tmp_path) as s:
        s.http.patch(
            "/api/v1/payment_settings", json={"retry_days": [2], "retry_final_action": "mark_uncollectible"}
        )
        s.add_card(cards.PROCESSING_ERROR)
        provider = s.gateway.provider()
        issued = clock.now()
        assert run_collection(db, clock, provider).failed == 1
        clock.set(issued + timedelta(days=2))
        assert run_collection(db, clock, provider).failed == 1
        doc = s.document()
        assert (doc["status"], doc["next_payment_attempt_at"]) == ("uncollectible", None)
        clock.set(issued + timedelta(days=30))
        assert run_collection(db, clock, provider).attempted == 0
        assert len(s.get(f"/api/v1/documents/{s.invoice_id}/payments")["data"]) == 2
        wait_until("two webhooks are received", lambda: inbound_events(db) >= 2)
        assert_consistent(db, s.gateway)


def test_unknown_outcome_settled_by_the_webhook(db: Database, clock: FixedClock, tmp_path: Path) -> None:
    with stack(db, clock, tmp_path) as s:
        s.add_card(cards.TIMEOUT)
        total = s.document()["total"]
        attempt = s.charge()  # the gateway charges, sends its webhook, then holds the answer too long
        assert attempt["status"] in ("unknown", "succeeded")
        wait_until(
            "the webhook settles the attempt",
            lambda: s.get(f"/api/v1/payments/{attempt['id']}")["status"] == "succeeded",
        )
        doc = s.document()
        assert (doc["status"], doc["amount_paid"]) == ("paid", total)
        # the janitor, later, finds nothing left to settle
        clock.advance(timedelta(minutes=5))
        assert settle_unknown(db, clock, s.gateway.provider()) == 0
        [charge] = ledger_charges(s.gateway)
        assert charge["captured_amount"] == minor(total)
        assert_consistent(db, s.gateway)


def test_unknown_outcome_settled_by_the_janitor(db: Database, clock: FixedClock, tmp_path: Path) -> None:
    with stack(db, clock, tmp_path, webhooks=False) as s:
        s.add_card(cards.TIMEOUT)
        total = s.document()["total"]
        attempt = s.charge()
        assert attempt["status"] == "unknown"
        assert attempt["error"] is None
        doc = s.document()
        assert (doc["status"], doc["amount_paid"]) == ("open", "0.00")
        # while it is unknown, no second charge can start
        r = s.http.post(f"/api/v1/documents/{s.invoice_id}/payments", json={})
        assert r.status_code == 409, r.text
        assert settle_unknown(db, clock, s.gateway.provider()) == 0  # still within the grace period
        clock.advance(timedelta(minutes=5))
        assert settle_unknown(db, clock, s.gateway.provider()) == 1
        settled = s.get(f"/api/v1/payments/{attempt['id']}")
        assert (settled["status"], settled["captured_amount"]) == ("succeeded", total)
        assert s.document()["status"] == "paid"
        assert settle_unknown(db, clock, s.gateway.provider()) == 0
        assert len(ledger_charges(s.gateway)) == 1
        assert_consistent(db, s.gateway)


def test_partial_capture(db: Database, clock: FixedClock, tmp_path: Path) -> None:
    with stack(db, clock, tmp_path) as s:
        s.http.patch("/api/v1/payment_settings", json={"capture_mode": "authorize"})
        s.add_card(cards.SUCCESS)
        total = s.document()["total"]
        attempt = s.charge()
        assert (attempt["status"], attempt["authorized_amount"]) == ("authorized", total)
        assert s.document()["amount_paid"] == "0.00"
        part = str(Decimal(total) - Decimal("5.00"))
        clock.advance(timedelta(minutes=1))
        captured = s.post(f"/api/v1/payments/{attempt['id']}/capture", {"amount": part}, status=200)
        assert (captured["status"], captured["captured_amount"]) == ("succeeded", part)
        wait_until("authorisation and capture webhooks are received", lambda: inbound_events(db) >= 2)
        doc = s.document()
        assert (doc["status"], doc["amount_paid"], doc["amount_due"]) == ("open", part, "5.00")
        # the rest is due and can be charged again; the document is then paid exactly
        s.http.patch("/api/v1/payment_settings", json={"capture_mode": "sale"})
        clock.advance(timedelta(minutes=1))
        rest = s.charge()
        assert (rest["status"], rest["captured_amount"]) == ("succeeded", "5.00")
        doc = s.document()
        assert (doc["status"], doc["amount_paid"]) == ("paid", total)
        wait_until("the second charge's webhook is received", lambda: inbound_events(db) >= 3)
        assert_consistent(db, s.gateway)


def test_capture_and_refund_while_the_gateway_is_down(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    """A capture or refund whose call fails is accepted (202) and left pending; once the gateway is back,
    the janitor sends it again with the same idempotency key and settles it."""
    with stack(db, clock, tmp_path) as s:
        s.http.patch("/api/v1/payment_settings", json={"capture_mode": "authorize"})
        s.add_card(cards.SUCCESS)
        total = s.document()["total"]
        attempt = s.charge()
        assert attempt["status"] == "authorized"
        port = int(s.gateway.url.rsplit(":", 1)[1])
        hook = f"{s.base}/api/v1/webhooks/gateway"
        args = ("--timeout-seconds", str(GATEWAY_HOLD))

        s.gateway.kill()
        r = s.http.post(f"/api/v1/payments/{attempt['id']}/capture", json={})
        assert r.status_code == 202, r.text
        assert (r.json()["status"], r.json()["captured_amount"]) == ("authorized", "0.00")
        assert s.document()["status"] == "open"
        with gateway_process(tmp_path, port=port, webhook_url=hook, extra_args=args) as gw:
            clock.advance(timedelta(minutes=5))
            assert settle_unknown(db, clock, gw.provider()) == 1
            assert s.get(f"/api/v1/payments/{attempt['id']}")["captured_amount"] == total
            assert s.document()["status"] == "paid"
            gw.kill()

        clock.advance(timedelta(minutes=1))
        r = s.http.post(
            f"/api/v1/documents/{s.invoice_id}/refunds", json={"amount": "2.00", "reason": "late"}
        )
        assert r.status_code == 202, r.text
        [pending] = r.json()["data"]
        assert (pending["status"], pending["credit_note_id"]) == ("pending", None)
        with gateway_process(tmp_path, port=port, webhook_url=hook, extra_args=args) as gw:
            clock.advance(timedelta(minutes=5))
            assert settle_unknown(db, clock, gw.provider()) == 1
            [refund] = s.get(f"/api/v1/documents/{s.invoice_id}/refunds")["data"]
            assert (refund["id"], refund["status"], refund["amount"]) == (pending["id"], "succeeded", "2.00")
            assert refund["credit_note_id"] is not None
            assert s.document()["amount_refunded"] == "2.00"
            assert_consistent(db, gw)


def test_partial_and_full_refunds_and_over_refund_refused(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    with stack(db, clock, tmp_path) as s:
        s.add_card(cards.SUCCESS)
        total = s.document()["total"]
        attempt = s.charge()
        url = f"/api/v1/documents/{s.invoice_id}/refunds"
        over = s.http.post(url, json={"amount": str(Decimal(total) + Decimal("0.01")), "reason": "too much"})
        assert over.status_code == 409, over.text
        assert [e["field"] for e in over.json()["errors"]] == ["amount"]

        clock.advance(timedelta(minutes=1))
        [partial] = s.post(url, {"amount": "3.00", "reason": "discount"}, status=201)["data"]
        assert (partial["amount"], partial["status"]) == ("3.00", "succeeded")
        assert partial["credit_note_id"] is not None
        doc = s.document()
        assert (doc["amount_refunded"], doc["amount_credited"], doc["status"]) == ("3.00", "3.00", "paid")
        over = s.http.post(url, json={"amount": str(Decimal(total) - Decimal("2.99")), "reason": "too much"})
        assert over.status_code == 409, over.text

        clock.advance(timedelta(minutes=1))
        [full] = s.post(url, {"reason": "cancelled"}, status=201)["data"]
        assert minor(full["amount"]) == minor(total) - 300
        note = s.get(f"/api/v1/documents/{full['credit_note_id']}")
        assert (note["type"], note["corrected_document_id"]) == ("credit_note", s.invoice_id)
        assert note["total"] == full["amount"]
        wait_until("charge and two refund webhooks are received", lambda: inbound_events(db) >= 3)
        doc = s.document()
        assert doc["amount_refunded"] == total
        assert doc["amount_paid"] == total  # gross: what was captured
        assert s.get(f"/api/v1/payments/{attempt['id']}")["refunded_amount"] == total
        assert len(s.get(url)["data"]) == 2
        r = s.http.post(url, json={"amount": "0.01", "reason": "more"})
        assert r.status_code == 409, r.text
        [charge] = ledger_charges(s.gateway)
        assert charge["refunded_amount"] == minor(total)
        assert_consistent(db, s.gateway)


def test_the_worker_collects_and_settles(
    db: Database, db_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    """`fiscus worker --once` with a gateway configured: it settles an unknown outcome left by a timed-out
    charge and charges an invoice that is due, and says so."""
    tenant = make_tenant(db, clock, "bg", slug="worker")
    with gateway_process(tmp_path, extra_args=("--timeout-seconds", str(GATEWAY_HOLD))) as gw:
        invoices = {}
        for n, number in enumerate((cards.SUCCESS, cards.TIMEOUT)):
            cid = make_customer(db, clock, tenant, n)
            add_card(db, clock, gw.provider(), tenant.org_id, cid, token=gw.tokenise(number))
            order = create_order(db, clock, tenant.org_id, cid, [ItemSpec(tenant.one_off, 1)])
            invoices[number] = bill_order_now(db, clock, tenant.org_id, order)
        lost = charge_document(
            db, clock, gw.provider(timeout_seconds=CLIENT_TIMEOUT), tenant.org_id, invoices[cards.TIMEOUT]
        )
        assert lost.status.value == "unknown"
        env = {
            **os.environ,
            "FISCUS_DATABASE_URL": db_url,
            "FISCUS_GATEWAY_URL": gw.url,
            "FISCUS_GATEWAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "FISCUS_DOCUMENTS_DIR": str(tmp_path / "documents"),
            "FISCUS_LOG_LEVEL": "WARNING",
        }
        done = subprocess.run(
            [sys.executable, "-m", "fiscus.cli", "worker", "--once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "1 charges (1 succeeded" in done.stderr, done.stderr
        assert "1 unknown outcomes settled" in done.stderr, done.stderr
        with db.read() as conn:
            statuses = dict(
                conn.execute(
                    select(t.documents.c.id, t.documents.c.status).where(
                        t.documents.c.id.in_(invoices.values())
                    )
                ).all()
            )
        assert statuses == {invoices[cards.SUCCESS]: "paid", invoices[cards.TIMEOUT]: "paid"}
        assert_consistent(db, gw)
