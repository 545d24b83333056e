"""Promotion codes entered by customers (issue 17), on both databases: refused unless the organisation
allows it; on an open proforma the document is reissued with the discount (its earlier discount and
promotional credit kept to the minor unit, everything reconciling); an issued invoice is refused with
its reason and nothing is written; in the portal the code reaches the subscription's next invoice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.discounts import DiscountRefusedError, Refusal
from fiscus.domain.documents import DocumentType
from fiscus.domain.errors import NotFoundError
from fiscus.services.access import create_api_key
from fiscus.services.billing_run import run_billing
from fiscus.services.discounts import CodeSpec, CouponSpec, create_coupon, create_promotion_code, redeem
from fiscus.services.org_settings import update_settings
from fiscus.services.promotion_checkout import redeem_for_subscription, redeem_on_document
from fiscus.services.reconcile import reconcile
from fiscus.services.subscriptions import ItemSpec, create_subscription
from fiscus.services.wallets import grant_credits
from tests.api_support import api_client, auth
from tests.builders import make_customer, make_tenant

START = datetime(2026, 3, 1, 9, tzinfo=UTC)


def _docs(db: Database, customer_id: int) -> list[dict[str, Any]]:
    d = t.documents.c
    with db.read() as conn:
        query = select(t.documents).where(d.customer_id == customer_id).order_by(d.id)
        return [dict(r) for r in conn.execute(query).mappings()]


def _times_redeemed(db: Database, code_id: int) -> int:
    with db.read() as conn:
        pc = td.promotion_codes.c
        return int(conn.execute(select(pc.times_redeemed).where(pc.id == code_id)).scalar_one())


def _clean(db: Database) -> None:
    report = reconcile(db)
    assert {k: [v.row for v in rows] for k, rows in report.items() if rows} == {}


def test_an_open_proforma_is_reissued_with_the_code(db: Database) -> None:
    clock = FixedClock(START)
    tenant = make_tenant(db, clock, "bg", subscription_document=DocumentType.PROFORMA)
    org = tenant.org_id
    cid = make_customer(db, clock, tenant, 1)
    sub = create_subscription(
        db, clock, org, cid, [ItemSpec(tenant.monthly), ItemSpec(tenant.monthly_big)], start_at=START
    )
    five = create_coupon(db, clock, org, CouponSpec("Five off", "forever", amounts_off={"EUR": Decimal(5)}))
    redeem(db, clock, org, subscription_id=sub, coupon_id=five)
    grant_credits(db, clock, org, cid, currency_code="EUR", amount=Decimal("1.00"))
    launch = create_coupon(db, clock, org, CouponSpec("Launch", "once", percent_off=Decimal(20)))
    code = create_promotion_code(db, clock, org, CodeSpec(launch, "Spring-20"))
    run_billing(db, clock, at=START)
    [proforma] = _docs(db, cid)
    assert (proforma["type"], proforma["status"], proforma["total_minor"]) == ("proforma", "open", 4740)

    with pytest.raises(DiscountRefusedError) as refused:  # the organisation has not allowed it yet
        redeem_on_document(db, clock, org, proforma["id"], "spring-20")
    assert refused.value.reason is Refusal.NOT_ALLOWED
    update_settings(db, clock, org, {"customer_promotion_codes": True})

    out = redeem_on_document(db, clock, org, proforma["id"], "spring-20")
    old, new = _docs(db, cid)
    assert (old["id"], old["status"], old["number"]) == (proforma["id"], "void", proforma["number"])
    assert (new["id"], new["type"], new["status"]) == (out.document_id, "proforma", "open")
    assert new["sequence"] == proforma["sequence"] + 1
    # 45.50 − 5.00 (kept as it was) − 1.00 credit = 39.50; 20 % of it = 7.90; 31.60 + 20 % VAT = 37.92
    assert (new["subtotal_minor"], new["tax_minor"], new["total_minor"]) == (3160, 632, 3792)
    with db.read() as conn:
        da, lg = td.document_allowances.c, td.wallet_ledger.c
        reasons = sorted(set(conn.execute(select(da.reason).where(da.document_id == new["id"])).scalars()))
        ledger = conn.execute(select(lg.kind, lg.amount_minor, lg.document_id).order_by(lg.id)).all()
        period_doc = conn.execute(
            select(t.subscription_periods.c.document_id).where(
                t.subscription_periods.c.subscription_id == sub
            )
        ).scalar_one()
        events = [r.type for r in conn.execute(select(t.outbox_events.c.type))]
    assert reasons == ["Five off", "Launch (20 % off)", "Promotional credit"]
    assert [(k, a) for k, a, _d in ledger] == [
        ("granted", 100),
        ("consumed", -100),
        ("restored", 100),
        ("consumed", -100),
    ]
    assert ledger[-1][2] == new["id"]
    assert period_doc == new["id"]
    assert events.count("coupon.redeemed") == 2
    assert _times_redeemed(db, code) == 1
    _clean(db)
    h = auth(create_api_key(db, clock, org).secret)
    with api_client(db, clock) as api:  # each points at the other
        shown = {i: api.get(f"/api/v1/documents/{i}", headers=h).json() for i in (old["id"], new["id"])}
        listed = api.get("/api/v1/documents", params={"type": "proforma"}, headers=h).json()["data"]
    assert (shown[old["id"]]["replaced_by_id"], shown[old["id"]]["replaces_id"]) == (new["id"], None)
    assert (shown[new["id"]]["replaced_by_id"], shown[new["id"]]["replaces_id"]) == (None, old["id"])
    assert [(x["id"], x["replaced_by_id"]) for x in listed] == [(new["id"], None), (old["id"], new["id"])]

    with pytest.raises(DiscountRefusedError) as refused:  # the replaced proforma is closed now
        redeem_on_document(db, clock, org, proforma["id"], "spring-20")
    assert refused.value.reason is Refusal.DOCUMENT_CLOSED


def test_an_issued_invoice_refuses_a_code_and_the_portal_reaches_the_next_invoice(db: Database) -> None:
    clock = FixedClock(START)
    tenant = make_tenant(db, clock, "bg")
    org = tenant.org_id
    update_settings(db, clock, org, {"customer_promotion_codes": True})
    cid, other = make_customer(db, clock, tenant, 1), make_customer(db, clock, tenant, 2)
    sub = create_subscription(db, clock, org, cid, [ItemSpec(tenant.monthly)], start_at=START)
    coupon = create_coupon(db, clock, org, CouponSpec("Ten", "once", percent_off=Decimal(10)))
    code = create_promotion_code(db, clock, org, CodeSpec(coupon, "TEN"))
    run_billing(db, clock, at=START)
    [invoice] = _docs(db, cid)
    with pytest.raises(DiscountRefusedError) as refused:
        redeem_on_document(db, clock, org, invoice["id"], "ten")
    assert refused.value.reason is Refusal.DOCUMENT_FINAL
    assert _times_redeemed(db, code) == 0
    assert _docs(db, cid) == [invoice]  # nothing written

    with pytest.raises(NotFoundError):  # another customer's subscription
        redeem_for_subscription(db, clock, org, other, sub, "ten")
    redeem_for_subscription(db, clock, org, cid, sub, "ten")
    run_billing(db, clock, at=START + timedelta(days=32))
    _first, second = _docs(db, cid)
    assert (second["subtotal_minor"], second["total_minor"]) == (1350, 1620)  # 15.00 − 10 % + 20 % VAT
    _clean(db)


def test_dates_expire_without_a_document_billed(db: Database) -> None:
    """A coupon's redeem-by date and a grant's expiry take effect when they pass, with their events,
    even for a customer nothing is billed to: the billing run (and so the worker) sweeps them first."""
    clock = FixedClock(START)
    tenant = make_tenant(db, clock, "bg")
    org = tenant.org_id
    cid = make_customer(db, clock, tenant, 1)  # no subscription: nothing is ever billed to them
    soon = START + timedelta(days=3)
    coupon = create_coupon(
        db, clock, org, CouponSpec("Early", "once", percent_off=Decimal(5), redeem_by=soon)
    )
    grant_credits(db, clock, org, cid, currency_code="EUR", amount=Decimal("7.00"), expires_at=soon)
    run_billing(db, clock)  # before the dates: nothing expires
    clock.set(soon + timedelta(minutes=1))
    with pytest.raises(DiscountRefusedError) as refused:  # redeem-by closes new redemptions at once
        redeem(db, clock, org, customer_id=cid, coupon_id=coupon)
    assert refused.value.reason is Refusal.COUPON_EXPIRED
    run_billing(db, clock)
    run_billing(db, clock)  # once only
    with db.read() as conn:
        events = [r.type for r in conn.execute(select(t.outbox_events.c.type))]
        balance = conn.execute(select(td.wallets.c.balance_minor)).scalar_one()
        kinds = [
            r.kind for r in conn.execute(select(td.wallet_ledger.c.kind).order_by(td.wallet_ledger.c.id))
        ]
    assert (events.count("coupon.expired"), events.count("credits.expired")) == (1, 1)
    assert (balance, kinds) == (0, ["granted", "expired"])
    _clean(db)
