"""Coupons, promotion codes and redemptions through `/api/v1`: created, listed, redeemed, and refused
with a 409 problem whose `reason` names why (issue 17)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.api_support import api_client, auth
from tests.builders import make_customer, make_tenant


def test_coupons_codes_and_redemptions(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg", slug="disc")
    h = auth(create_api_key(db, clock, tenant.org_id).secret)
    alice, bob = make_customer(db, clock, tenant, 1), make_customer(db, clock, tenant, 2)
    subs = [
        create_subscription(db, clock, tenant.org_id, cust, [ItemSpec(tenant.monthly)])
        for cust in (alice, bob)
    ]
    other = create_subscription(db, clock, tenant.org_id, alice, [ItemSpec(tenant.monthly_big)])
    with api_client(db, clock) as api:

        def post(path: str, body: dict[str, Any]) -> Any:
            return api.post(f"/api/v1{path}", json=body, headers=h)

        r = post(
            "/coupons",
            {"name": "Launch", "percent_off": "20", "duration": "repeating", "duration_periods": 3},
        )
        assert r.status_code == 201, r.text
        launch: dict[str, Any] = r.json()
        assert launch["percent_off"] == "20"
        assert launch["times_redeemed"] == 0
        assert launch["valid"]
        fixed = post("/coupons", {"name": "Five off", "amounts_off": {"EUR": "5.00", "JPY": "500"}}).json()
        assert fixed["amounts_off"] == {"EUR": "5.00", "JPY": "500"}
        # malformed: both kinds, a float amount, too many decimals
        assert (
            post("/coupons", {"name": "x", "percent_off": "5", "amounts_off": {"EUR": "1"}}).status_code
            == 422
        )
        assert post("/coupons", {"name": "x", "amounts_off": {"EUR": 1.5}}).status_code == 422
        assert post("/coupons", {"name": "x", "amounts_off": {"EUR": "1.005"}}).status_code == 422
        scoped = post(
            "/coupons", {"name": "Big only", "percent_off": "10", "price_ids": [tenant.monthly_big]}
        )
        assert scoped.status_code == 201

        code = post("/promotion_codes", {"coupon_id": launch["id"], "code": "launch20", "max_redemptions": 1})
        assert code.status_code == 201
        assert code.json()["code"] == "LAUNCH20"
        assert post("/promotion_codes", {"coupon_id": launch["id"], "code": "Launch20"}).status_code == 409

        r = post(f"/subscriptions/{subs[0]}/discounts", {"promotion_code": "Launch20"})
        assert r.status_code == 201, r.text
        assert r.json()["subscription_id"] == subs[0]
        assert r.json()["status"] == "active"
        # the code's maximum is reached: the second customer is refused, with the reason named
        r = post(f"/subscriptions/{subs[1]}/discounts", {"promotion_code": "LAUNCH20"})
        assert r.status_code == 409, r.text
        assert r.json()["reason"] == "code_max_redemptions"
        assert r.json()["errors"][0]["field"] == "promotion_code"
        # the same coupon twice on one subscription
        r = post(f"/subscriptions/{subs[0]}/discounts", {"coupon": launch["id"]})
        assert r.json()["reason"] == "already_redeemed"
        # a coupon on prices the subscription does not have
        r = post(f"/subscriptions/{subs[1]}/discounts", {"coupon": scoped.json()["id"]})
        assert r.json()["reason"] == "nothing_covered"
        assert post(f"/subscriptions/{other}/discounts", {"coupon": scoped.json()["id"]}).status_code == 201

        cases: list[tuple[dict[str, Any], str]] = [
            ({"code": "BOBONLY", "customer_id": bob}, "wrong_customer"),
            (
                {"code": "SOON", "expires_at": (clock.now() - timedelta(seconds=1)).isoformat()},
                "code_expired",
            ),
            ({"code": "BIG", "minimum_amount": "100.00", "minimum_currency": "EUR"}, "below_minimum_amount"),
        ]
        for body, reason in cases:
            assert post("/promotion_codes", {"coupon_id": fixed["id"], **body}).status_code == 201
            r = post(f"/customers/{alice}/discounts", {"promotion_code": body["code"]})
            assert (r.status_code, r.json().get("reason")) == (409, reason), r.text
        unknown = post(f"/customers/{alice}/discounts", {"promotion_code": "NOPE"})
        assert unknown.status_code == 404, unknown.text  # an unknown referenced id or code: 404
        assert unknown.json()["errors"][0]["pointer"] == "/body/promotion_code"
        assert post(f"/subscriptions/{subs[0]}/discounts", {"promotion_code": "NOPE"}).status_code == 404
        assert post(f"/customers/{alice}/discounts", {"promotion_code": "X", "coupon": 1}).status_code == 422

        listed = api.get(f"/api/v1/discounts?subscription_id={subs[0]}", headers=h).json()["data"]
        assert [d["subscription_id"] for d in listed] == [subs[0]]
        assert api.get(f"/api/v1/coupons/{launch['id']}", headers=h).json()["times_redeemed"] == 1
        removed = api.delete(f"/api/v1/discounts/{listed[0]['id']}", headers=h)
        assert removed.status_code == 200
        assert removed.json()["status"] == "removed"
        assert api.delete(f"/api/v1/discounts/{listed[0]['id']}", headers=h).status_code == 409

        # no stacking: a second discount on the same target is refused
        assert post("/discount_settings", {"stacking": "none"}).json()["stacking"] == "none"
        assert post(f"/subscriptions/{subs[1]}/discounts", {"coupon": fixed["id"]}).status_code == 201
        r = post(f"/subscriptions/{subs[1]}/discounts", {"coupon": launch["id"]})
        assert r.json()["reason"] == "stacking_not_allowed"


def test_credit_grants_and_wallets(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "jp", slug="wallets")
    h = auth(create_api_key(db, clock, tenant.org_id).secret)
    customer = make_customer(db, clock, tenant, 1)
    with api_client(db, clock) as api:
        url = f"/api/v1/customers/{customer}"
        body = {"currency": "JPY", "amount": "1000", "low_balance": "600", "priority": 1}
        r = api.post(f"{url}/credit_grants", json=body, headers=h)
        assert r.status_code == 201, r.text
        [wallet] = r.json()["data"]
        assert (wallet["balance"], wallet["low_balance"]) == ("1000", "600")
        assert [(e["kind"], e["amount"]) for e in wallet["ledger"]] == [("granted", "1000")]
        assert api.post(f"{url}/credit_grants", json={**body, "amount": 5.0}, headers=h).status_code == 422
        # Well-formed fields the stored customer or the clock refuse: 409 naming the field.
        past = (clock.now() - timedelta(days=1)).isoformat()
        for bad, field in (({"currency": "EUR"}, "currency"), ({"expires_at": past}, "expires_at")):
            r = api.post(f"{url}/credit_grants", json={**body, **bad}, headers=h)
            assert (r.status_code, r.json()["code"]) == (409, "field_conflict"), r.text
            assert r.json()["errors"][0]["pointer"] == f"/body/{field}"
        doc = bill_order_now(
            db,
            clock,
            tenant.org_id,
            create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off)]),
        )
        [wallet] = api.get(f"{url}/wallets", headers=h).json()["data"]
        assert wallet["balance"] == "500"  # the 500 JPY one-off, before tax
        assert [(e["kind"], e["amount"], e["document_id"]) for e in wallet["ledger"]][1] == (
            "consumed",
            "-500",
            doc,
        )
        native = api.get(f"/api/v1/documents/{doc}?expand[]=lines", headers=h).json()
        assert (native["discount"], native["subtotal"], native["total"]) == ("500", "0", "0")
        assert native["lines"][0]["discounts"][0]["reason"] == "Promotional credit"
    with db.read() as conn:
        events = set(conn.execute(select(t.outbox_events.c.type)).scalars())
    assert {"credits.granted", "credits.consumed", "credits.low_balance"} <= events
