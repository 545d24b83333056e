"""Credit notes on both databases: full, by lines, by amount; limits, numbering, exact totals, credit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.api.routes import credit_notes as credit_routes
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.domain.errors import InvalidFieldError, InvalidStateError, NotFoundError
from fiscus.domain.money import allocate, currency, from_minor, round_minor, to_minor
from fiscus.services.access import create_api_key
from fiscus.services.catalog import create_price
from fiscus.services.credit_notes import apply_customer_credit, customer_credit_balance, issue_credit_note
from fiscus.services.documents import issue_document, mark_paid, void_document
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.reconcile import reconcile
from fiscus.services.subscriptions import ItemSpec
from tests.api_support import auth, make_app
from tests.builders import Tenant, make_customer, make_tenant


def row(db: Database, doc_id: int) -> dict[str, Any]:
    with db.read() as conn:
        return dict(conn.execute(select(t.documents).where(t.documents.c.id == doc_id)).mappings().one())


def lines_of(db: Database, doc_id: int) -> list[dict[str, Any]]:
    with db.read() as conn:
        dl = t.document_lines.c
        query = select(t.document_lines).where(dl.document_id == doc_id).order_by(dl.position)
        return [dict(r) for r in conn.execute(query).mappings()]


def taxes_of(db: Database, doc_id: int) -> dict[Decimal, tuple[int, int]]:
    with db.read() as conn:
        x = t.document_taxes.c
        rows = conn.execute(select(x.rate, x.base_minor, x.tax_minor).where(x.document_id == doc_id)).all()
    return {Decimal(r[0]): (int(r[1]), int(r[2])) for r in rows}


def assert_clean(db: Database) -> None:
    report = reconcile(db)
    assert {k: [v.row for v in rows] for k, rows in report.items() if rows} == {}


def assert_exact(db: Database, doc_id: int) -> None:
    doc = row(db, doc_id)
    lines = lines_of(db, doc_id)
    assert doc["total_minor"] == doc["subtotal_minor"] + doc["tax_minor"]
    assert doc["subtotal_minor"] == sum(line["amount_minor"] for line in lines)
    assert doc["tax_minor"] == sum(line["tax_minor"] for line in lines)
    breakdown = taxes_of(db, doc_id)
    assert sum(b for b, _ in breakdown.values()) == doc["subtotal_minor"]
    assert sum(x for _, x in breakdown.values()) == doc["tax_minor"]


def one_off(db: Database, clock: FixedClock, tenant: Tenant, amount: str, category: str = "standard") -> int:
    with db.read() as conn:
        variant = conn.execute(
            select(t.prices.c.variant_id).where(t.prices.c.id == tenant.one_off)
        ).scalar_one()
    return create_price(
        db,
        clock,
        tenant.org_id,
        variant,
        currency_code=tenant.currency,
        unit_amount=amount,
        tax_category=category,
    )


def once(db: Database, clock: FixedClock, tenant: Tenant, recurring: int) -> int:
    """A one-off standard-rate price at a recurring price's amount (orders take one-off prices only)."""
    with db.read() as conn:
        amount = conn.execute(select(t.prices.c.unit_amount).where(t.prices.c.id == recurring)).scalar_one()
    return one_off(db, clock, tenant, str(amount))


def invoice(db: Database, clock: FixedClock, tenant: Tenant, items: list[tuple[int, str]], n: int = 0) -> int:
    customer = make_customer(db, clock, tenant, n)
    order = create_order(db, clock, tenant.org_id, customer, [ItemSpec(p, Decimal(q)) for p, q in items])
    return bill_order_now(db, clock, tenant.org_id, order)


def credit(db: Database, clock: FixedClock, tenant: Tenant, invoice_id: int, **kw: Any) -> int:
    kw.setdefault("reason", "correction")
    kw.setdefault("disposition", "reduce_due")
    return issue_credit_note(db, clock, tenant.org_id, invoice_id, **kw)


@contextmanager
def client(db: Database, clock: FixedClock) -> Iterator[TestClient]:
    app = make_app(db, clock)
    if not any(getattr(r, "path", "") == "/api/v1/documents/{document_id}/credit_notes" for r in app.routes):
        app.include_router(credit_routes.api)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_partial_by_amount_splits_over_two_rates_exactly(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    reduced = one_off(db, clock, tenant, "9.99", "reduced")
    inv_id = invoice(db, clock, tenant, [(once(db, clock, tenant, tenant.monthly), "2"), (reduced, "3")])
    inv = row(db, inv_id)
    gross = {rate: base + tax for rate, (base, tax) in taxes_of(db, inv_id).items()}
    note_id = credit(db, clock, tenant, inv_id, mode="amount", amount=Decimal("10.01"))

    note = row(db, note_id)
    assert note["type"] == "credit_note"
    assert note["status"] == "open"
    assert note["total_minor"] == 1001
    assert note["corrected_document_id"] == inv_id
    assert note["credit_disposition"] == "reduce_due"
    assert_exact(db, note_id)
    rates = sorted(gross, reverse=True)
    shares = allocate(1001, [gross[r] for r in rates])
    got = taxes_of(db, note_id)
    cur = currency("EUR")
    for rate, share in zip(rates, shares, strict=True):
        tax = to_minor(round_minor(from_minor(share, cur) * rate / (1 + rate), cur), cur)
        assert got[rate] == (share - tax, tax)
    after = row(db, inv_id)
    assert after["amount_credited_minor"] == 1001
    assert after["status"] == "open"
    assert inv["total_minor"] - after["amount_credited_minor"] == inv["total_minor"] - 1001
    assert_clean(db)


def test_partial_by_line_with_a_partial_quantity(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    reduced = one_off(db, clock, tenant, "9.99", "reduced")
    inv_id = invoice(db, clock, tenant, [(once(db, clock, tenant, tenant.monthly), "2"), (reduced, "3")])
    inv_lines = lines_of(db, inv_id)
    reduced_pos = next(line["position"] for line in inv_lines if line["tax_rate"] == Decimal("0.09"))
    reduced_line = next(line for line in inv_lines if line["position"] == reduced_pos)

    note_id = credit(db, clock, tenant, inv_id, mode="lines", lines=[(reduced_pos, Decimal("1"))])
    [line] = lines_of(db, note_id)
    assert line["position"] == reduced_pos
    assert line["quantity"] == Decimal("1")
    assert line["amount_minor"] == 999
    cur = currency("EUR")
    share = from_minor(reduced_line["tax_minor"], cur) / 3
    assert line["tax_minor"] == to_minor(round_minor(share, cur), cur)
    assert_exact(db, note_id)

    with pytest.raises(InvalidFieldError) as exc:
        credit(db, clock, tenant, inv_id, mode="lines", lines=[(reduced_pos, Decimal("3"))])
    assert exc.value.field == "lines.0.quantity"
    rest = credit(db, clock, tenant, inv_id, mode="lines", lines=[(reduced_pos, Decimal("2"))])
    both = [lines_of(db, note_id)[0], lines_of(db, rest)[0]]
    assert sum(x["amount_minor"] for x in both) == reduced_line["amount_minor"]
    assert sum(x["tax_minor"] for x in both) == reduced_line["tax_minor"]
    with pytest.raises(InvalidFieldError) as exc:
        credit(db, clock, tenant, inv_id, mode="lines", lines=[(reduced_pos, None)])
    assert exc.value.field == "lines.0.position"
    assert_clean(db)


def test_full_credit_of_an_unpaid_invoice_settles_it(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    inv_id = invoice(
        db, clock, tenant, [(once(db, clock, tenant, tenant.monthly), "2"), (tenant.one_off, "1")]
    )
    inv = row(db, inv_id)
    note_id = credit(db, clock, tenant, inv_id, mode="full")
    note = row(db, note_id)
    assert note["total_minor"] == inv["total_minor"]
    assert note["tax_minor"] == inv["tax_minor"]
    assert [(x["amount_minor"], x["tax_minor"]) for x in lines_of(db, note_id)] == [
        (x["amount_minor"], x["tax_minor"]) for x in lines_of(db, inv_id)
    ]
    after = row(db, inv_id)
    assert after["status"] == "paid"
    assert after["amount_credited_minor"] == inv["total_minor"]
    assert after["amount_paid_minor"] == 0
    with pytest.raises(InvalidFieldError) as exc:
        credit(db, clock, tenant, inv_id, mode="amount", amount=Decimal("0.01"), disposition="refund")
    assert exc.value.field == "mode"
    assert_clean(db)


@pytest.mark.parametrize(("kind", "odd"), [("jp", "333"), ("bg", "3.33"), ("kw", "3.335")])
def test_totals_exact_in_jpy_eur_kwd(db: Database, clock: FixedClock, kind: str, odd: str) -> None:
    tenant = make_tenant(db, clock, kind)
    items = [
        (once(db, clock, tenant, tenant.monthly), "3"),
        (once(db, clock, tenant, tenant.monthly_big), "1"),
        (tenant.one_off, "7"),
    ]
    if kind != "kw":
        items.append((one_off(db, clock, tenant, "1.5" if kind == "bg" else "777", "reduced"), "3"))
    inv_id = invoice(db, clock, tenant, items)
    total = row(db, inv_id)["total_minor"]
    cur = currency(tenant.currency)
    notes = [credit(db, clock, tenant, inv_id, mode="amount", amount=Decimal(odd))]
    notes.append(credit(db, clock, tenant, inv_id, mode="lines", lines=[(1, Decimal("1"))]))
    notes.append(credit(db, clock, tenant, inv_id, mode="full"))
    for note_id in notes:
        assert_exact(db, note_id)
        assert row(db, note_id)["currency"] == cur.code
    assert row(db, notes[0])["total_minor"] == to_minor(Decimal(odd), cur)
    assert sum(row(db, n)["total_minor"] for n in notes) == total
    assert sum(row(db, n)["tax_minor"] for n in notes) == row(db, inv_id)["tax_minor"]
    per_line: dict[int, list[int]] = {}
    for n in notes:
        for line in lines_of(db, n):
            per_line.setdefault(line["position"], []).append(line["amount_minor"])
    assert {p: sum(v) for p, v in per_line.items()} == {
        x["position"]: x["amount_minor"] for x in lines_of(db, inv_id)
    }
    assert row(db, inv_id)["status"] == "paid"
    too_precise = "1.5" if cur.exponent == 0 else "0.0001"
    other = invoice(db, clock, tenant, [(once(db, clock, tenant, tenant.monthly), "1")], n=1)
    with pytest.raises(InvalidFieldError) as exc:
        credit(db, clock, tenant, other, mode="amount", amount=Decimal(too_precise))
    assert exc.value.field == "amount"
    assert_clean(db)


def test_over_credit_is_refused_naming_the_field(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    inv_id = invoice(db, clock, tenant, [(once(db, clock, tenant, tenant.monthly), "1")])
    total = from_minor(row(db, inv_id)["total_minor"], currency("EUR"))
    with pytest.raises(InvalidFieldError) as exc:
        credit(db, clock, tenant, inv_id, mode="amount", amount=total + Decimal("0.01"))
    assert exc.value.field == "amount"
    credit(db, clock, tenant, inv_id, mode="amount", amount=Decimal("5"))
    with pytest.raises(InvalidFieldError) as exc:
        credit(db, clock, tenant, inv_id, mode="amount", amount=total - Decimal("4.99"))
    assert exc.value.field == "amount"
    with pytest.raises(InvalidFieldError) as exc:
        credit(db, clock, tenant, inv_id, mode="lines", lines=[(9, None)])
    assert exc.value.field == "lines.0.position"
    with pytest.raises(InvalidFieldError) as exc:
        credit(db, clock, tenant, inv_id, mode="amount", amount=Decimal("1"), disposition="refund")
    assert exc.value.field == "disposition"
    assert row(db, inv_id)["amount_credited_minor"] == 500
    assert_clean(db)


def test_only_issued_invoices_can_be_credited(db: Database, clock: FixedClock) -> None:
    proforma_org = make_tenant(db, clock, "bg", slug="pro", order_document=DocumentType.PROFORMA)
    proforma = invoice(db, clock, proforma_org, [(once(db, clock, proforma_org, proforma_org.monthly), "1")])
    draft_org = make_tenant(db, clock, "bg", slug="draft", auto_issue=False)
    draft = invoice(db, clock, draft_org, [(once(db, clock, draft_org, draft_org.monthly), "1")])
    void_org = make_tenant(db, clock, "bg", slug="void")
    voided = invoice(db, clock, void_org, [(once(db, clock, void_org, void_org.monthly), "1")])
    void_document(db, clock, void_org.org_id, voided)
    for tenant, doc_id in ((proforma_org, proforma), (draft_org, draft), (void_org, voided)):
        with pytest.raises(InvalidStateError):
            credit(db, clock, tenant, doc_id, mode="full")
    with pytest.raises(NotFoundError):
        credit(db, clock, proforma_org, voided, mode="full")
    issue_document(db, clock, draft_org.org_id, draft)
    credit(db, clock, draft_org, draft, mode="full")
    assert_clean(db)


def test_numbering_is_gapless_in_the_credit_note_series(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    invoices = [
        invoice(db, clock, tenant, [(once(db, clock, tenant, tenant.monthly_big), "2")], n=i)
        for i in range(3)
    ]
    notes = []
    for inv_id in invoices:
        notes.append(credit(db, clock, tenant, inv_id, mode="amount", amount=Decimal("1.00")))
        notes.append(credit(db, clock, tenant, inv_id, mode="lines", lines=[(1, Decimal("1"))]))
    with pytest.raises(InvalidFieldError):
        credit(db, clock, tenant, invoices[0], mode="amount", amount=Decimal("1000"))
    notes.append(credit(db, clock, tenant, invoices[0], mode="full"))
    seqs = [row(db, n)["sequence"] for n in notes]
    assert seqs == list(range(1, len(notes) + 1))
    assert row(db, notes[0])["number"] == "CN-2026-000001"
    assert {row(db, n)["series"] for n in notes} == {"default"}
    assert_clean(db)


def test_customer_credit_is_applied_to_the_next_invoice(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    first = invoice(db, clock, tenant, [(once(db, clock, tenant, tenant.monthly), "2")])
    customer = row(db, first)["customer_id"]
    with pytest.raises(InvalidFieldError) as exc:
        credit(db, clock, tenant, first, mode="amount", amount=Decimal("5"), disposition="customer_credit")
    assert exc.value.field == "disposition"
    mark_paid(db, clock, tenant.org_id, first)
    note_id = credit(
        db, clock, tenant, first, mode="amount", amount=Decimal("20"), disposition="customer_credit"
    )
    assert row(db, first)["status"] == "paid"
    with db.read() as conn:
        assert customer_credit_balance(conn, tenant.org_id, customer, "EUR") == 2000
    order = create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, Decimal("1"))])
    small = bill_order_now(db, clock, tenant.org_id, order)
    order = create_order(
        db, clock, tenant.org_id, customer, [ItemSpec(once(db, clock, tenant, tenant.monthly), Decimal("1"))]
    )
    big = bill_order_now(db, clock, tenant.org_id, order)
    with db.write() as conn:
        applied = apply_customer_credit(conn, [small, big], now=clock.now(), actor="billing_run")
    small_total = row(db, small)["total_minor"]
    assert applied == {small: small_total, big: 2000 - small_total}
    assert row(db, small)["status"] == "paid"
    assert row(db, small)["amount_credited_minor"] == small_total
    assert row(db, big)["status"] == "open"
    assert row(db, big)["amount_credited_minor"] == 2000 - small_total
    with db.write() as conn:
        assert customer_credit_balance(conn, tenant.org_id, customer, "EUR") == 0
        assert apply_customer_credit(conn, [big], now=clock.now(), actor="billing_run") == {}
        ledger = conn.execute(
            select(t.customer_credits.c.amount_minor, t.customer_credits.c.document_id)
        ).all()
    assert sorted(ledger) == sorted([(2000, note_id), (-small_total, small), (small_total - 2000, big)])
    assert_clean(db)


def test_audit_rows_and_outbox_events(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    inv_id = invoice(db, clock, tenant, [(once(db, clock, tenant, tenant.monthly), "1")])
    note_id = credit(db, clock, tenant, inv_id, mode="full", reason="wrong plan")
    with db.read() as conn:
        a = t.audit_events.c
        audit = {
            (r.entity_id, r.action)
            for r in conn.execute(select(a.entity_id, a.action).where(a.entity_type == "document"))
        }
        o = t.outbox_events.c
        events = [(r.type, r.entity_id) for r in conn.execute(select(o.type, o.entity_id).order_by(o.id))]
    assert {(note_id, "created"), (note_id, "issued"), (note_id, "linked"), (inv_id, "credited")} <= audit
    assert (inv_id, "pay") in audit
    assert ("credit_note.created", note_id) in events
    assert ("credit_note.issued", note_id) in events
    assert ("invoice.credited", inv_id) in events
    assert ("invoice.paid", inv_id) in events
    assert row(db, note_id)["reason"] == "wrong plan"


def test_api_issue_and_list(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg")
    other = make_tenant(db, clock, "bg", slug="other")
    reduced = one_off(db, clock, tenant, "9.99", "reduced")
    inv_id = invoice(db, clock, tenant, [(once(db, clock, tenant, tenant.monthly), "2"), (reduced, "1")])
    foreign = invoice(db, clock, other, [(once(db, clock, other, other.monthly), "1")])
    key = create_api_key(db, clock, tenant.org_id).secret
    url = f"/api/v1/documents/{inv_id}/credit_notes"
    with client(db, clock) as c:
        body = {
            "mode": "lines",
            "lines": [{"position": 1, "quantity": "1"}],
            "reason": "x",
            "disposition": "reduce_due",
        }
        r = c.post(url, json=body, headers=auth(key))
        assert r.status_code == 201, r.text
        note = r.json()
        assert note["type"] == "credit_note"
        assert note["number"] == "CN-2026-000001"
        assert note["corrected_document_id"] == inv_id
        assert note["credit_disposition"] == "reduce_due"
        assert note["total"] == "18.00"
        assert note["lines"][0]["amount"] == "15.00"
        r = c.post(url, json={**body, "mode": "amount", "amount": 10}, headers=auth(key))
        assert r.status_code == 422
        r = c.post(
            url, json={**body, "mode": "amount", "amount": "9999.00", "lines": None}, headers=auth(key)
        )
        assert r.status_code == 409  # more than is creditable: a conflict with the invoice, not bad input
        assert r.json()["errors"][0]["field"] == "amount"
        r = c.post(url, json={**body, "mode": "amount", "amount": "10.00", "lines": None}, headers=auth(key))
        assert r.status_code == 201
        inv = c.get(f"/api/v1/documents/{inv_id}", headers=auth(key)).json()
        assert inv["amount_credited"] == "28.00"
        total = Decimal(inv["total"])
        assert Decimal(inv["amount_due"]) == total - Decimal("28.00")
        listed = c.get(url, headers=auth(key)).json()
        assert [d["number"] for d in listed["data"]] == ["CN-2026-000001", "CN-2026-000002"]
        assert (
            c.post(f"/api/v1/documents/{foreign}/credit_notes", json=body, headers=auth(key)).status_code
            == 404
        )
        assert c.get(f"/api/v1/documents/{foreign}/credit_notes", headers=auth(key)).status_code == 404
        r = c.post(url, json={**body, "mode": "full"}, headers=auth(key))
        assert r.status_code == 422  # `lines` go with mode lines only
        full = {**body, "mode": "full", "lines": None}
        r = c.post(url, json=full, headers=auth(key))
        assert r.status_code == 201
        r = c.post(url, json=full, headers=auth(key))
        assert r.status_code == 409  # already fully credited
        assert r.json()["errors"][0]["field"] == "mode"
    assert_clean(db)
