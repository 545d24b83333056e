"""Bought credit (issue 17, ADR 0009), on both databases, against the real test gateway: a top-up is a
taxed invoice; paid, it credits the wallet once; a later invoice is taxed in full and takes the credit
after tax as a prepaid amount (EN 16931 BT-113, valid CII and UBL); unused paid credit is refunded with
a credit note of the top-up; a voided draft gives back the promotional credit it consumed."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from lxml import etree  # type: ignore[import-untyped]
from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.gateway import cards
from fiscus.queries.scope import Scope
from fiscus.services.documents import issue_document, void_document
from fiscus.services.einvoices import Syntax, einvoice_xml
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.payments.charging import charge_document
from fiscus.services.payments.methods import add_card
from fiscus.services.reconcile import reconcile
from fiscus.services.subscriptions import ItemSpec
from fiscus.services.wallet_topups import create_topup, refund_unused_credit
from fiscus.services.wallets import credit_paid_topup, grant_credits
from tests.builders import make_customer, make_tenant
from tests.en16931 import Schematron
from tests.integration.test_en16931_validation import _validate
from tests.payments_support import GatewayProcess, gateway_process


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("gw-topups")) as gw:
        yield gw


def _doc(db: Database, doc_id: int) -> dict[str, Any]:
    with db.read() as conn:
        return dict(conn.execute(select(t.documents).where(t.documents.c.id == doc_id)).mappings().one())


def _ledger(db: Database, customer_id: int) -> list[tuple[str, int, int | None]]:
    lg, w = td.wallet_ledger.c, td.wallets.c
    with db.read() as conn:
        return [
            (r.kind, r.amount_minor, r.document_id)
            for r in conn.execute(
                select(lg.kind, lg.amount_minor, lg.document_id)
                .join(td.wallets, w.id == lg.wallet_id)
                .where(w.customer_id == customer_id)
                .order_by(lg.id)
            )
        ]


def _balance(db: Database, customer_id: int) -> int:
    with db.read() as conn:
        return int(
            conn.execute(
                select(func.coalesce(func.sum(td.wallets.c.balance_minor), 0)).where(
                    td.wallets.c.customer_id == customer_id
                )
            ).scalar_one()
        )


def test_bought_credit_is_taxed_once_and_refundable(
    db: Database, clock: FixedClock, gateway: GatewayProcess, en16931: tuple[Schematron, Schematron]
) -> None:
    tenant = make_tenant(db, clock, "bg", slug="bg-topups", facturx=True)  # EUR, 20 %
    org = tenant.org_id
    buyer = make_customer(db, clock, tenant, 1)
    provider = gateway.provider()
    add_card(db, clock, provider, org, buyer, token=gateway.tokenise(cards.SUCCESS))

    topup = create_topup(db, clock, org, buyer, currency_code="EUR", amount=Decimal("120.00"))
    inv = _doc(db, topup)
    # the top-up invoice carries the tax now: 100.00 + 20 % = 120.00
    assert (inv["type"], inv["status"], inv["subtotal_minor"], inv["tax_minor"], inv["total_minor"]) == (
        "invoice",
        "open",
        10000,
        2000,
        12000,
    )
    assert _ledger(db, buyer) == []  # nothing until it is paid
    charge_document(db, clock, provider, org, topup)
    assert _doc(db, topup)["status"] == "paid"
    assert _ledger(db, buyer) == [("granted", 12000, topup)]
    with db.write() as conn:  # a second "paid" never credits twice
        assert credit_paid_topup(conn, _doc(db, topup), clock.now()) is None
    assert _balance(db, buyer) == 12000

    # 3 × one-off: taxed in full (no allowance), the credit comes off what is due after tax
    first = bill_order_now(
        db, clock, org, create_order(db, clock, org, buyer, [ItemSpec(tenant.one_off, "3")])
    )
    doc = _doc(db, first)
    assert (doc["subtotal_minor"], doc["tax_minor"]) == (2997, 599)  # 20 % of the full base: not reduced
    assert doc["amount_credited_minor"] == min(doc["total_minor"], 12000)
    with db.read() as conn:
        assert (
            conn.execute(
                select(func.count()).where(td.document_allowances.c.document_id == first)
            ).scalar_one()
            == 0
        )
    used = doc["amount_credited_minor"]
    assert doc["status"] == ("paid" if used == doc["total_minor"] else "open")
    assert _ledger(db, buyer)[-1] == ("consumed", -used, first)

    # the e-invoice states it as BT-113, and both syntaxes validate
    xml = einvoice_xml(db, Scope(org), first, Syntax.UBL)
    ns = {"cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"}
    prepaid = etree.fromstring(xml).findtext(".//cbc:PrepaidAmount", namespaces=ns)
    assert Decimal(prepaid or "0") == Decimal(used) / 100
    assert _validate(db, org, en16931).fatal == []

    # unused paid credit goes back through the provider, with a credit note of the top-up invoice
    left = 12000 - used
    assert left > 0
    [refund_id] = refund_unused_credit(db, clock, provider, org, buyer)
    assert _balance(db, buyer) == 0
    assert _ledger(db, buyer)[-1] == ("refunded", -left, topup)
    with db.read() as conn:
        refund = (
            conn.execute(select(t.payment_refunds).where(t.payment_refunds.c.id == refund_id))
            .mappings()
            .one()
        )
    assert (refund["status"], refund["amount_minor"]) == ("succeeded", left)
    assert _doc(db, refund["credit_note_id"])["total_minor"] == left
    assert _doc(db, topup)["amount_refunded_minor"] == left
    with pytest.raises(Exception, match="no unused paid credit"):
        refund_unused_credit(db, clock, provider, org, buyer)

    # credit a draft consumed (promotional here) goes back when the document is voided
    manual = make_tenant(db, clock, "bg", slug="bg-topups-draft", auto_issue=False)
    someone = make_customer(db, clock, manual, 2)
    grant_credits(db, clock, manual.org_id, someone, currency_code="EUR", amount=Decimal("5.00"))
    draft = bill_order_now(
        db, clock, manual.org_id, create_order(db, clock, manual.org_id, someone, [ItemSpec(manual.one_off)])
    )
    assert _doc(db, draft)["status"] == "draft"
    assert _balance(db, someone) == 0
    assert _ledger(db, someone)[-1] == ("consumed", -500, draft)
    issue_document(db, clock, manual.org_id, draft)  # a draft has no number: it is issued, then voided
    void_document(db, clock, manual.org_id, draft)
    assert _ledger(db, someone)[-1] == ("restored", 500, draft)
    assert _balance(db, someone) == 500

    report = reconcile(db)
    assert {k: [v.row for v in rows] for k, rows in report.items() if rows} == {}
