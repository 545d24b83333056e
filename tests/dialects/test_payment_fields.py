"""The payment fields of the three dialects after real payments: cards tokenised at the test gateway
(its own process, real HTTP), charged, declined, retried, refunded, and a proforma paid into its final
invoice, all through the payment services; then read through a real uvicorn server on SQLite and
PostgreSQL, field by field, with the types and formats each seed document shows."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.gateway import cards
from fiscus.services.access import create_api_key, create_customer_token
from fiscus.services.billing_run import run_billing
from fiscus.services.documents import issue_document
from fiscus.services.orders import create_order
from fiscus.services.payment_links import is_valid, link_secret, parse_link, payment_url
from fiscus.services.payments.charging import charge_document
from fiscus.services.payments.collection import run_collection
from fiscus.services.payments.methods import add_card
from fiscus.services.payments.refunds import refund_payment
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.api_support import auth, live_server, make_app
from tests.builders import make_customer, make_tenant
from tests.dialects.test_billing import _check_contract
from tests.dialects.test_payments import Num, check_against_engine, instant, parse, walk
from tests.payments_support import GatewayProcess, gateway_process

PUBLIC = "https://billing.example"
BILLING = "/v1/billing/invoices/"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
VPS_KEYS = ["id", "invoice_number", "created_at", "amount", "amount_with_vat", "type", "order_ids"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("gw")) as gw:
        yield gw


@dataclass
class Shop:
    """A KZT marketplace (seed 000's currency) whose customers pay by card."""

    org_id: int
    key: str
    paid: int
    """The invoice paid by card, then partly refunded."""
    paid_card: int
    declined: int
    """An invoice whose card is declined for insufficient funds (soft)."""
    declined_card: int
    declined_customer: int
    hard: int
    """An invoice whose card is declined do-not-honor (hard)."""
    proforma: int
    """A proforma declined once, then paid: converted into `invoice`."""
    proforma_cards: tuple[int, int]
    invoice: int
    tokens: dict[int, str]


def _doc(db: Database, doc_id: int) -> dict[str, Any]:
    with db.read() as conn:
        return dict(conn.execute(select(t.documents).where(t.documents.c.id == doc_id)).mappings().one())


def _attempts(db: Database, doc_id: int) -> list[dict[str, Any]]:
    a = t.payment_attempts.c
    with db.read() as conn:
        rows = conn.execute(select(t.payment_attempts).where(a.document_id == doc_id).order_by(a.id))
        return [dict(r) for r in rows.mappings()]


def _document_of(db: Database, org_id: int, customer_id: int) -> int:
    d = t.documents.c
    with db.read() as conn:
        query = select(d.id).where(d.organization_id == org_id, d.customer_id == customer_id).order_by(d.id)
        return int(conn.execute(query.limit(1)).scalar_one())


def _shop(db: Database, clock: FixedClock, gw: GatewayProcess) -> Shop:
    provider = gw.provider()
    tenant = make_tenant(db, clock, "kz", slug="pay-kz", order_document=DocumentType.PROFORMA)
    org = tenant.org_id
    customers, methods = [], []
    for n, number in enumerate((cards.SUCCESS, cards.INSUFFICIENT_FUNDS, cards.DO_NOT_HONOR)):
        cid = make_customer(db, clock, tenant, n)
        methods.append(add_card(db, clock, provider, org, cid, token=gw.tokenise(number)))
        create_subscription(db, clock, org, cid, [ItemSpec(tenant.monthly, 1)])
        customers.append(cid)
    buyer = make_customer(db, clock, tenant, 3)
    first_card = add_card(db, clock, provider, org, buyer, token=gw.tokenise(cards.INSUFFICIENT_FUNDS))
    create_order(db, clock, org, buyer, [ItemSpec(tenant.one_off, 2)])
    run_billing(db, clock)
    docs = [_document_of(db, org, cid) for cid in (*customers, buyer)]
    clock.advance(timedelta(minutes=5))
    summary = run_collection(db, clock, provider)
    assert (summary.succeeded, summary.failed) == (1, 3)
    clock.advance(timedelta(minutes=5))
    second_card = add_card(db, clock, provider, org, buyer, token=gw.tokenise(cards.SUCCESS, holder="B"))
    outcome = charge_document(db, clock, provider, org, docs[3])
    assert outcome.paid_document_id is not None
    assert outcome.paid_document_id != docs[3]
    clock.advance(timedelta(minutes=5))
    refund_payment(db, clock, provider, org, docs[0], amount_minor=500, reason="goodwill")
    clock.advance(timedelta(minutes=5))
    return Shop(
        org_id=org,
        key=create_api_key(db, clock, org).secret,
        paid=docs[0],
        paid_card=methods[0],
        declined=docs[1],
        declined_card=methods[1],
        declined_customer=customers[1],
        hard=docs[2],
        proforma=docs[3],
        proforma_cards=(first_card, second_card),
        invoice=outcome.paid_document_id,
        tokens={cid: create_customer_token(db, clock, org, cid).secret for cid in (*customers, buyer)},
    )


@contextmanager
def _served(db: Database, clock: FixedClock, **settings: object) -> Iterator[httpx.Client]:
    with (
        live_server(make_app(db, clock, public_url=PUBLIC, **settings)) as base,
        httpx.Client(base_url=base, timeout=30) as http,
    ):
        yield http


def _decimal(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_float=Decimal)


def _billing(http: httpx.Client, secret: str) -> dict[int, dict[str, Any]]:
    body = _decimal(http.get(BILLING, params={"pageSize": 100}, headers=auth(secret)))
    return {inv["id"]: inv for inv in body["results"]}


def _links(db: Database, clock: FixedClock, org_id: int, configured: str | None = None) -> dict[int, str]:
    """The hosted page of every issued invoice and proforma (drafts have none)."""
    secret = link_secret(db, clock, configured)
    d = t.documents.c
    with db.read() as conn:
        ids = conn.execute(
            select(d.id).where(
                d.organization_id == org_id,
                d.type.in_(("invoice", "proforma")),
                d.status != "draft",
            )
        ).scalars()
        return {i: payment_url(PUBLIC, secret, org_id, i) for i in ids}


def test_billing_dialect_shows_cards_captures_refunds_errors_and_the_payment_page(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    shop = _shop(db, clock, gateway)
    links = _links(db, clock, shop.org_id)
    with _served(db, clock, gateway_url=gateway.url) as http:
        invoices = _billing(http, shop.key)
        _check_contract(db, list(invoices.values()), transaction_urls=links)
        for doc_id, inv in invoices.items():
            assert _decimal(http.get(f"{BILLING}{doc_id}/", headers=auth(shop.key))) == inv
    paid, declined, hard = invoices[shop.paid], invoices[shop.declined], invoices[shop.hard]
    proforma, invoice = invoices[shop.proforma], invoices[shop.invoice]
    total = _doc(db, shop.paid)["total_minor"]

    assert paid["status"] == "paid"
    assert paid["card"] == shop.paid_card
    assert isinstance(paid["card"], int)
    assert paid["captured_amount"] == str(Decimal(total).scaleb(-2))
    assert re.fullmatch(r"\d+\.\d{2}", paid["captured_amount"])
    assert paid["refund_amount"] == "5.00"
    assert paid["captured_at"] == instant(_attempts(db, shop.paid)[0]["settled_at"])
    assert TIMESTAMP.match(paid["captured_at"])
    assert paid["errors"] == []

    failed = _attempts(db, shop.declined)[0]
    assert declined["status"] == "waiting"
    assert declined["card"] == shop.declined_card
    # nothing captured: "0.00", and `captured_at` is the document's own instant (never null)
    assert (declined["captured_amount"], declined["refund_amount"], declined["captured_at"]) == (
        "0.00",
        "0.00",
        declined["created_at"],
    )
    assert declined["errors"] == [
        {
            "id": failed["id"],
            "code": "insufficient_funds",
            "description": failed["error_message"],
            "created_at": instant(failed["created_at"]),
            "invoice": shop.declined,
        }
    ]
    assert failed["error_message"]
    assert [e["code"] for e in hard["errors"]] == ["do_not_honor"]

    # The proforma keeps its own decline; the final invoice it became has the charge that paid it.
    assert proforma["status"] == "converted"
    assert proforma["transaction_url"] == links[proforma["id"]]  # the page says what it became
    assert proforma["card"] == shop.proforma_cards[1]
    assert [(e["code"], e["invoice"]) for e in proforma["errors"]] == [("insufficient_funds", shop.proforma)]
    assert proforma["captured_amount"] == "0.00"
    assert invoice["status"] == "paid"
    assert invoice["card"] == shop.proforma_cards[1]
    assert invoice["errors"] == []
    assert Decimal(invoice["captured_amount"]) == Decimal(invoice["total"])

    for inv in (paid, declined, hard, invoice):
        url = inv["transaction_url"]
        assert url == links[inv["id"]]
        assert url.startswith(f"{PUBLIC}/pay/{inv['id']}.")
        parsed = parse_link(url.rsplit("/", 1)[1])
        assert parsed is not None
        assert parsed[0] == inv["id"]
        assert is_valid(link_secret(db, clock, None), shop.org_id, inv["id"], parsed[1])


def test_payment_page_links_follow_the_configured_key_with_or_without_payments(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    shop = _shop(db, clock, gateway)
    draft_tenant = make_tenant(db, clock, "kz", slug="pay-drafts", auto_issue=False)
    cid = make_customer(db, clock, draft_tenant, 7)
    create_subscription(db, clock, draft_tenant.org_id, cid, [ItemSpec(draft_tenant.monthly, 1)])
    create_order(db, clock, draft_tenant.org_id, cid, [ItemSpec(draft_tenant.one_off, 1)])
    run_billing(db, clock)
    d = t.documents.c
    with db.read() as conn:
        drafts = list(conn.execute(select(d.id).where(d.organization_id == draft_tenant.org_id)).scalars())
    assert len(drafts) == 2
    issue_document(db, clock, draft_tenant.org_id, drafts[0])
    drafts_key = create_api_key(db, clock, draft_tenant.org_id).secret

    with _served(db, clock) as http:  # no gateway: the page still shows the document and its state
        invoices = _billing(http, shop.key)
        _check_contract(db, list(invoices.values()))
        assert invoices[shop.paid]["card"] == shop.paid_card
        assert invoices[shop.declined]["errors"]
    key = "a-configured-secret-key-of-some-length"
    with _served(db, clock, gateway_url=gateway.url, secret_key=key) as http:
        _check_contract(db, list(_billing(http, shop.key).values()), _links(db, clock, shop.org_id, key))
        unpaid = _billing(http, drafts_key)
    assert unpaid[drafts[0]]["transaction_url"] == payment_url(
        PUBLIC, key.encode(), draft_tenant.org_id, drafts[0]
    )
    assert unpaid[drafts[1]]["status"] == "draft"
    assert unpaid[drafts[1]]["transaction_url"] == f"{PUBLIC}/api/v1/documents/{drafts[1]}/pdf"


def test_payments_dialect_shows_profile_network_and_attempts(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    shop = _shop(db, clock, gateway)
    with _served(db, clock, gateway_url=gateway.url) as http:
        items = {int(i["id"]): i for page in walk(http, shop.key, 100) for i in page["items"]}
        for item in items.values():
            check_against_engine(db, item)
        one = parse(http.get(f"/invoices/{shop.declined}", headers=auth(shop.key)))["data"]
    paid, declined = items[shop.paid], items[shop.declined]
    proforma, invoice = items[shop.proforma], items[shop.invoice]
    assert one == declined

    assert paid["paymentProfileId"] == str(shop.paid_card)
    assert paid["network"] == "visa"
    assert isinstance(paid["totalPaymentAttempts"], Num)
    assert paid["totalPaymentAttempts"] == "1"
    assert paid["lastPaymentAttemptDate"] == instant(_attempts(db, shop.paid)[0]["created_at"])
    assert paid["status"] == "PAID"
    for sub_item in paid["subscriptionItems"]:
        assert (sub_item["paymentProfileId"], sub_item["network"]) == (str(shop.paid_card), "visa")

    assert declined["status"] == "OPEN"
    assert (declined["paymentProfileId"], declined["totalPaymentAttempts"]) == (str(shop.declined_card), "1")

    assert proforma["status"] == "VOID"
    assert proforma["totalPaymentAttempts"] == "2"
    assert invoice["status"] == "PAID"
    assert invoice["totalPaymentAttempts"] == "1"
    assert invoice["paymentProfileId"] == proforma["paymentProfileId"] == str(shop.proforma_cards[1])
    assert invoice["lastPaymentAttemptDate"] == proforma["lastPaymentAttemptDate"]
    assert invoice["invoiceItems"]
    assert not invoice["subscriptionItems"]


def test_vps_dialect_has_no_payment_fields_and_lists_the_paid_proforma_and_its_invoice(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    shop = _shop(db, clock, gateway)
    with _served(db, clock, gateway_url=gateway.url) as http:
        response = http.get("/v1/invoices", headers={**auth(shop.key), "Accept": "application/json"})
        body = _decimal(response)
    rows = {row["id"]: row for row in body["data"]}
    assert all(list(row) == VPS_KEYS for row in rows.values())
    assert rows[shop.proforma]["type"] == "proform"
    assert rows[shop.invoice]["type"] == "original"
    assert rows[shop.invoice]["order_ids"] == rows[shop.proforma]["order_ids"] != []
    assert rows[shop.invoice]["amount_with_vat"] == rows[shop.proforma]["amount_with_vat"]


def test_a_new_attempt_refund_or_payment_shows_on_the_next_read(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    """Renderings are cached by document stamp; every payment event moves the stamp (updated_at)."""
    shop = _shop(db, clock, gateway)
    provider = gateway.provider()
    path = f"/invoices/{shop.declined}"
    with _served(db, clock, gateway_url=gateway.url) as http:

        def both() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            listed = {int(i["id"]): i for page in walk(http, shop.key, 100) for i in page["items"]}
            one = parse(http.get(path, headers=auth(shop.key)))["data"]
            return listed[shop.declined], one, _billing(http, shop.key)[shop.declined]

        before, one, billing = both()
        assert before == one
        assert (before["totalPaymentAttempts"], len(billing["errors"])) == ("1", 1)
        assert both()[0] == before  # served from the cache

        clock.advance(timedelta(days=1))
        assert (
            charge_document(db, clock, provider, shop.org_id, shop.declined).error_code
            == "insufficient_funds"
        )
        after, one, billing = both()
        assert after == one
        assert after["totalPaymentAttempts"] == "2"
        assert after["lastPaymentAttemptDate"] == instant(clock.now())
        assert [e["code"] for e in billing["errors"]] == ["insufficient_funds"] * 2
        assert billing["status"] == "waiting"

        clock.advance(timedelta(hours=1))
        new_card = add_card(
            db, clock, provider, shop.org_id, shop.declined_customer, token=gateway.tokenise(cards.SUCCESS)
        )
        charge_document(db, clock, provider, shop.org_id, shop.declined)
        paid, _one, billing = both()
        assert (paid["status"], paid["totalPaymentAttempts"]) == ("PAID", "3")
        assert paid["paymentProfileId"] == str(new_card)
        assert (billing["status"], billing["card"], len(billing["errors"])) == ("paid", new_card, 2)
        assert billing["captured_at"] == instant(clock.now())

        clock.advance(timedelta(hours=1))
        refund_payment(db, clock, provider, shop.org_id, shop.declined, amount_minor=1)
        assert _billing(http, shop.key)[shop.declined]["refund_amount"] == "0.01"


def test_customers_see_only_their_own_payments(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    shop = _shop(db, clock, gateway)
    other = _shop_in_another_org(db, clock, gateway)
    with _served(db, clock, gateway_url=gateway.url) as http:
        own = _billing(http, shop.tokens[shop.declined_customer])
        assert set(own) == {shop.declined}
        assert own[shop.declined]["card"] == shop.declined_card
        assert own[shop.declined]["transaction_url"] == _links(db, clock, shop.org_id)[shop.declined]
        for secret in [shop.tokens[c] for c in shop.tokens if c != shop.declined_customer] + [other]:
            found = http.get(f"{BILLING}{shop.declined}/", headers=auth(secret))
            assert found.status_code == 404
            assert http.get(f"/invoices/{shop.declined}", headers=auth(secret)).status_code == 404
            listed = _billing(http, secret)
            assert shop.declined not in listed
            assert all(inv["card"] != shop.declined_card for inv in listed.values())
        items = [i for page in walk(http, shop.tokens[shop.declined_customer], 100) for i in page["items"]]
        assert [(i["id"], i["paymentProfileId"]) for i in items] == [
            (str(shop.declined), str(shop.declined_card))
        ]


def _shop_in_another_org(db: Database, clock: FixedClock, gw: GatewayProcess) -> str:
    """An organisation with a paid invoice of its own; returns its API key."""
    tenant = make_tenant(db, clock, "kz", slug="pay-other")
    cid = make_customer(db, clock, tenant, 9)
    add_card(db, clock, gw.provider(), tenant.org_id, cid, token=gw.tokenise(cards.SUCCESS))
    create_subscription(db, clock, tenant.org_id, cid, [ItemSpec(tenant.monthly, 1)])
    run_billing(db, clock)
    run_collection(db, clock, gw.provider())
    return create_api_key(db, clock, tenant.org_id).secret
