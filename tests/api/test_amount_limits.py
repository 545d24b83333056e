"""Quantities and unit prices are bounded so that a line (quantity × unit price) can never overflow the
64-bit columns documents are stored in (issue 11: a fuzzed order of ~2⁶³ units broke a billing run).
The request alone out of bounds is a 422 naming the field, with the bound in the OpenAPI document; a
quantity that is too large only with the stored price it names is a 409 naming it; and the domain
refuses such a line wherever it is computed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import MAX_LINE_MINOR, line_amount_minor
from fiscus.domain.errors import FieldConflictError
from fiscus.domain.money import currency
from fiscus.services.access import create_api_key
from fiscus.services.catalog import create_price
from tests.api_support import api_client, auth
from tests.builders import make_customer, make_tenant


def _pointer(r: Any) -> str:
    return str(r.json()["errors"][0]["pointer"])


def test_quantity_and_unit_price_bounds(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg", slug="limits")
    h = auth(create_api_key(db, clock, tenant.org_id).secret)
    customer = make_customer(db, clock, tenant, 1)
    with api_client(db, clock) as api:
        doc = api.get("/openapi.json").json()["components"]["schemas"]
        quantity = doc["ItemIn"]["properties"]["quantity"]["anyOf"]
        assert quantity[1]["maximum"] == 999_999_999
        assert "{1,9}" in quantity[0]["pattern"]
        assert "{1,12}" in doc["PriceIn"]["properties"]["unit_amount"]["pattern"]

        def order(qty: object, price: int = tenant.one_off) -> Any:
            body = {"customer_id": customer, "items": [{"price_id": price, "quantity": qty}]}
            return api.post("/api/v1/orders", json=body, headers=h)

        for too_many in ("1000000000", 1_000_000_000, 2**62, "9223372036854775807"):
            r = order(too_many)
            assert r.status_code == 422, r.text
            assert _pointer(r) == "/body/items/0/quantity"
        assert order("999999999").status_code == 201  # 999,999,999 × the 9.99 one-off fits

        variant = api.get(f"/api/v1/variants?product_id={tenant.product_id}", headers=h).json()["data"][0]
        url = f"/api/v1/variants/{variant['id']}/prices"
        r = api.post(url, json={"currency": tenant.currency, "unit_amount": "1000000000000"}, headers=h)
        assert (r.status_code, _pointer(r)) == (422, "/body/unit_amount"), r.text
        dear = create_price(
            db, clock, tenant.org_id, variant["id"], currency_code=tenant.currency, unit_amount="999999999999"
        )
        r = order("100000", dear)  # 10¹⁷ EUR: each bound kept, the product not, with this stored price
        expected = (409, "field_conflict", "/body/items/0/quantity")
        assert (r.status_code, r.json()["code"], _pointer(r)) == expected, r.text


@pytest.mark.parametrize("code", ["EUR", "JPY", "KWD"])
def test_the_domain_refuses_a_line_beyond_the_bound(code: str) -> None:
    cur = currency(code)
    limit = Decimal(MAX_LINE_MINOR).scaleb(-cur.exponent)
    assert line_amount_minor(Decimal(1), limit, cur) == MAX_LINE_MINOR
    with pytest.raises(FieldConflictError):
        line_amount_minor(Decimal(2), limit, cur)
    with pytest.raises(FieldConflictError):
        line_amount_minor(Decimal(2**63), Decimal("0.01"), cur)
