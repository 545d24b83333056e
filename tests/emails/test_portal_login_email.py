"""A portal login link really arrives by email (both databases): asked for on `/portal/{org}/login` of a
live server, queued in the email outbox, sent by the worker's delivery through the real SMTP sink, and
opened from the received message with httpx: a portal session, once. An unknown address gets the same
page and no email."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_email import email_outbox
from fiscus.config import Settings
from fiscus.domain.clock import FixedClock
from fiscus.services.emails.delivery import send_due
from fiscus.services.emails.outlet import build_outlet
from tests.api_support import free_port, live_server, make_app
from tests.builders import make_customer, make_tenant
from tests.emails.support import SmtpSink, smtp_sink


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpSink]:
    with smtp_sink(tmp_path_factory.mktemp("smtp-login")) as s:
        yield s


def _csrf(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200
    token = client.cookies.get("fiscus_portal_csrf")
    assert token
    return str(token)


def test_a_login_link_is_emailed_and_opens_one_portal_session(
    db: Database, clock: FixedClock, sink: SmtpSink, tmp_path: Path
) -> None:
    sink.clear()
    shop = make_tenant(db, clock, "us", slug="shop")
    make_customer(db, clock, shop, 1, email="Olga@Example.com", locale="ru", name="Ольга")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    outlet = build_outlet(
        db, clock, Settings(smtp_url=sink.url, public_url=base, email_from="billing@fiscus.test")
    )
    assert outlet is not None
    with live_server(make_app(db, clock, public_url=base), port), httpx.Client(base_url=base) as client:
        token = _csrf(client, "/portal/shop/login")
        known = client.post("/portal/shop/login", data={"csrf_token": token, "email": "olga@example.com"})
        unknown = client.post("/portal/shop/login", data={"csrf_token": token, "email": "nobody@example.com"})
        assert known.status_code == unknown.status_code == 200
        assert known.text == unknown.text  # the form reveals nothing
        with db.read() as conn:
            [row] = conn.execute(select(email_outbox)).mappings().all()  # nothing for the unknown one
        assert (row["kind"], row["recipient"], row["document_id"]) == (
            "portal_login",
            "Olga@Example.com",
            None,
        )

        assert send_due(db, clock, outlet).sent == 1
        [message] = sink.messages()
        assert message["To"] == "Olga@Example.com"
        assert message["List-Unsubscribe"] is None  # asked for by the customer, not a newsletter
        assert message["Content-Language"] == "ru"
        assert list(message.iter_attachments()) == []  # no PDF
        text = message.get_body(("plain",))
        assert text is not None
        body = str(text.get_content())
        assert "Ольга" in body
        [link] = re.findall(rf"{re.escape(base)}/portal/shop/session/[A-Za-z0-9_-]+", body)
        with db.read() as conn:  # once sent, the database no longer holds the link
            done = conn.execute(select(email_outbox.c.status, email_outbox.c.data)).one()
        assert done.status == "sent"
        assert "url" not in done.data
        assert link not in str(done.data)

        shown = client.get(link)  # a mail scanner's GET spends nothing: a button to press
        assert shown.status_code == 200
        opened = client.post(
            link, data={"csrf_token": client.cookies.get("fiscus_portal_csrf")}, follow_redirects=False
        )
        assert opened.status_code == 303
        assert client.cookies.get("fiscus_portal")
        assert client.get("/portal/shop").status_code == 200  # signed in
        assert client.get(link).status_code == 404  # single use
        with httpx.Client(base_url=base) as other:  # nor from another browser, with its own CSRF token
            token = _csrf(other, "/portal/shop/login")
            assert other.post(link, data={"csrf_token": token}, follow_redirects=False).status_code == 404
        assert send_due(db, clock, outlet).sent == 0  # sent once

        # A link the worker gets to only after it expired is not sent (and its URL is dropped).
        with httpx.Client(base_url=base) as late_browser:
            token = _csrf(late_browser, "/portal/shop/login")
            asked = late_browser.post(
                "/portal/shop/login", data={"csrf_token": token, "email": "olga@example.com"}
            )
            assert asked.status_code == 200
        clock.advance(timedelta(minutes=16))
        sink.clear()
        assert send_due(db, clock, outlet).sent == 0
        assert sink.messages() == []
        with db.read() as conn:
            late = conn.execute(
                select(email_outbox.c.status, email_outbox.c.data).order_by(email_outbox.c.id.desc()).limit(1)
            ).one()
        assert late.status == "expired"
        assert "url" not in late.data
