"""The portal's newer parts over HTTP, on both databases: a customer's current usage per metric and
group (the same figures as `GET /api/v1/customers/{id}/usage`) and the next invoice with it, keyset
pages through documents, payments and subscriptions, and the use cases' errors in the customer's language."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from fiscus.services.documents import mark_paid
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.portal_settings import update_portal_settings
from fiscus.services.subscriptions import ItemSpec, create_subscription
from fiscus.services.usage_ingest import EventIn, ingest_events
from fiscus.web.portal import paging
from tests.api_support import api_client, auth
from tests.usage_support import usage_world


def _rows(html: str, testid: str) -> list[str]:
    return re.findall(rf'data-testid="{testid}"[^>]*data-id="(\d+)"', html)


def _sign_in(client: TestClient, customer: int, key: str, locale: str) -> None:
    made = client.post(
        f"/api/v1/customers/{customer}/portal_sessions", json={"locale": locale}, headers=auth(key)
    )
    assert made.status_code == 201, made.text
    assert client.get(urlsplit(made.json()["url"]).path).status_code == 200


def test_usage_pages_and_errors_in_the_customers_language(
    db: Database, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = usage_world(db, clock, slug="metered")
    key = create_api_key(db, clock, w.org_id).secret
    s = w.start
    events = [
        EventIn(f"bw{i}", "bandwidth", s + timedelta(hours=i), {"gb": "40", "region": r}, w.customer)
        for i, r in enumerate(["eu", "us", "eu"])
    ] + [EventIn(f"api{i}", "api_calls", s + timedelta(minutes=i), {}, w.customer) for i in range(30)]
    clock.set(s + timedelta(hours=4))
    ingest_events(db, clock, w.org_id, events)
    clock.set(s + timedelta(days=3))
    update_portal_settings(db, clock, w.org_id, {"allow_quantity_change": True, "allow_cancel": True})
    # Four more documents, three paid by hand: lists longer than a (shrunk) page.
    docs = []
    for n in range(4):
        order = create_order(db, clock, w.org_id, w.customer, [ItemSpec(w.tenant.one_off, n + 1)])
        docs.append(bill_order_now(db, clock, w.org_id, order))
    for doc in docs[:3]:
        mark_paid(db, clock, w.org_id, doc)
    monkeypatch.setattr(paging, "PAGE_SIZE", 2)

    with api_client(db, clock) as client:
        api = client.get(
            f"/api/v1/customers/{w.customer}/usage",
            params={"subscription": w.subscription},
            headers=auth(key),
        ).json()
        _sign_in(client, w.customer, key, "en")

        # Usage: one row per metric and group, the API's amounts; the next invoice adds it.
        page = client.get("/portal/metered/subscriptions")
        assert page.status_code == 200
        shown = {
            (code, group): amount
            for code, group, amount in re.findall(
                r'data-testid="usage-row" data-code="([^"]*)" data-group="([^"]*)" data-amount="([^"]*)"',
                page.text,
            )
        }
        expected = {(c["metric_code"], c["group"]): c["amount"] for c in api["charges"]}
        assert shown == expected
        assert ("bandwidth", "eu") in shown
        assert ("api_calls", "") in shown
        assert "Bandwidth" in page.text
        assert "API calls" in page.text
        assert "plus usage so far" in page.text

        # Subscriptions page too: two more make a second page, which holds the metered one.
        for _ in range(2):
            create_subscription(db, clock, w.org_id, w.customer, [ItemSpec(w.tenant.monthly, 1)])
        first_page = client.get("/portal/metered/subscriptions").text
        assert first_page.count('data-testid="subscription"') == 2
        older = re.search(r'href="([^"]+)" data-testid="older"', first_page)
        assert older is not None
        second = client.get(older.group(1)).text
        assert re.findall(r'data-testid="subscription" data-id="(\d+)"', second) == [str(w.subscription)]

        # Documents, two a page, newest first: older pages until the first, newer back again.
        seen: list[str] = []
        url = "/portal/metered"
        pages = []
        while url:
            html = client.get(url).text
            ids = _rows(html, "document-row")
            assert 1 <= len(ids) <= 2
            pages.append(ids)
            seen += ids
            older = re.search(r'href="([^"]+)" data-testid="older"', html)
            url = older.group(1).replace("&amp;", "&") if older else ""
        assert seen == sorted(seen, key=int, reverse=True)
        assert len(seen) == len(set(seen)) == 4  # the four orders (the subscription is not billed yet)
        newer = re.search(r'href="([^"]+)" data-testid="newer"', html)
        assert newer is not None
        assert _rows(client.get(newer.group(1)).text, "document-row") == pages[-2]
        assert client.get("/portal/metered?after=zzz").status_code == 200  # a bad cursor: the first page

        payments = client.get("/portal/metered/payments").text
        assert payments.count('data-testid="payment-row"') == 2
        older = re.search(r'href="([^"]+)" data-testid="older"', payments)
        assert older is not None
        assert client.get(older.group(1)).text.count('data-testid="payment-row"') == 1

        # Errors come out in the customer's language, never the use case's English.
        _sign_in(client, w.customer, key, "bg")
        csrf = client.cookies.get("fiscus_portal_csrf")
        bad = client.post("/portal/metered/account", data={"csrf_token": csrf, "email": "nope"})
        assert bad.status_code == 422
        assert "Моля, въведете валиден адрес на е-поща." in bad.text
        assert "is not an email address" not in bad.text
        vat = client.post("/portal/metered/account", data={"csrf_token": csrf, "vat_id": "BG1"})
        assert vat.status_code == 422
        assert "Това не е валиден ДДС номер" in vat.text
        qty = client.post(
            f"/portal/metered/subscriptions/{w.subscription}/change",
            data={"csrf_token": csrf, "quantity": "0"},
        )
        assert qty.status_code == 422
        assert "цяло число от 1 до 10 000" in qty.text
        assert "must be a whole number" not in qty.text
        cancel = client.post(
            f"/portal/metered/subscriptions/{w.subscription}/cancel",
            data={"csrf_token": csrf, "reason": "", "comment": ""},
        )
        assert cancel.status_code == 422
        assert "Моля, изберете причина." in cancel.text
        assert "choose a reason" not in cancel.text
        # A card the gateway refused: its code in Bulgarian; anything else in the query is not echoed.
        refused = client.get("/portal/metered/payment-methods", params={"error": "insufficient_funds"})
        assert "Недостатъчна наличност по картата." in refused.text
        odd = client.get("/portal/metered/payment-methods", params={"error": "Card refused by bank XYZ"})
        assert 'data-testid="card-error"' in odd.text
        assert "bank XYZ" not in odd.text
