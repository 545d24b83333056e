"""The hosted payment page over HTTP: the signed link, the card form posted to the gateway process, the
return with a token, the outcome after the redirect, and everything a link, a state or a result
cannot be turned into."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Table, func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.documents.view_model import build_view_model
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.gateway import cards
from fiscus.queries.documents import get_document
from fiscus.queries.scope import Scope
from fiscus.services.credit_notes import issue_credit_note
from fiscus.services.documents import void_document
from fiscus.services.payment_links import link_secret
from fiscus.services.payments.janitor import settle_unknown
from fiscus.services.payments.methods import add_card
from fiscus.services.payments.settings import update_payment_settings
from fiscus.web.pay.signing import issue_state, seal_result
from tests.api_support import make_app
from tests.builders import make_tenant
from tests.pages.support import PUBLIC_URL, billed_document, card_form, follow, link_of, pay_with
from tests.payments_support import GatewayProcess, gateway_process


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("gw"), extra_args=("--timeout-seconds", "3")) as gw:
        yield gw


@pytest.fixture
def client(db: Database, clock: FixedClock, gateway: GatewayProcess) -> Iterator[TestClient]:
    app = make_app(db, clock, gateway_url=gateway.url, public_url=PUBLIC_URL, gateway_timeout_seconds=1.0)
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c


def _doc(db: Database, doc_id: int) -> dict[str, object]:
    with db.read() as conn:
        return dict(conn.execute(select(t.documents).where(t.documents.c.id == doc_id)).mappings().one())


def _count(db: Database, table: Table, **where: object) -> int:
    query = select(func.count()).select_from(table)
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


def _notice(html: str) -> str | None:
    found = re.search(r'data-testid="notice" data-kind="([a-z]+)"', html)
    return found.group(1) if found else None


def _testid(html: str, name: str) -> str:
    found = re.search(rf'data-testid="{name}"[^>]*>([^<]*)<', html)
    assert found, f"no {name} on the page"
    return found.group(1)


def _paid_through_page(client: TestClient, path: str, number: str) -> str:
    """Pay on the page with `number` and return the page shown after the redirect."""
    back = pay_with(client, client.get(path).text, number)
    assert back.status_code == 303
    assert back.headers["location"].startswith(path + "?result=")
    page = follow(client, back.headers["location"])
    assert page.status_code == 200
    return page.text


def test_page_shows_the_document_in_the_customers_language_with_a_card_form(
    db: Database, clock: FixedClock, client: TestClient, gateway: GatewayProcess
) -> None:
    tenant, _cid, doc_id = billed_document(db, clock, "bg", locale="bg")
    path = link_of(db, clock, tenant.org_id, doc_id)
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    with db.read() as conn:
        vm = build_view_model(get_document(conn, Scope(tenant.org_id), doc_id))
    html = r.text
    assert '<html lang="bg">' in html
    for text in (
        vm["seller"]["name"],
        vm["document"]["number"],
        vm["document"]["title"],
        vm["document"]["issue_date"],
        vm["document"]["due_date"],
        vm["lines"][0]["description"],
        vm["lines"][0]["amount"],
        vm["taxes"][0]["base"],
        vm["taxes"][0]["tax"],
        vm["totals"]["total"],
        vm["labels"]["tax_breakdown"],
    ):
        assert text in html, text
    assert _testid(html, "amount-due") == vm["totals"]["amount_due"]
    assert "Плащане с карта" in html  # the page's own texts are in the customer's language too
    # Autoescaped: the buyer's name is shown as typed, never as markup.
    assert "Buyer 0 &lt;b&gt;&amp;amp;&lt;/b&gt;" in html
    assert "<b>&amp;</b>" not in html
    form = card_form(html)
    assert form is not None
    assert form.action == f"{gateway.url}/hosted/tokenize"
    assert form.fields["return_url"] == f"{PUBLIC_URL}{path}/return"
    assert form.fields["state"]
    for name in ("holder", "card_number", "exp_month", "exp_year", "cvc"):
        assert re.search(rf'<label for="{name}">', html), name
    assert re.search(r'id="card_number"[^>]*inputmode="numeric"[^>]*autocomplete="cc-number"', html)
    assert "<script" not in html
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["referrer-policy"] == "no-referrer"
    csp = r.headers["content-security-policy"]
    assert f"form-action 'self' {gateway.url} {PUBLIC_URL}" in csp
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp


def test_success_card_pays_the_invoice_and_shows_a_receipt(
    db: Database, clock: FixedClock, client: TestClient, gateway: GatewayProcess
) -> None:
    tenant, cid, doc_id = billed_document(db, clock, "us")
    path = link_of(db, clock, tenant.org_id, doc_id)
    html = _paid_through_page(client, path, cards.SUCCESS)
    doc = _doc(db, doc_id)
    assert doc["status"] == "paid"
    assert doc["amount_paid_minor"] == doc["total_minor"]
    assert _notice(html) == "paid"
    assert card_form(html) is None
    assert _testid(html, "receipt-card") == "Visa ending in 4242"
    assert _testid(html, "receipt-invoice") == doc["number"]
    with db.read() as conn:
        attempt = (
            conn.execute(select(t.payment_attempts).where(t.payment_attempts.c.document_id == doc_id))
            .mappings()
            .one()
        )
        default = conn.execute(
            select(t.customers.c.default_payment_method_id).where(t.customers.c.id == cid)
        ).scalar_one()
    assert attempt["trigger"] == "hosted_page"
    assert attempt["status"] == "succeeded"
    assert _testid(html, "receipt-reference") == str(attempt["id"])
    assert default == attempt["payment_method_id"]  # a customer without a card gets this one as default
    vm_total = _testid(html, "total")
    assert _testid(html, "receipt-amount") == vm_total
    # Opened again later: still paid, with the receipt and no form.
    again = client.get(path).text
    assert _notice(again) == "paid"
    assert card_form(again) is None
    assert _testid(again, "receipt-reference") == str(attempt["id"])


def test_hosted_card_does_not_replace_an_existing_default(
    db: Database, clock: FixedClock, client: TestClient, gateway: GatewayProcess
) -> None:
    tenant, cid, doc_id = billed_document(db, clock, "us")
    first = add_card(db, clock, gateway.provider(), tenant.org_id, cid, token=gateway.tokenise(cards.SUCCESS))
    path = link_of(db, clock, tenant.org_id, doc_id)
    _paid_through_page(client, path, "5555555555554444")
    with db.read() as conn:
        default = conn.execute(
            select(t.customers.c.default_payment_method_id).where(t.customers.c.id == cid)
        ).scalar_one()
        used = conn.execute(
            select(t.payment_attempts.c.payment_method_id).where(t.payment_attempts.c.document_id == doc_id)
        ).scalar_one()
    assert default == first
    assert used != first


@pytest.mark.parametrize(
    ("number", "code", "kind", "locale", "text"),
    [
        (cards.DO_NOT_HONOR, "do_not_honor", "us", None, "The card issuer declined the payment."),
        (cards.INSUFFICIENT_FUNDS, "insufficient_funds", "us", None, "The card has insufficient funds."),
        (cards.DO_NOT_HONOR, "do_not_honor", "bg", "bg", "Банката издател отказа плащането."),
        (cards.INSUFFICIENT_FUNDS, "insufficient_funds", "bg", "bg", "Недостатъчна наличност по картата."),
    ],
)
def test_decline_shows_the_gateways_error_and_the_form_again(
    db: Database,
    clock: FixedClock,
    client: TestClient,
    gateway: GatewayProcess,
    number: str,
    code: str,
    kind: str,
    locale: str | None,
    text: str,
) -> None:
    """The provider's decline code is explained in the customer's language (its own English message
    is kept in the attempt for the organisation)."""
    tenant, _cid, doc_id = billed_document(db, clock, kind, locale=locale)
    path = link_of(db, clock, tenant.org_id, doc_id)
    html = _paid_through_page(client, path, number)
    assert _notice(html) == "declined"
    assert 'role="alert"' in html
    assert _testid(html, "notice-code") == code
    with db.read() as conn:
        message = conn.execute(
            select(t.payment_attempts.c.error_message).where(t.payment_attempts.c.document_id == doc_id)
        ).scalar_one()
    assert message
    shown = _testid(html, "notice-message")
    assert shown.startswith(text)
    assert shown != message  # the provider's English is not what the customer reads
    assert card_form(html) is not None  # try again
    doc = _doc(db, doc_id)
    assert doc["status"] == "open"
    assert doc["amount_paid_minor"] == 0
    assert _count(db, t.payment_captures, document_id=doc_id) == 0
    # The retry with a good card pays it.
    retried = pay_with(client, html, cards.SUCCESS)
    assert _notice(follow(client, retried.headers["location"]).text) == "paid"
    assert _doc(db, doc_id)["status"] == "paid"


def test_tokeniser_error_is_shown_at_its_field(
    db: Database, clock: FixedClock, client: TestClient, gateway: GatewayProcess
) -> None:
    tenant, _cid, doc_id = billed_document(db, clock, "us")
    path = link_of(db, clock, tenant.org_id, doc_id)
    back = pay_with(client, client.get(path).text, cards.SUCCESS, cvc="12")
    html = follow(client, back.headers["location"]).text
    assert _notice(html) == "error"
    assert _testid(html, "notice-code") == "invalid_cvc"
    assert re.search(
        r'id="cvc"[^>]*aria-describedby="cvc-hint cvc-error" aria-invalid="true" autofocus', html
    )
    assert 'id="cvc-error"' in html
    assert card_form(html) is not None
    assert _count(db, t.payment_attempts, document_id=doc_id) == 0


def test_a_link_cannot_be_turned_into_another_documents(
    db: Database, clock: FixedClock, client: TestClient
) -> None:
    tenant, _c1, first = billed_document(db, clock, "us")
    _tenant, _c2, second = billed_document(db, clock, tenant=tenant)
    other_org, _c3, foreign = billed_document(db, clock, "bg", slug="other")
    link_first = link_of(db, clock, tenant.org_id, first)
    link_second = link_of(db, clock, tenant.org_id, second)
    sig_first = link_first.rpartition(".")[2]
    sig_second = link_second.rpartition(".")[2]
    flipped = sig_first[:-1] + ("B" if sig_first.endswith("A") else "A")
    assert client.get(link_first).status_code == 200
    not_found = client.get(f"/pay/{second}.{sig_first}")  # another id, same signature
    assert not_found.status_code == 404
    refused = [
        not_found,
        client.get(f"/pay/{first}.{sig_second}"),  # another document's signature
        client.get(f"/pay/{foreign}.{sig_first}"),  # another organisation's document
        client.get(f"/pay/999999.{sig_first}"),  # no such document
        client.get(f"/pay/{first}.{flipped}"),  # one character changed
        client.get(f"/pay/{first}"),
        client.get(f"/pay/{first}.{sig_first}x"),
        client.get(f"/pay/{second}.{sig_first}/return?state=x&token=pm_x"),
    ]
    assert {r.status_code for r in refused} == {404}
    assert len({r.text for r in refused}) == 1  # one answer: no oracle for what exists
    assert refused[0].headers["cache-control"] == "no-store"
    assert other_org.org_id != tenant.org_id


def test_drafts_and_credit_notes_have_no_page(db: Database, clock: FixedClock, client: TestClient) -> None:
    drafts = make_tenant(db, clock, "us", slug="drafts", auto_issue=False)
    _t, _cid, draft = billed_document(db, clock, tenant=drafts)
    assert _doc(db, draft)["status"] == "draft"
    assert client.get(link_of(db, clock, drafts.org_id, draft)).status_code == 404
    tenant, _cid, invoice = billed_document(db, clock, "bg")
    note = issue_credit_note(
        db,
        clock,
        tenant.org_id,
        invoice,
        mode="amount",
        amount=Decimal("1"),
        reason="goodwill",
        disposition="reduce_due",
    )
    assert client.get(link_of(db, clock, tenant.org_id, note)).status_code == 404
    assert client.get(link_of(db, clock, tenant.org_id, invoice)).status_code == 200


def test_state_is_bound_to_its_invoice_and_expires(
    db: Database, clock: FixedClock, client: TestClient, gateway: GatewayProcess
) -> None:
    tenant, cid, first = billed_document(db, clock, "us")
    _t, _c, second = billed_document(db, clock, tenant=tenant)
    link_first = link_of(db, clock, tenant.org_id, first)
    link_second = link_of(db, clock, tenant.org_id, second)
    state_second = card_form(client.get(link_second).text).fields["state"]  # type: ignore[union-attr]
    page_first = client.get(link_first).text
    state_first = card_form(page_first).fields["state"]  # type: ignore[union-attr]
    tampered = state_first[:-2] + ("AA" if not state_first.endswith("AA") else "BB")
    token = gateway.tokenise(cards.SUCCESS)
    for state in (tampered, state_second, "", "1.2.3"):
        r = client.get(f"{link_first}/return", params={"state": state, "token": token})
        assert r.status_code == 400, state
        assert r.headers["cache-control"] == "no-store"
        assert f'href="{link_first}"' in r.text  # back to the page, to start again
    # A token brought back through another invoice's form is refused the same way.
    back = pay_with(client, page_first, cards.SUCCESS, state=state_second)
    assert back.status_code == 400
    clock.advance(timedelta(minutes=31))
    r = client.get(f"{link_first}/return", params={"state": state_first, "token": token})
    assert r.status_code == 400
    assert _count(db, t.payment_attempts, document_id=first) == 0
    assert _count(db, t.payment_methods, customer_id=cid) == 0
    assert _doc(db, first)["status"] == "open"
    # A state issued now, with the same token, pays the invoice.
    fresh = issue_state(link_secret(db, clock, None), first, clock.now())
    ok = client.get(f"{link_first}/return", params={"state": fresh, "token": token}, follow_redirects=False)
    assert ok.status_code == 303
    assert _doc(db, first)["status"] == "paid"


def test_replaying_the_return_never_charges_twice(
    db: Database, clock: FixedClock, client: TestClient, gateway: GatewayProcess
) -> None:
    tenant, _cid, doc_id = billed_document(db, clock, "us")
    path = link_of(db, clock, tenant.org_id, doc_id)
    form = card_form(client.get(path).text)
    assert form is not None
    token = gateway.tokenise(cards.SUCCESS)
    params = {"state": form.fields["state"], "token": token}
    first = client.get(f"{path}/return", params=params, follow_redirects=False)
    second = client.get(f"{path}/return", params=params, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert second.headers["location"] == f"{path}#pay"  # nothing left to charge: the page shows it paid
    assert _count(db, t.payment_attempts, document_id=doc_id) == 1
    with db.read() as conn:
        charge_id = conn.execute(
            select(t.payment_attempts.c.provider_charge_id).where(t.payment_attempts.c.document_id == doc_id)
        ).scalar_one()
    ledger = gateway.ledger()
    assert [c["id"] for c in ledger["charges"] if c["id"] == charge_id] == [charge_id]  # type: ignore[attr-defined]


def test_results_only_show_what_fiscus_sealed_for_this_document(
    db: Database, clock: FixedClock, client: TestClient
) -> None:
    tenant, _cid, first = billed_document(db, clock, "us")
    _t, _c, second = billed_document(db, clock, tenant=tenant)
    path = link_of(db, clock, tenant.org_id, first)
    secret = link_secret(db, clock, None)
    planted = {"e": "invalid_cvc", "m": "Call +1 555 0100 to pay by phone"}
    for result in (
        seal_result(secret, second, planted),  # sealed for another invoice
        seal_result(secret, first, planted)[:-3] + "abc",  # tampered
        "eyJlIjoieCIsIm0iOiJwaG9uZSJ9",  # unsigned
    ):
        html = client.get(path, params={"result": result}).text
        assert "555 0100" not in html
        assert _notice(html) is None
        assert card_form(html) is not None
    genuine = client.get(path, params={"result": seal_result(secret, first, planted)}).text
    assert "555 0100" in genuine


def test_unknown_outcome_shows_confirming_until_the_janitor_settles(
    db: Database, clock: FixedClock, client: TestClient, gateway: GatewayProcess
) -> None:
    tenant, _cid, doc_id = billed_document(db, clock, "us")
    path = link_of(db, clock, tenant.org_id, doc_id)
    back = pay_with(client, client.get(path).text, cards.TIMEOUT)  # the gateway answers after our timeout
    assert back.status_code == 303
    html = follow(client, back.headers["location"]).text
    assert _notice(html) == "confirming"
    assert '<meta http-equiv="refresh" content="5">' in html
    assert card_form(html) is None  # no second payment while the first is unsettled
    assert _doc(db, doc_id)["status"] == "open"
    clock.advance(timedelta(minutes=5))
    assert settle_unknown(db, clock, gateway.provider()) == 1
    settled = follow(client, back.headers["location"]).text
    assert _notice(settled) == "paid"
    assert "http-equiv" not in settled


def test_paying_a_proforma_shows_the_invoice_it_became(
    db: Database, clock: FixedClock, client: TestClient
) -> None:
    tenant, _cid, proforma = billed_document(db, clock, "bg", document=DocumentType.PROFORMA)
    assert _doc(db, proforma)["type"] == "proforma"
    path = link_of(db, clock, tenant.org_id, proforma)
    html = _paid_through_page(client, path, cards.SUCCESS)
    with db.read() as conn:
        invoice = (
            conn.execute(select(t.documents).where(t.documents.c.converted_from_id == proforma))
            .mappings()
            .one()
        )
    assert invoice["status"] == "paid"
    assert _doc(db, proforma)["status"] == "converted"
    assert _notice(html) == "paid"
    assert _testid(html, "receipt-invoice") == invoice["number"]
    assert invoice["number"] in html


def test_without_payments_configured_the_page_has_no_form(db: Database, clock: FixedClock) -> None:
    tenant, _cid, doc_id = billed_document(db, clock, "us")
    with TestClient(make_app(db, clock)) as plain:
        r = plain.get(link_of(db, clock, tenant.org_id, doc_id))
        assert r.status_code == 200
        assert card_form(r.text) is None
        assert _notice(r.text) == "info"
        assert "Card payment is not available" in r.text
        assert "form-action 'self';" in r.headers["content-security-policy"]


def test_no_card_number_reaches_fiscus(
    db: Database,
    clock: FixedClock,
    client: TestClient,
    gateway: GatewayProcess,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    tenant, _cid, doc_id = billed_document(db, clock, "us")
    path = link_of(db, clock, tenant.org_id, doc_id)
    numbers = [cards.DO_NOT_HONOR, cards.SUCCESS]
    pages = [_paid_through_page(client, path, n) for n in numbers]
    dumped: list[str] = []
    with db.read() as conn:
        for table in t.metadata.sorted_tables:
            dumped.extend(str(row) for row in conn.execute(select(table)))
    text = "\n".join([*dumped, *pages, caplog.text, *capfd.readouterr()])
    for number in numbers:
        assert number not in text
        assert " ".join(re.findall("....", number)) not in text


def test_void_and_authorised_documents_show_their_state_without_a_form(
    db: Database, clock: FixedClock, client: TestClient
) -> None:
    tenant, _cid, voided = billed_document(db, clock, "us")
    void_document(db, clock, tenant.org_id, voided)
    html = client.get(link_of(db, clock, tenant.org_id, voided)).text
    assert _notice(html) == "info"
    assert "voided" in html
    assert card_form(html) is None
    _t, _c, held = billed_document(db, clock, tenant=tenant)
    update_payment_settings(db, clock, tenant.org_id, capture_mode="authorize")
    page = _paid_through_page(client, link_of(db, clock, tenant.org_id, held), cards.SUCCESS)
    assert _notice(page) == "authorized"
    assert card_form(page) is None
    assert _doc(db, held)["status"] == "open"
