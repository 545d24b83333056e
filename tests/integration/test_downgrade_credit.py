"""A downgrade whose unused time is worth more than the next charge never makes a negative invoice: the
credit becomes a credit note on the invoice that billed the credited period (Lago's way), kept as the
customer's balance when that invoice was paid (and spent on the new invoice at once), or taken off
what is still due when it was not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.services.billing_run import run_billing
from fiscus.services.documents import mark_paid
from fiscus.services.reconcile import reconcile
from fiscus.services.subscriptions import ItemSpec, change_subscription, create_subscription
from tests.builders import make_customer, make_tenant


def _documents(db: Database, org_id: int) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [
            dict(r)
            for r in conn.execute(
                select(t.documents).where(t.documents.c.organization_id == org_id).order_by(t.documents.c.id)
            ).mappings()
        ]


def _downgrade(db: Database, clock: FixedClock, *, pay_first: bool, **tenant: Any) -> tuple[int, int]:
    """KZT: two seats of the 4,990 plan for a day, then one seat of the 1,234.565 plan: the credit for
    30 unused days (9,658 + 12 % VAT) is far more than the next month's charge."""
    clock.set(datetime(2026, 3, 1, 9, tzinfo=UTC))
    org = make_tenant(db, clock, "kz", **tenant)
    customer = make_customer(db, clock, org)
    sub = create_subscription(db, clock, org.org_id, customer, [ItemSpec(org.monthly, 2)])
    run_billing(db, clock)
    [first] = _documents(db, org.org_id)
    if pay_first:
        mark_paid(db, clock, org.org_id, first["id"])
    clock.advance(timedelta(days=1))
    change = change_subscription(db, clock, org.org_id, sub, [ItemSpec(org.monthly_big, 1)])
    assert change.computed is not None
    assert change.computed.total_minor < 0
    clock.set(datetime(2026, 4, 1, 10, tzinfo=UTC))
    run_billing(db, clock)
    return org.org_id, first["id"]


def _clean(db: Database) -> None:
    bad = {k: [v.row for v in rows] for k, rows in reconcile(db).items() if rows}
    assert bad == {}


def _pending(db: Database) -> list[tuple[int, int | None]]:
    with db.read() as conn:
        return [
            (r.sign, r.document_id)
            for r in conn.execute(select(t.pending_items.c.sign, t.pending_items.c.document_id))
        ]


def test_paid_period_credit_becomes_the_customers_balance_and_pays_the_new_invoice(
    db: Database, clock: FixedClock
) -> None:
    org_id, first_id = _downgrade(db, clock, pay_first=True)
    first, note, second = _documents(db, org_id)
    assert (note["type"], note["corrected_document_id"]) == ("credit_note", first_id)
    assert note["credit_disposition"] == "customer_credit"
    assert (second["type"], second["status"]) == ("invoice", "paid")
    assert second["total_minor"] > 0
    # 9,980 × 30/31 unused = 9,658.06 + 12 % VAT
    assert note["total_minor"] == 965806 + 115897
    assert second["amount_credited_minor"] == second["total_minor"]  # paid from the balance
    with db.read() as conn:
        balance = conn.execute(select(func.sum(t.customer_credits.c.amount_minor))).scalar_one()
        kinds = conn.execute(
            select(t.document_lines.c.kind, t.document_lines.c.amount_minor)
            .where(t.document_lines.c.document_id == second["id"])
            .order_by(t.document_lines.c.position)
        ).all()
    assert balance == note["total_minor"] - second["total_minor"]
    assert [k for k, _a in kinds] == ["subscription", "proration"]
    assert all(a > 0 for _k, a in kinds)
    assert sorted(_pending(db)) == [(-1, note["id"]), (1, second["id"])]
    assert first["status"] == "paid"
    _clean(db)


def test_unpaid_period_credit_comes_off_what_is_still_due(db: Database, clock: FixedClock) -> None:
    org_id, first_id = _downgrade(db, clock, pay_first=False)
    first, note, second = _documents(db, org_id)
    assert (note["corrected_document_id"], note["credit_disposition"]) == (first_id, "reduce_due")
    assert first["amount_credited_minor"] == note["total_minor"]
    assert (second["status"], second["amount_credited_minor"]) == ("open", 0)
    assert second["total_minor"] > 0
    _clean(db)


def test_without_an_invoice_to_credit_the_lines_stay_on_the_document(db: Database, clock: FixedClock) -> None:
    """An unpaid proforma is not a tax document and cannot be credited: the credit stays on the next
    proforma as before (negative, nothing due)."""
    org_id, _first = _downgrade(db, clock, pay_first=False, subscription_document=DocumentType.PROFORMA)
    first, second = _documents(db, org_id)
    assert (first["type"], second["type"]) == ("proforma", "proforma")
    assert second["total_minor"] < 0
    assert sorted(_pending(db)) == [(-1, second["id"]), (1, second["id"])]
    _clean(db)


def test_a_paid_proforma_is_credited_on_the_invoice_it_became(db: Database, clock: FixedClock) -> None:
    org_id, proforma_id = _downgrade(db, clock, pay_first=True, subscription_document=DocumentType.PROFORMA)
    _proforma, invoice, note, second = _documents(db, org_id)
    assert (invoice["type"], invoice["converted_from_id"]) == ("invoice", proforma_id)
    assert (note["corrected_document_id"], note["credit_disposition"]) == (invoice["id"], "customer_credit")
    assert (second["type"], second["status"]) == ("proforma", "open")
    assert second["total_minor"] > 0
    with db.read() as conn:
        balance = conn.execute(select(func.sum(t.customer_credits.c.amount_minor))).scalar_one()
    assert balance == note["total_minor"]  # a proforma is not paid from credit; the balance waits
    _clean(db)
