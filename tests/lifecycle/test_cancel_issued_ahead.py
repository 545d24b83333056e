"""Cancelling a subscription now after the billing run issued a document for a later period: that
document is voided or credited per the organisation's `cancel_issued_ahead`, in the response and the
audit trail; the current period's document is left alone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from fiscus.services.billing_run import run_billing
from fiscus.services.documents import mark_paid
from fiscus.services.org_settings import update_settings
from fiscus.services.subscriptions import ItemSpec, cancel_subscription, create_subscription
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
