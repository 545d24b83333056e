"""Billing stories on both databases, driven by a fixed clock."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Table, func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.domain.errors import InvalidFieldError, InvalidStateError, NotFoundError, ValidationError
from fiscus.domain.tax import VatCheck
from fiscus.services.billing_run import run_billing
from fiscus.services.customers import CustomerSpec, create_customer
from fiscus.services.documents import (
    convert_proforma,
    issue_document,
    mark_paid,
    mark_uncollectible,
    void_document,
)
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.reconcile import reconcile
from fiscus.services.subscriptions import (
    ItemSpec,
    cancel_subscription,
    change_subscription,
    create_subscription,
)
from tests.builders import make_customer, make_tenant


def docs(db: Database, **where: object) -> list[dict[str, Any]]:
    query = select(t.documents).order_by(t.documents.c.id)
    for k, v in where.items():
        query = query.where(t.documents.c[k] == v)
    with db.read() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def count(db: Database, table: Table) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def assert_clean(db: Database) -> None:
    report = reconcile(db)
    assert {k: [v.row for v in rows] for k, rows in report.items() if rows} == {}


def test_monthly_subscription_bills_each_period_once(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    customer = make_customer(db, clock, tenant)
    sub = create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, "2")])
    first = run_billing(db, clock)
    assert (first.documents, first.subscriptions) == (1, 1)
    assert run_billing(db, clock).documents == 0  # same instant: nothing new
    clock.advance(timedelta(days=95))
    later = run_billing(db, clock)
    assert later.documents == 3
    rows = docs(db, subscription_id=sub)
    assert [r["number"] for r in rows] == ["0000001590", "0000001591", "0000001592", "0000001593"]
    starts = [r["period_start"] for r in rows]
    assert starts == sorted(starts)
    for a, b in itertools.pairwise(rows):
        assert a["period_end"] == b["period_start"]
    assert all(r["total_minor"] == 3600 for r in rows)  # 2 × 15.00 + 20% VAT
    assert count(db, t.subscription_periods) == 4
    assert_clean(db)


def test_month_end_anchor_clamps_in_the_org_time_zone(db: Database) -> None:
    clock = FixedClock(datetime(2024, 1, 30, 22, 0, tzinfo=UTC))  # Jan 31 00:00 in Sofia
    tenant = make_tenant(db, clock, "bg")
    customer = make_customer(db, clock, tenant)
    create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)])
    clock.set(datetime(2024, 5, 1, tzinfo=UTC))
    run_billing(db, clock)
    local = [r["period_start"].astimezone(ZoneInfo("Europe/Sofia")) for r in docs(db)]
    assert [(d.month, d.day, d.hour) for d in local] == [(1, 31, 0), (2, 29, 0), (3, 31, 0), (4, 30, 0)]


def test_trial_produces_no_document_until_it_ends(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "us")
    customer = make_customer(db, clock, tenant)
    sub = create_subscription(
        db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)], trial_days=14
    )
    assert run_billing(db, clock).documents == 0
    clock.advance(timedelta(days=13))
    assert run_billing(db, clock).documents == 0
    clock.advance(timedelta(days=1))
    assert run_billing(db, clock).documents == 1
    [doc] = docs(db, subscription_id=sub)
    assert doc["period_start"] == datetime(2026, 1, 29, 9, 30, tzinfo=UTC)
    with db.read() as conn:
        status = conn.execute(
            select(t.subscriptions.c.status).where(t.subscriptions.c.id == sub)
        ).scalar_one()
    assert status == "active"


def test_cancel_at_period_end_stops_after_the_paid_period(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "kz")
    customer = make_customer(db, clock, tenant)
    sub = create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)])
    run_billing(db, clock)
    clock.advance(timedelta(days=10))
    cancel_subscription(db, clock, tenant.org_id, sub, at_period_end=True)
    clock.advance(timedelta(days=90))
    assert run_billing(db, clock).documents == 0
    with db.read() as conn:
        row = conn.execute(select(t.subscriptions).where(t.subscriptions.c.id == sub)).mappings().one()
    assert row["status"] == "ended"
    with pytest.raises(InvalidStateError):
        cancel_subscription(db, clock, tenant.org_id, sub, at_period_end=False)


def test_cancel_now_bills_nothing_more(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "kz")
    customer = make_customer(db, clock, tenant)
    sub = create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)])
    cancel_subscription(db, clock, tenant.org_id, sub, at_period_end=False)
    clock.advance(timedelta(days=60))
    assert run_billing(db, clock).documents == 0


def test_plan_change_prorates_exactly_onto_the_next_document(db: Database) -> None:
    clock = FixedClock(datetime(2026, 3, 1, 10, tzinfo=UTC))  # KZ: UTC+5, no DST
    tenant = make_tenant(db, clock, "kz")
    customer = make_customer(db, clock, tenant)
    sub = create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)])
    run_billing(db, clock)
    clock.advance(timedelta(days=10))  # 21 of 31 days unused
    preview = change_subscription(
        db, clock, tenant.org_id, sub, [ItemSpec(tenant.monthly_big, 2)], preview=True
    )
    assert preview.computed is not None
    assert count(db, t.pending_items) == 0  # preview writes nothing
    result = change_subscription(db, clock, tenant.org_id, sub, [ItemSpec(tenant.monthly_big, 2)])
    assert result.computed == preview.computed
    # credit 4990 × 21/31 = 3380.32…; charge 2 × 1234.565 × 21/31 = 1672.63…
    assert [line.amount_minor for line in result.computed.lines] == [-338032, 167264]
    clock.set(datetime(2026, 4, 1, 10, tzinfo=UTC))
    run_billing(db, clock)
    latest = docs(db, subscription_id=sub)[-1]
    with db.read() as conn:
        lines = conn.execute(
            select(t.document_lines.c.kind, t.document_lines.c.amount_minor)
            .where(t.document_lines.c.document_id == latest["id"])
            .order_by(t.document_lines.c.position)
        ).all()
    assert [(k, a) for k, a in lines] == [
        ("subscription", 246913),
        ("proration", -338032),
        ("proration", 167264),
    ]
    assert latest["subtotal_minor"] == 246913 - 338032 + 167264
    assert_clean(db)


def test_orders_become_proformas_then_final_invoices_in_their_own_series(
    db: Database, clock: FixedClock
) -> None:
    tenant = make_tenant(db, clock, "bg", order_document=DocumentType.PROFORMA)
    customer = make_customer(db, clock, tenant)
    o1 = create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, 3)])
    o2 = create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, 1)])
    assert run_billing(db, clock).orders == 2
    proformas = docs(db, type="proforma")
    assert [p["number"] for p in proformas] == ["0000007390", "0000007391"]
    invoice_id = mark_paid(db, clock, tenant.org_id, proformas[0]["id"])
    invoice = docs(db, id=invoice_id)[0]
    assert invoice["type"] == "invoice"
    assert invoice["status"] == "paid"
    assert invoice["number"] == "0000001590"
    assert invoice["converted_from_id"] == proformas[0]["id"]
    assert invoice["total_minor"] == proformas[0]["total_minor"] == 3596
    with db.read() as conn:
        links = conn.execute(
            select(t.document_orders.c.document_id, t.document_orders.c.order_id).order_by("document_id")
        ).all()
    assert (invoice_id, o1) in [tuple(x) for x in links]
    assert (proformas[1]["id"], o2) in [tuple(x) for x in links]
    assert docs(db, id=proformas[0]["id"])[0]["status"] == "converted"
    with pytest.raises(InvalidStateError):
        convert_proforma(db, clock, tenant.org_id, proformas[0]["id"])
    void_document(db, clock, tenant.org_id, proformas[1]["id"])
    with pytest.raises(InvalidStateError):
        mark_paid(db, clock, tenant.org_id, proformas[1]["id"])
    assert_clean(db)


def test_drafts_get_numbers_only_at_issue(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "us", auto_issue=False)
    customer = make_customer(db, clock, tenant)
    order = create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, 2)])
    doc_id = bill_order_now(db, clock, tenant.org_id, order)
    draft = docs(db, id=doc_id)[0]
    assert (draft["status"], draft["number"], draft["sequence"]) == ("draft", None, None)
    number = issue_document(db, clock, tenant.org_id, doc_id)
    assert number == "0000001590"
    mark_uncollectible(db, clock, tenant.org_id, doc_id)
    mark_paid(db, clock, tenant.org_id, doc_id)
    with db.read() as conn:
        actions = (
            conn.execute(
                select(t.audit_events.c.action)
                .where(t.audit_events.c.entity_type == "document")
                .order_by(t.audit_events.c.id)
            )
            .scalars()
            .all()
        )
        events = conn.execute(select(t.outbox_events.c.type).order_by(t.outbox_events.c.id)).scalars().all()
    assert actions == ["created", "issue", "mark_uncollectible", "external_payment", "pay"]
    assert events[-3:] == ["invoice.issued", "invoice.marked_uncollectible", "invoice.paid"]
    with pytest.raises(InvalidStateError):
        void_document(db, clock, tenant.org_id, doc_id)


def test_reverse_charge_and_outside_eu_are_stated_on_the_document(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    de = make_customer(db, clock, tenant, 1, country="DE", vat_id="DE136695976")
    us = make_customer(db, clock, tenant, 2, country="US", currency="EUR")
    for c in (de, us):
        create_subscription(db, clock, tenant.org_id, c, [ItemSpec(tenant.monthly, 1)])
    run_billing(db, clock)
    by_customer = {r["customer_id"]: r for r in docs(db)}
    assert by_customer[de]["tax_minor"] == 0
    assert "Art. 196" in by_customer[de]["notes"][0]
    assert by_customer[us]["tax_minor"] == 0
    assert "outside the EU" in by_customer[us]["notes"][0]
    with db.read() as conn:
        treatments = conn.execute(select(t.document_taxes.c.document_id, t.document_taxes.c.treatment)).all()
    assert {tr for _d, tr in treatments} == {"reverse_charge", "not_subject"}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"currency": "XYZ"}, "currency"),
        ({"vat_id": "DE000000000", "country": "DE"}, "vat_id"),
        ({"country": "ZZ"}, "country"),
        ({"email": "not-an-email"}, "email"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ],
)
def test_bad_customer_input_names_the_field_and_writes_nothing(
    db: Database, clock: FixedClock, spec: dict[str, str], field: str
) -> None:
    tenant = make_tenant(db, clock, "bg")
    before = count(db, t.customers), count(db, t.audit_events)
    base = {"name": "X", "email": "x@example.com", "country": "BG"}
    with pytest.raises(InvalidFieldError) as exc:
        create_customer(db, clock, tenant.org_id, CustomerSpec(**{**base, **spec}))
    assert exc.value.field == field
    assert (count(db, t.customers), count(db, t.audit_events)) == before


def test_bad_subscription_and_order_input_writes_nothing(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    other = make_tenant(db, clock, "us", slug="other")
    customer = make_customer(db, clock, tenant)
    cases: list[tuple[Callable[[], object], str]] = [
        (
            lambda: create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, "-1")]),
            "items.0.quantity",
        ),
        (
            lambda: create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(other.monthly, 1)]),
            "items.0.price_id",
        ),  # another tenant's price is unknown here
        (
            lambda: create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, 1)]),
            "items.0.price_id",
        ),
        (
            lambda: create_subscription(db, clock, tenant.org_id, 999_999, [ItemSpec(tenant.monthly, 1)]),
            "customer_id",
        ),
        (
            lambda: create_subscription(
                db,
                clock,
                tenant.org_id,
                customer,
                [ItemSpec(tenant.monthly, 1)],
                start_at=clock.now(),
                trial_end=clock.now() - timedelta(days=1),
            ),
            "trial_end",
        ),
        (
            lambda: create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)]),
            "items.0.price_id",
        ),
        (lambda: create_order(db, clock, tenant.org_id, customer, []), "items"),
        (
            lambda: create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, "1e400")]),
            "items.0.quantity",
        ),
    ]
    tables = (t.subscriptions, t.subscription_items, t.orders, t.order_items, t.audit_events, t.outbox_events)
    before = [count(db, x) for x in tables]
    for call, field in cases:
        with pytest.raises((ValidationError, NotFoundError)) as exc:
            call()
        error = exc.value
        assert isinstance(error, NotFoundError | ValidationError)
        named = error.field if isinstance(error, NotFoundError) else error.problems[0].field
        assert named == field  # unknown customers and prices are NotFoundError naming the field (404)
    assert [count(db, x) for x in tables] == before


def test_foreign_ids_are_not_found(db: Database, clock: FixedClock) -> None:
    a = make_tenant(db, clock, "bg")
    b = make_tenant(db, clock, "us", slug="b")
    customer = make_customer(db, clock, a)
    sub = create_subscription(db, clock, a.org_id, customer, [ItemSpec(a.monthly, 1)])
    run_billing(db, clock)
    doc_id = docs(db)[0]["id"]
    with pytest.raises(NotFoundError):
        void_document(db, clock, b.org_id, doc_id)
    with pytest.raises(NotFoundError):
        cancel_subscription(db, clock, b.org_id, sub, at_period_end=False)
    assert docs(db, id=doc_id)[0]["status"] == "open"


def test_issued_documents_and_audit_rows_are_protected_by_the_database(
    db: Database, clock: FixedClock
) -> None:
    tenant = make_tenant(db, clock, "bg")
    customer = make_customer(db, clock, tenant)
    create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)])
    run_billing(db, clock)
    with pytest.raises((IntegrityError, DBAPIError)), db.write() as conn:
        conn.execute(update(t.audit_events).values(actor="tampered"))
    with pytest.raises((IntegrityError, DBAPIError)), db.write() as conn:
        conn.execute(text("DELETE FROM audit_events"))
    with pytest.raises(IntegrityError), db.write() as conn:  # a second document for a billed period
        period = conn.execute(select(t.subscription_periods)).mappings().first()
        assert period is not None
        conn.execute(
            t.subscription_periods.insert().values(
                organization_id=period["organization_id"],
                subscription_id=period["subscription_id"],
                period_start=period["period_start"],
                period_end=period["period_end"],
                document_id=period["document_id"],
                created_at=clock.now(),
            )
        )
    with pytest.raises(IntegrityError), db.write() as conn:  # two documents, one number
        doc = conn.execute(select(t.documents)).mappings().first()
        assert doc is not None
        row = {k: v for k, v in doc.items() if k != "id"}
        conn.execute(t.documents.insert().values(**row))
    assert_clean(db)


@pytest.mark.parametrize("kind", ["jp", "kw", "kz", "bg"])
def test_money_invariants_hold_on_every_stored_document(db: Database, clock: FixedClock, kind: str) -> None:
    tenant = make_tenant(db, clock, kind)
    for n in range(6):
        c = make_customer(db, clock, tenant, n)
        create_subscription(
            db,
            clock,
            tenant.org_id,
            c,
            [ItemSpec(tenant.monthly, str(n + 1)), ItemSpec(tenant.monthly_big, "0.5")],
        )
        create_order(db, clock, tenant.org_id, c, [ItemSpec(tenant.one_off, "1.25")])
    clock.advance(timedelta(days=40))
    run_billing(db, clock)
    with db.read() as conn:
        rows = conn.execute(select(t.documents)).mappings().all()
        for doc in rows:
            lines = conn.execute(
                select(t.document_lines.c.amount_minor, t.document_lines.c.tax_minor).where(
                    t.document_lines.c.document_id == doc["id"]
                )
            ).all()
            assert doc["total_minor"] == doc["subtotal_minor"] + doc["tax_minor"]
            assert doc["total_minor"] == sum(a for a, _ in lines) + sum(x for _, x in lines)
    assert len(rows) == 18
    assert_clean(db)


def test_unit_prices_and_quantities_survive_storage_exactly(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "kw")
    customer = make_customer(db, clock, tenant)
    create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, "3.333333333333")])
    run_billing(db, clock)
    with db.read() as conn:
        q, p, a = conn.execute(
            select(
                t.document_lines.c.quantity, t.document_lines.c.unit_price, t.document_lines.c.amount_minor
            )
        ).one()
    assert (q, p) == (Decimal("3.333333333333"), Decimal("1.001"))
    assert a == 3337  # 3.336666… KWD → 3.337


class FakeRegistry:
    """Stands in for VIES: the suite never calls the real service."""

    def __init__(self, registered: set[str], reachable: bool = True) -> None:
        self.registered, self.reachable = registered, reachable
        self.asked: list[str] = []

    def check(self, vat_id: str) -> VatCheck:
        self.asked.append(vat_id)
        if not self.reachable:
            return VatCheck(valid=None, detail="timeout")
        return VatCheck(valid=vat_id in self.registered)


def test_vat_registry_port_refuses_unregistered_numbers(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    spec = CustomerSpec(name="GmbH", email="a@b.de", country="DE", vat_id="DE 136 695 976")
    with pytest.raises(InvalidFieldError) as exc:
        create_customer(db, clock, tenant.org_id, spec, registry=FakeRegistry(set()))
    assert exc.value.field == "vat_id"
    registry = FakeRegistry({"DE136695976"})
    assert create_customer(db, clock, tenant.org_id, spec, registry=registry)
    assert registry.asked == ["DE136695976"]
    assert create_customer(db, clock, tenant.org_id, spec, registry=FakeRegistry(set(), reachable=False))
