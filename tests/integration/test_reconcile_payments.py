"""Reconciliation of payments: clean after real flows against the test gateway (its own process and
ledger), and every payment check catching the corruption it exists for, including Fiscus's records and
the gateway's ledger disagreeing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.gateway import cards
from fiscus.services.billing_run import run_billing
from fiscus.services.documents import mark_paid
from fiscus.services.orders import create_order
from fiscus.services.payments.captures import capture_payment
from fiscus.services.payments.collection import run_collection
from fiscus.services.payments.janitor import settle_unknown
from fiscus.services.payments.methods import add_card
from fiscus.services.payments.refunds import refund_payment
from fiscus.services.payments.settings import update_payment_settings
from fiscus.services.reconcile import CHECKS, PROVIDER_CHECK, reconcile, reconcile_with_provider
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.builders import make_customer, make_tenant
from tests.cli_support import fiscus_here
from tests.payments_support import GatewayProcess, gateway_process

PAYMENT_CHECKS = (
    "captured_within_authorized",
    "refunded_within_captured",
    "paid_is_sum_of_captures",
    "refunded_is_sum_of_refunds",
    "paid_documents_are_covered",
    "one_payment_in_flight_per_document",
    "captures_belong_to_succeeded_attempts",
    "captures_pay_the_attempts_document",
    "invoice_refunds_have_credit_notes",
    "payment_tenant_consistency",
)


@pytest.fixture
def gateway(tmp_path: Any) -> Iterator[GatewayProcess]:
    """A gateway per test: its ledger must hold this database's charges only."""
    with gateway_process(tmp_path, extra_args=("--timeout-seconds", "3")) as gw:
        yield gw


@dataclass
class Flows:
    org_a: int
    org_b: int
    sold: int
    """Invoice paid by a sale, then partly refunded."""
    declined: int
    """Invoice declined twice (the automatic charge and one retry)."""
    converted: int
    """The final invoice a paid proforma became, then refunded in full."""
    external: int
    """Invoice paid outside Fiscus (`mark_paid`)."""
    authorized: int
    """Invoice authorised, captured in part, then partly refunded (organisation B)."""


def _doc_of(db: Database, org_id: int, customer_id: int) -> int:
    d = t.documents.c
    with db.read() as conn:
        found = conn.execute(
            select(d.id).where(d.organization_id == org_id, d.customer_id == customer_id).order_by(d.id)
        ).scalars()
        return int(next(iter(found)))


def _one(db: Database, sql: str, **params: object) -> Any:
    with db.read() as conn:
        return conn.execute(text(sql), params).scalar_one()


def _flows(db: Database, clock: FixedClock, gw: GatewayProcess) -> Flows:
    """Success, soft declines with a retry, an unknown outcome settled by the janitor, a proforma paid into
    an invoice, partial and full refunds, a payment recorded outside Fiscus, and an authorisation captured
    in part: every kind of row the checks look at."""
    provider = gw.provider()
    a = make_tenant(db, clock, "kz", slug="rec-a", order_document=DocumentType.PROFORMA)
    buyers = {}
    for n, number in enumerate((cards.SUCCESS, cards.INSUFFICIENT_FUNDS, cards.TIMEOUT, None)):
        cid = make_customer(db, clock, a, n)
        if number is not None:
            add_card(db, clock, provider, a.org_id, cid, token=gw.tokenise(number))
        create_subscription(db, clock, a.org_id, cid, [ItemSpec(a.monthly, 1)])
        buyers[number] = cid
    pro = make_customer(db, clock, a, 5)
    add_card(db, clock, provider, a.org_id, pro, token=gw.tokenise(cards.SUCCESS))
    create_order(db, clock, a.org_id, pro, [ItemSpec(a.one_off, 1)])
    b = make_tenant(db, clock, "us", slug="rec-b")
    update_payment_settings(db, clock, b.org_id, capture_mode="authorize")
    holder = make_customer(db, clock, b, 6)
    add_card(db, clock, provider, b.org_id, holder, token=gw.tokenise(cards.SUCCESS))
    create_subscription(db, clock, b.org_id, holder, [ItemSpec(b.monthly, 1)])
    run_billing(db, clock)

    summary = run_collection(db, clock, gw.provider(timeout_seconds=1.0))
    assert (summary.succeeded, summary.failed, summary.unknown) == (3, 1, 1), summary
    clock.advance(timedelta(days=1))
    assert run_collection(db, clock, provider).failed == 1
    assert settle_unknown(db, clock, provider) == 1

    flows = Flows(
        org_a=a.org_id,
        org_b=b.org_id,
        sold=_doc_of(db, a.org_id, buyers[cards.SUCCESS]),
        declined=_doc_of(db, a.org_id, buyers[cards.INSUFFICIENT_FUNDS]),
        converted=_one(db, "SELECT id FROM documents WHERE converted_from_id IS NOT NULL"),
        external=_doc_of(db, a.org_id, buyers[None]),
        authorized=_doc_of(db, b.org_id, holder),
    )
    refund_payment(db, clock, provider, a.org_id, flows.sold, amount_minor=500, reason="goodwill")
    refund_payment(db, clock, provider, a.org_id, flows.converted)
    mark_paid(db, clock, a.org_id, flows.external)
    attempt = _one(db, "SELECT id FROM payment_attempts WHERE document_id = :d", d=flows.authorized)
    total = _one(db, "SELECT total_minor FROM documents WHERE id = :d", d=flows.authorized)
    capture_payment(db, clock, provider, b.org_id, attempt, amount_minor=total - 100)
    refund_payment(db, clock, provider, b.org_id, flows.authorized, amount_minor=200)
    return flows


def _report(db: Database) -> dict[str, list[dict[str, object]]]:
    return {name: [v.row for v in rows] for name, rows in reconcile(db).items() if rows}


def _provider_problems(db: Database, gw: GatewayProcess) -> list[str]:
    return [str(v.row["problem"]) for v in reconcile_with_provider(db, gw.provider())]


def test_clean_after_real_flows(db: Database, clock: FixedClock, gateway: GatewayProcess) -> None:
    flows = _flows(db, clock, gateway)
    assert _report(db) == {}
    assert set(PAYMENT_CHECKS) <= set(CHECKS)
    assert reconcile_with_provider(db, gateway.provider()) == []
    with db.read() as conn:
        statuses = dict(
            conn.execute(
                select(t.documents.c.id, t.documents.c.status).where(
                    t.documents.c.id.in_([flows.sold, flows.declined, flows.converted, flows.authorized])
                )
            ).all()
        )
        kinds = set(conn.execute(select(t.payment_attempts.c.status).distinct()).scalars())
    assert statuses == {
        flows.sold: "paid",
        flows.declined: "open",
        flows.converted: "paid",
        flows.authorized: "open",
    }
    assert kinds == {"succeeded", "failed"}
    ledger = gateway.ledger()
    assert len(ledger["charges"]) == 6  # type: ignore[arg-type]


CORRUPTIONS: dict[str, list[str]] = {
    "captured_within_authorized": [
        "UPDATE payment_attempts SET authorized_minor = authorized_minor - 1 WHERE id = :sold_attempt"
    ],
    "refunded_within_captured": [
        "UPDATE payment_refunds SET amount_minor = amount_minor + 100000000 WHERE id = :sold_refund"
    ],
    "paid_is_sum_of_captures": [
        "UPDATE documents SET amount_paid_minor = amount_paid_minor + 1 WHERE id = :sold"
    ],
    "refunded_is_sum_of_refunds": [
        "UPDATE documents SET amount_refunded_minor = amount_refunded_minor - 1 WHERE id = :sold"
    ],
    "paid_documents_are_covered": [
        "UPDATE documents SET status = 'paid', paid_at = updated_at, next_payment_attempt_at = NULL"
        " WHERE id = :declined"
    ],
    "one_payment_in_flight_per_document": [
        "DROP INDEX ix_payment_attempts_in_flight",
        "UPDATE payment_attempts SET status = 'unknown', settled_at = NULL WHERE document_id = :declined",
    ],
    "captures_belong_to_succeeded_attempts": [
        "UPDATE payment_attempts SET status = 'failed' WHERE id = :sold_attempt"
    ],
    "captures_pay_the_attempts_document": [
        "UPDATE payment_captures SET document_id = :external WHERE attempt_id = :sold_attempt"
    ],
    "invoice_refunds_have_credit_notes": [
        "UPDATE payment_refunds SET credit_note_id = NULL WHERE id = :sold_refund"
    ],
    "payment_tenant_consistency": [
        "UPDATE payment_refunds SET organization_id = :org_b WHERE id = :sold_refund"
    ],
}


def test_each_payment_check_catches_its_corruption(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    flows = _flows(db, clock, gateway)
    sold_attempt = _one(db, "SELECT id FROM payment_attempts WHERE document_id = :d", d=flows.sold)
    params = {
        "sold": flows.sold,
        "declined": flows.declined,
        "external": flows.external,
        "org_b": flows.org_b,
        "sold_attempt": sold_attempt,
        "sold_refund": _one(db, "SELECT id FROM payment_refunds WHERE document_id = :d", d=flows.sold),
    }
    assert set(CORRUPTIONS) == set(PAYMENT_CHECKS)
    for check, statements in CORRUPTIONS.items():
        with db.engine.connect() as conn:
            outer = conn.begin()
            assert conn.execute(text(CHECKS[check])).first() is None, check
            for sql in statements:
                conn.execute(text(sql), {k: v for k, v in params.items() if f":{k}" in sql})
            found = conn.execute(text(CHECKS[check])).mappings().all()
            outer.rollback()
        assert found, f"{check} missed its corruption"
    assert _report(db) == {}, "every corruption was rolled back"
    with db.write() as conn:  # and once through reconcile() itself, committed
        conn.execute(text(CORRUPTIONS["paid_is_sum_of_captures"][0]), {"sold": flows.sold})
    report = _report(db)
    assert set(report) == {"paid_is_sum_of_captures"}
    assert report["paid_is_sum_of_captures"][0]["id"] == flows.sold


def _gateway_post(gw: GatewayProcess, path: str, body: dict[str, object], key: str) -> dict[str, Any]:
    response = httpx.post(f"{gw.url}{path}", json=body, headers={"Idempotency-Key": key})
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def test_ledger_mismatches_are_found(db: Database, clock: FixedClock, gateway: GatewayProcess) -> None:
    flows = _flows(db, clock, gateway)
    sold = dict(
        _row(
            db,
            "SELECT id, idempotency_key, provider_charge_id FROM payment_attempts WHERE document_id = :d",
            d=flows.sold,
        )
    )
    assert _provider_problems(db, gateway) == []

    # Fiscus's captured amount edited: the gateway captured more than Fiscus says.
    with db.write() as conn:
        conn.execute(
            text("UPDATE payment_captures SET amount_minor = amount_minor - 1 WHERE attempt_id = :a"),
            {"a": sold["id"]},
        )
    assert _provider_problems(db, gateway) == ["captured_amount_differs"]
    with db.write() as conn:
        conn.execute(
            text("UPDATE payment_captures SET amount_minor = amount_minor + 1 WHERE attempt_id = :a"),
            {"a": sold["id"]},
        )
    assert _provider_problems(db, gateway) == []

    # A Fiscus charge id the gateway never issued: its own charge is missing, and the gateway's charge
    # with its reference is not the one Fiscus recorded, nor is its refund Fiscus's refund of that charge.
    with db.write() as conn:
        conn.execute(
            text("UPDATE payment_attempts SET provider_charge_id = 'ch_nobody' WHERE id = :a"),
            {"a": sold["id"]},
        )
    assert sorted(_provider_problems(db, gateway)) == [
        "charge_missing_at_provider",
        "refund_differs",
        "second_charge_for_attempt",
    ]
    with db.write() as conn:
        conn.execute(
            text("UPDATE payment_attempts SET provider_charge_id = :c WHERE id = :a"),
            {"a": sold["id"], "c": sold["provider_charge_id"]},
        )

    # A succeeded charge Fiscus believes failed: money taken for a failure.
    with db.write() as conn:
        conn.execute(text("UPDATE payment_attempts SET status = 'failed' WHERE id = :a"), {"a": sold["id"]})
    assert _provider_problems(db, gateway) == ["money_on_unsuccessful_attempt"]
    with db.write() as conn:
        conn.execute(
            text("UPDATE payment_attempts SET status = 'succeeded' WHERE id = :a"), {"a": sold["id"]}
        )
    assert _provider_problems(db, gateway) == []

    # A Fiscus refund whose amount was edited: the total differs, and so does that one refund.
    with db.write() as conn:
        conn.execute(
            text("UPDATE payment_refunds SET amount_minor = amount_minor + 1 WHERE attempt_id = :a"),
            {"a": sold["id"]},
        )
    assert sorted(_provider_problems(db, gateway)) == ["refund_differs", "refunded_amount_differs"]
    with db.write() as conn:
        conn.execute(
            text("UPDATE payment_refunds SET amount_minor = amount_minor - 1 WHERE attempt_id = :a"),
            {"a": sold["id"]},
        )
    assert _provider_problems(db, gateway) == []

    # A refund made in the gateway's dashboard that Fiscus has not heard of (no webhook here).
    _gateway_post(
        gateway, f"/v1/charges/{sold['provider_charge_id']}/refunds", {"amount": 100}, "dash-refund"
    )
    assert sorted(_provider_problems(db, gateway)) == ["refund_missing_in_fiscus", "refunded_amount_differs"]

    # Charges made at the gateway directly: one nobody knows, one more for a Fiscus attempt's reference.
    token = gateway.tokenise(cards.SUCCESS)
    charge = {"token": token, "amount": 1234, "currency": "KZT", "capture": True}
    _gateway_post(gateway, "/v1/charges", {**charge, "reference": "somebody-else"}, "direct-1")
    _gateway_post(gateway, "/v1/charges", {**charge, "reference": sold["idempotency_key"]}, "direct-2")
    assert sorted(_provider_problems(db, gateway)) == [
        "refund_missing_in_fiscus",
        "refunded_amount_differs",
        "second_charge_for_attempt",
        "unknown_charge_at_provider",
    ]


def _row(db: Database, sql: str, **params: object) -> Any:
    with db.read() as conn:
        return conn.execute(text(sql), params).mappings().one()


@pytest.mark.slow
def test_fiscus_reconcile_checks_the_gateway_ledger(
    db: Database, db_url: str, clock: FixedClock, gateway: GatewayProcess
) -> None:
    _flows(db, clock, gateway)
    env = {**os.environ, "FISCUS_DATABASE_URL": db_url, "FISCUS_GATEWAY_URL": gateway.url}

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        """The follow-up runs in-process, through the same `fiscus.cli:main` (tests/cli_support.py)."""
        return fiscus_here(db_url, "reconcile", *args, env={"FISCUS_GATEWAY_URL": gateway.url, **extra})

    clean = subprocess.run(  # the first in a real process, as an operator runs it
        [sys.executable, "-m", "fiscus.cli", "reconcile", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr
    report = json.loads(clean.stdout)
    assert report[PROVIDER_CHECK] == []
    assert all(report[name] == [] for name in PAYMENT_CHECKS)
    token = gateway.tokenise(cards.SUCCESS)
    body = {"token": token, "amount": 999, "currency": "KZT", "capture": True, "reference": "stray"}
    _gateway_post(gateway, "/v1/charges", body, "stray-charge")
    dirty = run("--json")
    assert dirty.returncode == 1
    assert [row["problem"] for row in json.loads(dirty.stdout)[PROVIDER_CHECK]] == [
        "unknown_charge_at_provider"
    ]
    human = run()
    assert human.returncode == 1
    assert f"FAIL  {PROVIDER_CHECK}" in human.stdout
    unreachable = run("--json", FISCUS_GATEWAY_URL="http://127.0.0.1:9")
    assert unreachable.returncode == 1
    rows = json.loads(unreachable.stdout)[PROVIDER_CHECK]
    assert [row["problem"] for row in rows] == ["provider_ledger_unavailable"]
    without = run("--json", FISCUS_GATEWAY_URL="")
    assert without.returncode == 0, without.stdout
    assert PROVIDER_CHECK not in json.loads(without.stdout)
