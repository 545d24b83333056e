"""The e-invoice routes (`/documents/{id}/ubl`, `/cii`) and reconcile's line check.

The routes answer the PDF route's way (organisation key or the owning customer's token; anything else
404), with a problem for what has no e-invoice. Reconcile names a line whose quantity × unit price no
longer rounds to its amount, and a negative price.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from lxml import etree  # type: ignore[import-untyped]
from sqlalchemy import select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.documents.facturx import build_cii_xml
from fiscus.documents.ubl import build_ubl_xml
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.queries.documents import load_documents
from fiscus.queries.scope import Scope
from fiscus.services.access import create_api_key, create_customer_token
from fiscus.services.billing_run import run_billing
from fiscus.services.credit_notes import issue_credit_note
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.reconcile import LINE_AMOUNT_CHECK, PRICE_SIGN_CHECK, reconcile
from fiscus.services.subscriptions import ItemSpec, change_subscription, create_subscription
from tests.api_support import api_client, auth
from tests.builders import make_customer, make_tenant


def _order(db: Database, clock: FixedClock, org_id: int, customer: int, price: int) -> int:
    return bill_order_now(
        db, clock, org_id, create_order(db, clock, org_id, customer, [ItemSpec(price, "2")])
    )


def test_ubl_and_cii_routes_follow_the_pdf_rules(db: Database, clock: FixedClock) -> None:
    bg = make_tenant(db, clock, "bg", slug="bg-e", facturx=True)
    other = make_tenant(db, clock, "bg", slug="bg-other", facturx=True)
    plain = make_tenant(db, clock, "us", slug="us-plain")
    proformas = make_tenant(db, clock, "bg", slug="bg-pf", facturx=True, order_document=DocumentType.PROFORMA)
    alice, bob = make_customer(db, clock, bg, 0), make_customer(db, clock, bg, 1)
    invoice = _order(db, clock, bg.org_id, alice, bg.one_off)
    note = issue_credit_note(
        db,
        clock,
        bg.org_id,
        invoice,
        mode="amount",
        amount=Decimal("1.00"),
        reason="Late",
        disposition="reduce_due",
    )
    proforma = _order(db, clock, proformas.org_id, make_customer(db, clock, proformas), proformas.one_off)
    us_invoice = _order(db, clock, plain.org_id, make_customer(db, clock, plain), plain.one_off)
    key = auth(create_api_key(db, clock, bg.org_id).secret)
    with db.read() as conn:
        views = {d.id: d for d in load_documents(conn, Scope(bg.org_id), [invoice, note])}
    with api_client(db, clock) as client:
        for path, build in (("ubl", build_ubl_xml), ("cii", build_cii_xml)):
            got = client.get(f"/api/v1/documents/{invoice}/{path}", headers=key)
            assert got.status_code == 200, got.text
            assert got.headers["content-type"].startswith("application/xml")
            assert got.content == build(views[invoice])
            credit = client.get(f"/api/v1/documents/{note}/{path}", headers=key)
            assert credit.status_code == 200
            number = views[invoice].number
            assert number is not None
            assert number.encode() in credit.content  # BT-25, the corrected invoice
            mine = auth(create_customer_token(db, clock, bg.org_id, alice).secret)
            assert client.get(f"/api/v1/documents/{invoice}/{path}", headers=mine).status_code == 200
            for stranger in (
                auth(create_customer_token(db, clock, bg.org_id, bob).secret),
                auth(create_api_key(db, clock, other.org_id).secret),
            ):
                denied = client.get(f"/api/v1/documents/{invoice}/{path}", headers=stranger)
                assert denied.status_code == 404
                assert denied.headers["content-type"] == "application/problem+json"
            assert client.get(f"/api/v1/documents/{invoice}/{path}").status_code == 401
            refused = client.get(
                f"/api/v1/documents/{proforma}/{path}",
                headers=auth(create_api_key(db, clock, proformas.org_id).secret),
            )
            assert (refused.status_code, refused.json()["code"]) == (409, "not_e_invoiceable")
            disabled = client.get(
                f"/api/v1/documents/{us_invoice}/{path}",
                headers=auth(create_api_key(db, clock, plain.org_id).secret),
            )
            assert (disabled.status_code, disabled.json()["code"]) == (409, "e_invoicing_disabled")
        root = etree.fromstring(client.get(f"/api/v1/documents/{note}/ubl", headers=key).content)
        assert etree.QName(root).localname == "CreditNote"
        spec = client.get("/openapi.json").json()["paths"]["/api/v1/documents/{document_id}/ubl"]["get"]
        assert spec["summary"]
        assert spec["description"]
        assert "application/xml" in spec["responses"]["200"]["content"]
        assert {"401", "404", "409"} <= set(spec["responses"])


def test_reconcile_names_a_line_whose_quantity_times_price_is_not_its_amount(
    db: Database, clock: FixedClock
) -> None:
    tenant = make_tenant(db, clock, "kz")
    customer = make_customer(db, clock, tenant)
    sub = create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, "1")])
    run_billing(db, clock)
    clock.advance(timedelta(days=10))
    change_subscription(db, clock, tenant.org_id, sub, [ItemSpec(tenant.monthly_big, "2")])
    clock.advance(timedelta(days=30))
    run_billing(db, clock)
    report = reconcile(db)
    assert report[LINE_AMOUNT_CHECK] == report[PRICE_SIGN_CHECK] == []
    dl = t.document_lines.c
    with db.write() as conn:
        credit_line = conn.execute(
            select(dl.id, dl.quantity, dl.unit_price).where(dl.description.startswith("Unused time"))
        ).one()
        assert credit_line.quantity < 0 <= credit_line.unit_price
        conn.execute(
            update(t.document_lines).where(dl.id == credit_line.id).values(amount_minor=dl.amount_minor + 1)
        )
    found = reconcile(db)[LINE_AMOUNT_CHECK]
    assert [v.row["line_id"] for v in found] == [credit_line.id]
    assert found[0].row["expected_minor"] == int(str(found[0].row["amount_minor"])) - 1
    with db.write() as conn:
        conn.execute(
            update(t.document_lines)
            .where(dl.id == credit_line.id)
            .values(
                amount_minor=dl.amount_minor - 1,
                quantity=-credit_line.quantity,
                unit_price=-credit_line.unit_price,
            )
        )  # the old illegal form: a positive quantity at a negative price, same amount
    report = reconcile(db)
    assert report[LINE_AMOUNT_CHECK] == []
    assert [v.row["line_id"] for v in report[PRICE_SIGN_CHECK]] == [credit_line.id]
