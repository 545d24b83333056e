"""Portal access at the service level, on both databases: one-time session links, magic-link login
(same answer for unknown emails, single use, 15 minutes, rate limits), sessions bound to one customer of
one organisation, and the portal settings that gate plan changes and cancellation."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_portal as tp
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_email import email_outbox
from fiscus.domain.clock import FixedClock
from fiscus.domain.errors import InvalidFieldError, NotFoundError
from fiscus.services import portal as svc
from fiscus.services import portal_actions as actions
from fiscus.services.access import create_api_key
from fiscus.services.portal_settings import update_portal_settings
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.api_support import api_client, auth
from tests.builders import make_customer, make_tenant


def _messages(db: Database) -> list[dict[str, object]]:
    """The login emails queued in the email outbox (kind `portal_login`), the link's URL in their data."""
    with db.read() as conn:
        rows = conn.execute(
            select(email_outbox).where(email_outbox.c.kind == "portal_login").order_by(email_outbox.c.id)
        ).mappings()
        return [{**r, "url": r["data"]["url"], "expires_at": r["data"]["expires_at"]} for r in rows]


def test_a_session_link_opens_one_session_once_for_its_organisation(db: Database, clock: FixedClock) -> None:
    shop = make_tenant(db, clock, "us", slug="shop")
    other = make_tenant(db, clock, "bg", slug="other")
    alice = make_customer(db, clock, shop, 1)
    with pytest.raises(NotFoundError):  # another organisation's customer id
        svc.create_session_link(db, clock, other.org_id, alice)

    link = svc.create_session_link(db, clock, shop.org_id, alice, return_url="https://app.example/account")
    assert link.path.startswith("/portal/shop/session/")
    assert link.expires_at == clock.now() + timedelta(hours=1)
    assert svc.open_link(db, clock, "other", link.token) is None  # another organisation's portal
    opened = svc.open_link(db, clock, "shop", link.token)
    assert opened is not None
    assert (opened.session.organization_id, opened.session.customer_id) == (shop.org_id, alice)
    assert opened.session.return_url == "https://app.example/account"
    assert svc.open_link(db, clock, "shop", link.token) is None  # single use
    assert svc.session_of(db, clock, "shop", opened.secret) == opened.session
    assert svc.session_of(db, clock, "other", opened.secret) is None

    # A second login from the same browser rotates the session: the old cookie opens nothing.
    again = svc.open_link(
        db,
        clock,
        "shop",
        svc.create_session_link(db, clock, shop.org_id, alice).token,
        previous_secret=opened.secret,
    )
    assert again is not None
    assert again.secret != opened.secret
    assert svc.session_of(db, clock, "shop", opened.secret) is None
    assert svc.session_of(db, clock, "shop", again.secret) is not None

    late = svc.create_session_link(db, clock, shop.org_id, alice)
    clock.advance(timedelta(hours=1, seconds=1))
    assert svc.open_link(db, clock, "shop", late.token) is None  # expired before it was opened
    clock.advance(svc.SESSION_TTL)
    assert svc.session_of(db, clock, "shop", again.secret) is None  # the session ran out
    svc.end_session(db, clock, again.secret)
    with db.read() as conn:
        stored = conn.execute(select(tp.portal_links.c.token_hash)).scalars().all()
    assert link.token not in stored  # only hashes are kept


def test_a_login_link_is_queued_only_for_a_known_email_and_works_once_for_15_minutes(
    db: Database, clock: FixedClock
) -> None:
    shop = make_tenant(db, clock, "us", slug="shop")
    alice = make_customer(db, clock, shop, 1, email="Alice@Example.com", locale="bg")
    base = "https://billing.example"
    svc.request_login_link(db, clock, "shop", "nobody@example.com", "10.0.0.1", base_url=base)
    assert _messages(db) == []  # the same (silent) answer, and nothing sent
    svc.request_login_link(db, clock, "shop", "  alice@example.COM ", "10.0.0.1", base_url=base)
    [message] = _messages(db)
    expected = (alice, "Alice@Example.com", "queued")
    assert (message["customer_id"], message["recipient"], message["status"]) == expected
    assert str(message["message_key"]).startswith("portal_login:portal_link:")  # one message per link
    url = str(message["url"])
    assert url.startswith(f"{base}/portal/shop/session/")
    assert message["expires_at"] == (clock.now() + timedelta(minutes=15)).isoformat()
    token = url.rsplit("/", 1)[1]
    assert svc.link_purpose(db, clock, "shop", token) == "login"
    assert svc.link_purpose(db, clock, "shop", token) == "login"  # reading it spends nothing
    assert svc.open_link(db, clock, "other-org", token) is None
    clock.advance(timedelta(minutes=14))
    opened = svc.open_link(db, clock, "shop", token)
    assert opened is not None
    assert opened.session.customer_id == alice
    assert svc.open_link(db, clock, "shop", token) is None

    svc.request_login_link(db, clock, "shop", "alice@example.com", "10.0.0.2", base_url=base)
    expired = str(_messages(db)[-1]["url"]).rsplit("/", 1)[1]
    clock.advance(timedelta(minutes=15, seconds=1))
    assert svc.open_link(db, clock, "shop", expired) is None
    with pytest.raises(InvalidFieldError):
        svc.request_login_link(db, clock, "shop", "not an address", "10.0.0.1", base_url=base)
    with db.read() as conn:  # never a webhook: the business's outbox holds no login link
        events = conn.execute(select(t.outbox_events.c.payload)).scalars().all()
    assert not any("/portal/" in str(e) for e in events)


def test_login_links_are_rate_limited_per_email_and_per_address(db: Database, clock: FixedClock) -> None:
    make_tenant(db, clock, "us", slug="shop")
    for n in range(svc.LOGINS_PER_EMAIL):
        svc.request_login_link(db, clock, "shop", "x@example.com", f"10.0.0.{n}", base_url="http://h")
    with pytest.raises(svc.LoginRateLimitedError) as limited:
        svc.request_login_link(db, clock, "shop", "x@example.com", "10.0.1.1", base_url="http://h")
    assert 0 < limited.value.retry_after <= 3600
    for n in range(svc.LOGINS_PER_ADDRESS - 1):  # one request from 10.0.0.0 is already counted
        svc.request_login_link(db, clock, "shop", f"y{n}@example.com", "10.0.0.0", base_url="http://h")
    with pytest.raises(svc.LoginRateLimitedError):
        svc.request_login_link(db, clock, "shop", "z@example.com", "10.0.0.0", base_url="http://h")
    clock.advance(svc.LOGIN_WINDOW + timedelta(seconds=1))
    svc.request_login_link(db, clock, "shop", "x@example.com", "10.0.0.0", base_url="http://h")


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:text/html,x",
        "/relative",
        "https://user:pw@evil.example/",
        "https://a b",
        "ftp://x",
        "https://" + "a" * 2048,
        "http://[",  # urlsplit raises "Invalid IPv6 URL": a 422 naming the field, never a 500
        "https://[::1]/",
        "https://a:65536/",
        "https://a/%zz",
        "https://a/<script>",
    ],
)
def test_a_return_url_must_be_a_plain_http_url(url: str) -> None:
    with pytest.raises(InvalidFieldError) as refused:
        svc.check_return_url(url)
    assert refused.value.field == "return_url"


@pytest.mark.parametrize("url", ["https://app.example/account?x=1#top", "HTTP://10.0.0.1:8080/%20back"])
def test_a_return_url_the_document_allows_is_taken(url: str) -> None:
    assert svc.RETURN_URL.match(url)
    assert svc.check_return_url(url) == url


def test_plan_changes_and_cancelling_follow_the_portal_settings(db: Database, clock: FixedClock) -> None:
    shop = make_tenant(db, clock, "us", slug="shop")
    alice, bob = make_customer(db, clock, shop, 1), make_customer(db, clock, shop, 2)
    sub = create_subscription(db, clock, shop.org_id, alice, [ItemSpec(shop.monthly, 1)])
    bobs = create_subscription(db, clock, shop.org_id, bob, [ItemSpec(shop.monthly, 1)])
    opened = svc.open_link(db, clock, "shop", svc.create_session_link(db, clock, shop.org_id, alice).token)
    assert opened is not None
    session = opened.session
    with pytest.raises(actions.PortalActionNotAllowedError):
        actions.change_plan(db, clock, session, sub, shop.monthly_big, Decimal(1), preview=True)
    with pytest.raises(actions.PortalActionNotAllowedError):
        actions.cancel_at_period_end(db, clock, session, sub, "too_expensive")
    update_portal_settings(
        db, clock, shop.org_id, {"allow_plan_change": True, "allow_cancel": True, "plans": [shop.monthly_big]}
    )
    with pytest.raises(NotFoundError):  # another customer's subscription is not there at all
        actions.change_plan(db, clock, session, bobs, shop.monthly_big, Decimal(1), preview=True)
    with pytest.raises(actions.PortalActionNotAllowedError):  # quantity changes stay off
        actions.change_plan(db, clock, session, sub, shop.monthly, Decimal(3), preview=True)
    with pytest.raises(InvalidFieldError):  # a plan that is not offered
        actions.change_plan(db, clock, session, sub, shop.yearly, Decimal(1), preview=True)
    assert actions.next_invoice(db, session, sub) is not None
    actions.change_plan(db, clock, session, sub, shop.monthly_big, Decimal(1), preview=False)
    actions.cancel_at_period_end(db, clock, session, sub, "other", "moving to a spreadsheet")
    with db.read() as conn:
        item = conn.execute(
            select(t.subscription_items.c.price_id).where(t.subscription_items.c.subscription_id == sub)
        ).scalar_one()
        row = conn.execute(select(t.subscriptions).where(t.subscriptions.c.id == sub)).mappings().one()
        actors = conn.execute(
            select(t.audit_events.c.actor, t.audit_events.c.after).where(
                t.audit_events.c.entity_type == "subscription", t.audit_events.c.entity_id == sub
            )
        ).all()
    assert item == shop.monthly_big
    assert row["cancel_at"] is not None
    assert {a.actor for a in actors if a.actor.startswith("portal:")} == {f"portal:customer:{alice}"}
    assert any((a.after or {}).get("cancellation_reason") == "other: moving to a spreadsheet" for a in actors)
    with pytest.raises(NotFoundError):
        actions.cancel_at_period_end(db, clock, session, bobs, "unused")


def test_a_brand_colour_is_used_only_where_white_text_stays_readable() -> None:
    from fiscus.web.portal.common import brand_css

    assert "--accent: #7b1fa2" in brand_css("#7b1fa2")  # purple: white on it is 4.5:1 or better
    assert "--accent: #0b57d0" in brand_css("#ffd700")  # gold: white text would be illegible
    assert "--accent: #0b57d0" in brand_css(None)


def test_the_portal_api_refuses_what_its_document_refuses_and_409s_a_one_off_plan(
    db: Database, clock: FixedClock
) -> None:
    shop = make_tenant(db, clock, "bg", slug="shop")
    alice = make_customer(db, clock, shop, 1)
    headers = auth(create_api_key(db, clock, shop.org_id).secret)
    with api_client(db, clock) as client:
        bad_url = client.post(
            f"/api/v1/customers/{alice}/portal_sessions", json={"return_url": "http://["}, headers=headers
        )
        assert bad_url.status_code == 422, bad_url.text
        assert bad_url.json()["errors"][0]["pointer"] == "/body/return_url"
        url = "/api/v1/portal/configuration"
        null_flag = client.post(url, json={"allow_plan_change": None}, headers=headers)
        assert null_flag.status_code == 422
        assert null_flag.json()["errors"][0]["field"] == "allow_plan_change"
        one_off = client.post(url, json={"plans": [shop.one_off]}, headers=headers)
        assert one_off.status_code == 409, one_off.text
        assert one_off.json()["code"] == "field_conflict"
        assert one_off.json()["errors"][0]["pointer"] == "/body/plans/0"
        taken = client.post(url, json={"plans": [shop.monthly], "brand_color": None}, headers=headers)
        assert taken.status_code == 200
        assert taken.json()["plans"] == [shop.monthly]
