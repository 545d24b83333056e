"""Cancelling a subscription now after the billing run issued a document for a later period: that
document is voided or credited per the organisation's `cancel_issued_ahead`, in the response and the
audit trail; the current period's document is left alone."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from fiscus.services.billing_run import run_billing
from fiscus.services.discounts import CouponSpec, create_coupon, redeem
from fiscus.services.documents import mark_paid
from fiscus.services.org_settings import update_settings
from fiscus.services.reconcile import reconcile
from fiscus.services.subscriptions import ItemSpec, cancel_subscription, create_subscription
from fiscus.services.wallets import grant_credits
from tests.api_support import api_client, auth
from tests.builders import Tenant, make_customer, make_tenant


def _billed_ahead(db: Database, clock: FixedClock) -> tuple[Tenant, int, list[dict[str, Any]]]:
    """A monthly subscription billed 40 days ahead: the current period's invoice and the next one's."""
    tenant = make_tenant(db, clock, "bg")
    cid = make_customer(db, clock, tenant)
    sid = create_subscription(db, clock, tenant.org_id, cid, [ItemSpec(tenant.monthly, 1)])
    run_billing(db, clock, at=clock.now() + timedelta(days=40))
    clock.set(clock.now() + timedelta(days=2))
    return tenant, sid, _docs(db, sid)


def _docs(db: Database, sid: int) -> list[dict[str, Any]]:
    d = t.documents.c
    with db.read() as conn:
        rows = conn.execute(select(t.documents).where(d.subscription_id == sid).order_by(d.id)).mappings()
        return [dict(r) for r in rows]


def _credit_notes(db: Database, invoice_id: int) -> list[dict[str, Any]]:
    d = t.documents.c
    with db.read() as conn:
        rows = conn.execute(select(t.documents).where(d.corrected_document_id == invoice_id)).mappings()
        return [dict(r) for r in rows]


def test_default_credits_the_invoice_issued_ahead_through_the_api(db: Database, clock: FixedClock) -> None:
    tenant, sid, (current, ahead) = _billed_ahead(db, clock)
    assert ahead["period_start"] > clock.now()
    key = create_api_key(db, clock, tenant.org_id).secret
    with api_client(db, clock) as client:
        r = client.post(
            f"/api/v1/subscriptions/{sid}/cancel", json={"at_period_end": False}, headers=auth(key)
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "canceled"
    [outcome] = body["issued_ahead"]
    assert outcome["document_id"] == ahead["id"]
    assert outcome["outcome"] == "credited"
    [note] = _credit_notes(db, ahead["id"])
    assert outcome["credit_note_ids"] == [note["id"]]
    assert abs(note["total_minor"]) == ahead["total_minor"]
    after = {d["id"]: d for d in _docs(db, sid)}
    assert after[current["id"]]["status"] == current["status"]  # the period being used stays billed
    assert after[ahead["id"]]["amount_credited_minor"] == ahead["total_minor"]
    with db.read() as conn:
        audit = conn.execute(
            select(t.audit_events.c.after).where(
                t.audit_events.c.entity_type == "subscription",
                t.audit_events.c.entity_id == sid,
                t.audit_events.c.action == "canceled",
            )
        ).scalar_one()
    assert audit["issued_ahead"] == [outcome]


def test_void_setting_voids_an_unpaid_invoice_issued_ahead(db: Database, clock: FixedClock) -> None:
    tenant, sid, (_current, ahead) = _billed_ahead(db, clock)
    update_settings(db, clock, tenant.org_id, {"cancel_issued_ahead": "void"})
    [outcome] = cancel_subscription(db, clock, tenant.org_id, sid, at_period_end=False)
    assert (outcome.document_id, outcome.outcome, outcome.credit_note_ids) == (ahead["id"], "voided", [])
    voided = next(d for d in _docs(db, sid) if d["id"] == ahead["id"])
    assert voided["status"] == "void"
    assert voided["number"] == ahead["number"]  # the legal number stays used, on a void document
    assert not _credit_notes(db, ahead["id"])


def test_void_setting_still_credits_a_paid_invoice(db: Database, clock: FixedClock) -> None:
    tenant, sid, (_current, ahead) = _billed_ahead(db, clock)
    update_settings(db, clock, tenant.org_id, {"cancel_issued_ahead": "void"})
    mark_paid(db, clock, tenant.org_id, ahead["id"])
    [outcome] = cancel_subscription(db, clock, tenant.org_id, sid, at_period_end=False)
    assert outcome.outcome == "credited"
    [note] = _credit_notes(db, ahead["id"])
    assert abs(note["total_minor"]) == ahead["total_minor"]
    with db.read() as conn:
        balance = (
            conn.execute(
                select(t.customer_credits.c.amount_minor).where(
                    t.customer_credits.c.customer_id == ahead["customer_id"]
                )
            )
            .scalars()
            .all()
        )
    assert sum(balance) == ahead["total_minor"]  # the money paid stays the customer's, as credit


def test_an_unknown_policy_is_refused(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    with pytest.raises(Exception, match="void or credit_note"):
        update_settings(db, clock, tenant.org_id, {"cancel_issued_ahead": "refund"})


def test_cancelling_discards_a_draft_issued_ahead_and_returns_what_it_took(
    db: Database, clock: FixedClock
) -> None:
    """An organisation that issues by hand keeps the run's documents as drafts: cancelling now discards
    the later period's draft (void, no number: the state machine's `discard`), audited, and gives back
    the promotional credit and the coupon period it had taken (issue 17)."""
    tenant = make_tenant(db, clock, "bg")
    update_settings(db, clock, tenant.org_id, {"auto_issue": False})
    cid = make_customer(db, clock, tenant)
    sid = create_subscription(db, clock, tenant.org_id, cid, [ItemSpec(tenant.monthly, 1)])
    coupon = create_coupon(
        db, clock, tenant.org_id, CouponSpec("Two months", "repeating", Decimal(10), {}, 2)
    )
    did = redeem(db, clock, tenant.org_id, subscription_id=sid, coupon_id=coupon)
    grant = grant_credits(db, clock, tenant.org_id, cid, currency_code="EUR", amount=Decimal("20.00"))
    run_billing(db, clock, at=clock.now() + timedelta(days=40))
    clock.set(clock.now() + timedelta(days=2))
    current, ahead = _docs(db, sid)
    assert (current["status"], ahead["status"]) == ("draft", "draft")
    [outcome] = cancel_subscription(db, clock, tenant.org_id, sid, at_period_end=False)
    assert (outcome.document_id, outcome.outcome, outcome.number) == (ahead["id"], "voided", None)
    after = {d["id"]: d for d in _docs(db, sid)}
    assert after[current["id"]]["status"] == "draft"  # the period being used stays billed
    discarded = after[ahead["id"]]
    assert (discarded["status"], discarded["number"], discarded["sequence"]) == ("void", None, None)
    with db.read() as conn:
        audit = (
            conn.execute(
                select(t.audit_events.c.action).where(
                    t.audit_events.c.entity_type == "document", t.audit_events.c.entity_id == ahead["id"]
                )
            )
            .scalars()
            .all()
        )
        ledger = conn.execute(
            select(td.wallet_ledger.c.kind, td.wallet_ledger.c.amount_minor).where(
                td.wallet_ledger.c.document_id == ahead["id"]
            )
        ).all()
        discount = conn.execute(select(td.discounts).where(td.discounts.c.id == did)).mappings().one()
        remaining = conn.execute(
            select(td.wallet_grants.c.remaining_minor).where(td.wallet_grants.c.id == grant)
        ).scalar_one()
    assert "discard" in audit
    taken = -sum(a for k, a in ledger if k == "consumed")
    assert taken > 0
    assert sorted(k for k, _a in ledger) == ["consumed", "restored"]
    assert sum(a for _k, a in ledger) == 0  # what the draft took came back
    assert remaining == 2000 - sum(  # only the current period's draft still holds its part
        -a for k, a in _ledger_of(db, current["id"]) if k == "consumed"
    )
    assert (discount["periods_applied"], discount["status"]) == (1, "active")  # its second period is back
    assert not any(reconcile(db).values())


def _ledger_of(db: Database, document_id: int) -> list[tuple[str, int]]:
    with db.read() as conn:
        lg = td.wallet_ledger.c
        return [
            (r.kind, r.amount_minor)
            for r in conn.execute(select(lg.kind, lg.amount_minor).where(lg.document_id == document_id))
        ]
