"""The payment services against the test gateway running as its own process, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.errors import InvalidFieldError, InvalidStateError
from fiscus.domain.payments import AttemptStatus
from fiscus.gateway import cards
from fiscus.services.billing_run import run_billing
from fiscus.services.payments.captures import capture_payment
from fiscus.services.payments.charging import charge_document
from fiscus.services.payments.collection import run_collection
from fiscus.services.payments.janitor import settle_unknown
from fiscus.services.payments.methods import add_card
from fiscus.services.payments.refunds import refund_payment
from fiscus.services.payments.settings import update_payment_settings
from fiscus.services.reconcile import reconcile
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.builders import make_customer, make_tenant
from tests.payments_support import GatewayProcess, gateway_process


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("gw"), extra_args=("--timeout-seconds", "4")) as gw:
        yield gw


def _invoice(db: Database, clock: FixedClock, gateway: GatewayProcess, number: str) -> tuple[int, int, int]:
    tenant = make_tenant(db, clock, "bg")
    cid = make_customer(db, clock, tenant)
    add_card(db, clock, gateway.provider(), tenant.org_id, cid, token=gateway.tokenise(number))
    create_subscription(db, clock, tenant.org_id, cid, [ItemSpec(tenant.monthly, 1)])
    run_billing(db, clock)
    with db.read() as conn:
        doc_id = conn.execute(
            select(t.documents.c.id).where(t.documents.c.organization_id == tenant.org_id)
        ).scalar_one()
    return tenant.org_id, cid, doc_id


def _doc(db: Database, doc_id: int) -> dict[str, object]:
    with db.read() as conn:
        return dict(conn.execute(select(t.documents).where(t.documents.c.id == doc_id)).mappings().one())


def _clean(db: Database) -> None:
    bad = {k: v for k, v in reconcile(db).items() if v}
    assert not bad, bad


def test_success_pays_the_invoice(db: Database, clock: FixedClock, gateway: GatewayProcess) -> None:
    _org, _cid, doc_id = _invoice(db, clock, gateway, cards.SUCCESS)
    summary = run_collection(db, clock, gateway.provider())
    assert summary.succeeded == 1
    doc = _doc(db, doc_id)
    assert doc["status"] == "paid"
    assert doc["amount_paid_minor"] == doc["total_minor"]
    assert doc["next_payment_attempt_at"] is None
    _clean(db)


def test_soft_decline_retries_on_schedule_then_hard_stop(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    _org, _cid, doc_id = _invoice(db, clock, gateway, cards.INSUFFICIENT_FUNDS)
    first = clock.now()
    assert run_collection(db, clock, gateway.provider()).failed == 1
    doc = _doc(db, doc_id)
    assert doc["status"] == "open"
    assert doc["next_payment_attempt_at"] == first + timedelta(days=1)
    assert run_collection(db, clock, gateway.provider()).attempted == 0
    for day in (1, 3, 5, 7):
        clock.set(first + timedelta(days=day))
        assert run_collection(db, clock, gateway.provider()).failed == 1
    assert _doc(db, doc_id)["next_payment_attempt_at"] is None
    with db.read() as conn:
        statuses = list(
            conn.execute(
                select(t.payment_attempts.c.status, t.payment_attempts.c.error_code).where(
                    t.payment_attempts.c.document_id == doc_id
                )
            )
        )
    assert statuses == [("failed", "insufficient_funds")] * 5
    _clean(db)


def test_hard_decline_is_not_retried_and_final_action_applies(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    org, _cid, doc_id = _invoice(db, clock, gateway, cards.DO_NOT_HONOR)
    update_payment_settings(db, clock, org, retry_final_action="mark_uncollectible")
    assert run_collection(db, clock, gateway.provider()).failed == 1
    doc = _doc(db, doc_id)
    assert doc["next_payment_attempt_at"] is None
    assert doc["status"] == "uncollectible"
    _clean(db)


def test_unknown_outcome_is_settled_by_the_janitor(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    org, _cid, doc_id = _invoice(db, clock, gateway, cards.TIMEOUT)
    outcome = charge_document(db, clock, gateway.provider(timeout_seconds=1.0), org, doc_id)
    assert outcome.status is AttemptStatus.UNKNOWN
    assert _doc(db, doc_id)["status"] == "open"
    with pytest.raises(InvalidStateError):
        charge_document(db, clock, gateway.provider(), org, doc_id)
    assert settle_unknown(db, clock, gateway.provider()) == 0
    clock.advance(timedelta(minutes=5))
    assert settle_unknown(db, clock, gateway.provider()) == 1
    doc = _doc(db, doc_id)
    assert doc["status"] == "paid"
    _clean(db)


def test_authorise_then_partial_capture_then_refunds(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    org, _cid, doc_id = _invoice(db, clock, gateway, cards.SUCCESS)
    update_payment_settings(db, clock, org, capture_mode="authorize")
    outcome = charge_document(db, clock, gateway.provider(), org, doc_id)
    assert outcome.status is AttemptStatus.AUTHORIZED
    total = int(_doc(db, doc_id)["total_minor"])  # type: ignore[call-overload]
    capture_payment(db, clock, gateway.provider(), org, outcome.attempt_id, amount_minor=total - 100)
    doc = _doc(db, doc_id)
    assert doc["status"] == "open"
    assert doc["amount_paid_minor"] == total - 100
    with pytest.raises(InvalidFieldError, match="exceeds"):
        refund_payment(db, clock, gateway.provider(), org, doc_id, amount_minor=total)
    refund_payment(db, clock, gateway.provider(), org, doc_id, amount_minor=500, reason="goodwill")
    doc = _doc(db, doc_id)
    assert doc["amount_refunded_minor"] == 500
    assert doc["amount_credited_minor"] == 500
    refund_payment(db, clock, gateway.provider(), org, doc_id)
    doc = _doc(db, doc_id)
    assert doc["amount_refunded_minor"] == total - 100
    _clean(db)


def test_a_card_token_is_one_customers_card(db: Database, clock: FixedClock, gateway: GatewayProcess) -> None:
    """Attaching the same token again returns the same method; after a detach it is the same record in
    use again; another customer, in this organisation or another, is refused, and the database refuses
    it too (a unique constraint), whatever the service checks."""
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from fiscus.services.payments.methods import detach_payment_method

    tenant = make_tenant(db, clock, "bg")
    other_tenant = make_tenant(db, clock, "bg", slug="other-shop")
    first, second = make_customer(db, clock, tenant, 0), make_customer(db, clock, tenant, 1)
    stranger = make_customer(db, clock, other_tenant, 0)
    token = gateway.tokenise(cards.SUCCESS)
    provider = gateway.provider()
    method = add_card(db, clock, provider, tenant.org_id, first, token=token)
    assert add_card(db, clock, provider, tenant.org_id, first, token=token) == method
    for org, customer in ((tenant.org_id, second), (other_tenant.org_id, stranger)):
        with pytest.raises(InvalidFieldError) as refused:
            add_card(db, clock, provider, org, customer, token=token)
        assert refused.value.field == "token"

    detach_payment_method(db, clock, tenant.org_id, method)
    clock.advance(timedelta(minutes=1))
    assert add_card(db, clock, provider, tenant.org_id, first, token=token, make_default=True) == method
    with db.read() as conn:
        row = conn.execute(select(t.payment_methods).where(t.payment_methods.c.id == method)).mappings().one()
        default = conn.execute(
            select(t.customers.c.default_payment_method_id).where(t.customers.c.id == first)
        ).scalar_one()
        actions = conn.execute(
            select(t.audit_events.c.action)
            .where(t.audit_events.c.entity_type == "payment_method", t.audit_events.c.entity_id == method)
            .order_by(t.audit_events.c.id)
        ).scalars()
        assert (row["status"], default) == ("active", method)
        assert list(actions) == ["attached", "detached", "reattached"]

    with pytest.raises(IntegrityError), db.write() as conn:
        values = {k: v for k, v in row.items() if k != "id"}
        conn.execute(insert(t.payment_methods).values({**values, "organization_id": other_tenant.org_id}))
