"""The portal over HTTP without a browser, on both databases: the API's session link signs one customer
in (a cookie, HttpOnly, SameSite=Lax, scoped to the organisation's portal), another customer's or
organisation's documents, subscriptions and cards are 404, a form posted without its CSRF token changes
nothing, and the session API is strict about its input."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import insert, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_email import email_outbox
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from fiscus.services.portal_settings import update_portal_settings
from tests.api_support import api_client, auth
from tests.pages.support import billed_document


def _card(db: Database, clock: FixedClock, org_id: int, customer_id: int, last4: str) -> int:
    """A card as the gateway would have tokenised it (the provider is not needed to list one)."""
    now = clock.now()
    with db.write() as conn:
        return int(
            conn.execute(
                insert(t.payment_methods)
                .values(
                    organization_id=org_id,
                    customer_id=customer_id,
                    type="card",
                    network="visa",
                    provider="test",
                    provider_token=f"tok_{org_id}_{customer_id}_{last4}",
                    brand="visa",
                    last4=last4,
                    exp_month=12,
                    exp_year=2099,
                    status="active",
                    created_at=now,
                    updated_at=now,
                )
                .returning(t.payment_methods.c.id)
            ).scalar_one()
        )


def test_a_portal_session_sees_only_its_customer(db: Database, clock: FixedClock) -> None:
    shop, alice, alice_doc = billed_document(db, clock, "us", slug="shop", locale="en")
    _, bob, bob_doc = billed_document(db, clock, tenant=shop)
    other, carol, carol_doc = billed_document(db, clock, "bg", slug="other", locale="bg")
    key = create_api_key(db, clock, shop.org_id).secret
    other_key = create_api_key(db, clock, other.org_id).secret
    update_portal_settings(db, clock, shop.org_id, {"allow_cancel": True})
    update_portal_settings(db, clock, other.org_id, {"allow_cancel": True})
    bob_card, carol_card = (
        _card(db, clock, shop.org_id, bob, "1111"),
        _card(db, clock, other.org_id, carol, "2222"),
    )
    with db.read() as conn:
        subs = dict(conn.execute(select(t.subscriptions.c.customer_id, t.subscriptions.c.id)).all())
    with api_client(db, clock) as client:
        # The API is strict: a javascript: URL, an unknown field, another organisation's customer.
        bad = client.post(
            f"/api/v1/customers/{alice}/portal_sessions",
            json={"return_url": "javascript:alert(1)"},
            headers=auth(key),
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert (
            client.post(
                f"/api/v1/customers/{alice}/portal_sessions", json={"x": 1}, headers=auth(key)
            ).status_code
            == 422
        )
        assert (
            client.post(f"/api/v1/customers/{carol}/portal_sessions", json={}, headers=auth(key)).status_code
            == 404
        )

        made = client.post(
            f"/api/v1/customers/{alice}/portal_sessions",
            json={"return_url": "https://app.example/billing", "locale": "en"},
            headers=auth(key),
        )
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["object"] == "portal_session"
        assert body["return_url"] == "https://app.example/billing"
        path = urlsplit(body["url"]).path
        assert (
            client.get("/portal/shop", follow_redirects=False).status_code == 303
        )  # not signed in: to the sign-in form
        opened = client.get(path, follow_redirects=False)
        assert opened.status_code == 303
        assert opened.headers["location"] == "/portal/shop"
        cookie = opened.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Path=/portal/shop" in cookie
        assert client.get(path, follow_redirects=False).status_code == 404  # used

        home = client.get("/portal/shop")
        assert home.status_code == 200
        assert f'data-id="{alice_doc}"' in home.text
        assert f'data-id="{bob_doc}"' not in home.text
        assert "default-src 'none'" in home.headers["content-security-policy"]
        assert "<script" not in home.text
        assert client.get(f"/portal/shop/documents/{alice_doc}").status_code == 200
        for url in (
            f"/portal/shop/documents/{bob_doc}",
            f"/portal/shop/documents/{bob_doc}/pdf",
            f"/portal/shop/documents/{carol_doc}",
            f"/portal/shop/subscriptions/{subs[bob]}/cancel",
            f"/portal/shop/subscriptions/{subs[carol]}/change",
        ):
            assert client.get(url).status_code == 404, url
        csrf = client.cookies.get("fiscus_portal_csrf")
        assert csrf
        for card in (bob_card, carol_card):
            r = client.post(f"/portal/shop/payment-methods/{card}/default", data={"csrf_token": csrf})
            assert r.status_code == 404
        r = client.post(
            f"/portal/shop/subscriptions/{subs[bob]}/cancel", data={"csrf_token": csrf, "reason": "unused"}
        )
        assert r.status_code == 404
        # The session is for this organisation's portal only.
        assert client.get("/portal/other", follow_redirects=False).status_code == 303

        # No CSRF token (or another's): refused, nothing changed.
        assert (
            client.post(
                f"/portal/shop/subscriptions/{subs[alice]}/cancel", data={"reason": "unused"}
            ).status_code
            == 403
        )
        forged = client.post(
            f"/portal/shop/subscriptions/{subs[alice]}/cancel",
            data={"reason": "unused", "csrf_token": "1.2.3"},
        )
        assert forged.status_code == 403
        assert (
            client.get(f"/api/v1/subscriptions/{subs[alice]}", headers=auth(key)).json()["cancel_at"] is None
        )
        done = client.post(
            f"/portal/shop/subscriptions/{subs[alice]}/cancel",
            data={"reason": "unused", "csrf_token": csrf},
            follow_redirects=False,
        )
        assert done.status_code == 303
        assert (
            client.get(f"/api/v1/subscriptions/{subs[alice]}", headers=auth(key)).json()["cancel_at"]
            is not None
        )
        assert (
            client.get(f"/api/v1/subscriptions/{subs[carol]}", headers=auth(other_key)).json()["cancel_at"]
            is None
        )

        # Billing details: the VAT ID is checked as the API checks it; a good change shows in the API.
        bad_vat = client.post("/portal/shop/account", data={"csrf_token": csrf, "vat_id": "!!"})
        assert bad_vat.status_code == 422
        assert 'aria-invalid="true"' in bad_vat.text
        saved = client.post(
            "/portal/shop/account", data={"csrf_token": csrf, "city": "Portland"}, follow_redirects=False
        )
        assert saved.status_code == 303
        assert (
            client.get(f"/api/v1/customers/{alice}", headers=auth(key)).json()["address"]["city"]
            == "Portland"
        )

        assert (
            client.post("/portal/shop/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code
            == 303
        )
        assert client.get("/portal/shop", follow_redirects=False).status_code == 303

        # Magic link: the same answer for a known and an unknown email; only the known one is queued.
        form = client.get("/portal/shop/login")
        assert form.status_code == 200
        token = client.cookies.get("fiscus_portal_csrf")
        known = client.post("/portal/shop/login", data={"csrf_token": token, "email": "buyer0@example.com"})
        unknown = client.post("/portal/shop/login", data={"csrf_token": token, "email": "nobody@example.com"})
        assert known.status_code == unknown.status_code == 200
        assert known.text == unknown.text
        assert client.post("/portal/shop/login", data={"email": "buyer0@example.com"}).status_code == 403
        with db.read() as conn:
            queued = [
                str(data["url"])
                for data in conn.execute(
                    select(email_outbox.c.data).where(email_outbox.c.kind == "portal_login")
                ).scalars()
            ]
        assert len(queued) == 1
        # A login link's GET only shows a button (a mail scanner fetching it spends nothing).
        link_path = urlsplit(queued[0]).path
        shown = client.get(link_path, follow_redirects=False)
        assert shown.status_code == 200
        assert 'data-testid="continue"' in shown.text
        assert client.post(link_path, data={}, follow_redirects=False).status_code == 403
        login = client.post(
            link_path, data={"csrf_token": client.cookies.get("fiscus_portal_csrf")}, follow_redirects=False
        )
        assert login.status_code == 303
        assert client.get(link_path, follow_redirects=False).status_code == 404  # used
        assert client.get("/portal/shop").status_code == 200

        # The organisation's colour reaches the page (pinned in the CSP with the rest of the style).
        update_portal_settings(db, clock, shop.org_id, {"brand_color": "#7b1fa2"})
        branded = client.get("/portal/shop")
        assert "--accent: #7b1fa2" in branded.text

        # A session asked for in Bulgarian shows the portal in Bulgarian.
        bg = client.post(
            f"/api/v1/customers/{alice}/portal_sessions", json={"locale": "bg"}, headers=auth(key)
        )
        client.get(urlsplit(bg.json()["url"]).path)
        page = client.get("/portal/shop/subscriptions")
        assert '<html lang="bg">' in page.text
        assert "Абонаменти" in page.text
