"""One engine, four presentations: for every document of the demo, the native API and the three
dialects agree on totals, tax, lines and payments to the minor unit (they are presenters of the same
queries)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.demo import seed_demo
from fiscus.domain.clock import FixedClock
from tests.api_support import api_client, auth
from tests.demo_support import DEMO_NOW, stratified_sample

pytestmark = pytest.mark.slow


def _decimal_json(text: str) -> Any:
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


@pytest.mark.xdist_group("demo")  # one worker seeds the demo once per database (demo_support)
def test_every_document_agrees_across_the_four_apis(demo_db: Database, backend: str) -> None:
    """Every document on PostgreSQL; on SQLite, a stratified sample (`stratified_sample`: the first and
    last document of every organisation x type x status x feature set): the presenters are the same on
    both, only the queries under them differ, and the sample reaches every kind of document."""
    db = demo_db
    clock = FixedClock(DEMO_NOW)
    demo = seed_demo(db, clock, quiet=True)  # seeded already: the organisations and their keys
    keys = {o.id: o.api_key for o in demo.organizations}
    query = select(t.documents.c.id, t.documents.c.organization_id, t.documents.c.type, t.documents.c.status)
    if backend != "postgresql":
        query = query.where(t.documents.c.id.in_([doc_id for _, doc_id in stratified_sample(db)]))
    with db.read() as conn:
        rows = conn.execute(query).all()
    checked = 0
    with api_client(db, clock) as api:
        for doc_id, org_id, doc_type, status in rows:
            if doc_type == "credit_note":
                continue
            h = auth(str(keys[org_id]))
            native = _decimal_json(api.get(f"/api/v1/documents/{doc_id}", headers=h).text)
            billing = _decimal_json(api.get(f"/v1/billing/invoices/{doc_id}/", headers=h).text)
            payments = _decimal_json(api.get(f"/invoices/{doc_id}", headers=h).text)["data"]
            total, subtotal, tax = (Decimal(native[k]) for k in ("total", "subtotal", "tax"))
            assert Decimal(billing["total"]) == total
            assert (payments["subTotal"], payments["taxTotal"]) == (subtotal, tax)
            assert payments["subTotal"] + payments["taxTotal"] == total
            native_lines = {line["id"]: Decimal(line["amount"]) for line in native["lines"]}
            assert {item["id"]: Decimal(item["amount"]) for item in billing["items"]} == native_lines
            assert Decimal(billing["captured_amount"]) == Decimal(native["amount_paid"])
            profile = payments["paymentProfileId"]
            assert billing["card"] == (0 if profile == "" else int(profile))
            assert len(billing["errors"]) <= payments["totalPaymentAttempts"]
            if Decimal(billing["captured_amount"]) == 0:
                assert billing["captured_at"] == billing["created_at"]
            sub_items = {int(i["id"]): i["total"] for i in payments["subscriptionItems"]}
            assert set(sub_items) | {int(i) for i in payments["invoiceItems"]} == set(native_lines)
            for line_id, amount in sub_items.items():
                assert amount == native_lines[line_id]
            assert sum(native_lines.values()) == subtotal
            assert sum((Decimal(x["tax"]) for x in native["tax_breakdown"]), Decimal(0)) == tax
            if status != "draft":
                vps = _decimal_json(api.get(f"/v1/invoices/{doc_id}", headers=h).text)["data"]
                assert (vps["amount"], vps["amount_with_vat"]) == (subtotal, total)
                assert vps["type"] == {"invoice": "original", "proforma": "proform"}[doc_type]
                assert vps["order_ids"] == native["order_ids"]
                assert (
                    vps["invoice_number"].lstrip("0") == native["number"].lstrip("0") or doc_type == "invoice"
                )
            checked += 1
    assert checked >= (700 if backend == "postgresql" else 50)
