"""Customers' emails through a real SMTP server process (aiosmtpd on a free loopback port), on both
databases: the issued invoice's email with the API's PDF, a declined charge's email with the reason and
a working update-card link, a bounced address that stops further mail, and a worker killed with SIGKILL
mid-send whose restart delivers each email exactly once per recipient."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_email import email_outbox, email_suppressions
from fiscus.config import Settings
from fiscus.domain.clock import FixedClock
from fiscus.gateway import cards
from fiscus.services.access import create_api_key
from fiscus.services.billing_run import run_billing
from fiscus.services.emails.delivery import Outlet, send_due
from fiscus.services.emails.outlet import build_outlet
from fiscus.services.emails.preview import preview_email
from fiscus.services.emails.scheduled import queue_scheduled
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.payments.collection import run_collection
from fiscus.services.payments.methods import add_card
from fiscus.services.rendering import DOCUMENTS_DIR_ENV
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.api_support import auth, free_port, live_server, make_app
from tests.builders import make_customer, make_tenant
from tests.emails.support import SmtpSink, smtp_sink
from tests.pages.support import PUBLIC_URL, card_form, fill_card
from tests.payments_support import GatewayProcess, gateway_process


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpSink]:
    with smtp_sink(tmp_path_factory.mktemp("smtp")) as s:
        yield s


@pytest.fixture
def mailbox(sink: SmtpSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SmtpSink:
    sink.clear()
    monkeypatch.setenv(DOCUMENTS_DIR_ENV, str(tmp_path / "docs"))
    return sink


def _outlet(db: Database, clock: FixedClock, sink: SmtpSink) -> Outlet:
    outlet = build_outlet(
        db, clock, Settings(smtp_url=sink.url, public_url=PUBLIC_URL, email_from="billing@fiscus.test")
    )
    assert outlet is not None
    return outlet


def _outbox(db: Database) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [dict(r) for r in conn.execute(select(email_outbox).order_by(email_outbox.c.id)).mappings()]


def _parts(message: EmailMessage) -> tuple[str, str, list[EmailMessage]]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    attachments = [p for p in message.iter_attachments() if isinstance(p, EmailMessage)]
    return str(text.get_content()), str(html.get_content()), attachments


def test_issued_invoice_email_carries_the_api_pdf_in_the_customers_language(
    db: Database, clock: FixedClock, mailbox: SmtpSink
) -> None:
    tenant = make_tenant(db, clock, "bg")
    customer = make_customer(db, clock, tenant, locale="bg", email="ivan@example.com", name="Иван Петров")
    create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)])
    run_billing(db, clock)
    [row] = _outbox(db)
    assert (row["kind"], row["status"], row["recipient"]) == ("invoice_issued", "queued", "ivan@example.com")

    summary = send_due(db, clock, _outlet(db, clock, mailbox))
    assert summary.sent == 1
    [message] = mailbox.messages()
    assert message["To"] == "ivan@example.com"
    assert message["Subject"].startswith("Фактура 0000001590")
    assert message["Content-Language"] == "bg"
    assert message["Message-ID"] == _outbox(db)[0]["message_id"]
    assert message["List-Unsubscribe"] is None  # an invoice is owed to the customer, not a newsletter
    assert message.get_content_type() == "multipart/mixed"
    assert message.defects == []
    text, html, [pdf] = _parts(message)
    assert "Здравейте, Иван Петров" in text
    assert "Платете сега" in text
    assert '<html lang="bg">' in html
    assert "Иван Петров" in html
    with TestClient(make_app(db, clock, public_url=PUBLIC_URL)) as api:
        key = create_api_key(db, clock, tenant.org_id).secret
        served = api.get(f"/api/v1/documents/{row['document_id']}/pdf", headers=auth(key))
    assert served.status_code == 200
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == "0000001590.pdf"
    assert pdf.get_content() == served.content
    assert _outbox(db)[0]["status"] == "sent"
    assert send_due(db, clock, _outlet(db, clock, mailbox)).sent == 0  # sent once, never again


RU = ("Имя на карте", "Номер карты", "Месяц (ММ)", "Год (ГГГГ)", "Код безопасности (CVC)")
"""The card form's labels in Russian, the customer's language (the page follows it)."""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("gw"), extra_args=("--timeout-seconds", "3")) as gw:
        yield gw


def test_declined_charge_email_has_the_reason_and_a_working_update_card_link(
    db: Database, clock: FixedClock, mailbox: SmtpSink, gateway: GatewayProcess, chromium: Browser
) -> None:
    tenant = make_tenant(db, clock, "bg")
    customer = make_customer(db, clock, tenant, locale="ru", email="olga@example.com", name="Ольга")
    token = gateway.tokenise(cards.INSUFFICIENT_FUNDS)
    add_card(db, clock, gateway.provider(), tenant.org_id, customer, token=token)
    create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)])
    run_billing(db, clock)
    assert run_collection(db, clock, gateway.provider()).failed == 1
    assert [r["kind"] for r in _outbox(db)] == ["invoice_issued", "payment_failed"]
    failed_doc = _outbox(db)[1]["document_id"]

    assert send_due(db, clock, _outlet(db, clock, mailbox)).sent == 2
    [failed] = [m for m in mailbox.messages() if "не прошла" in m["Subject"]]
    assert failed["List-Unsubscribe"] is not None  # a reminder: one click stops reminders
    text, html, attachments = _parts(failed)
    assert attachments == []
    assert "Причина: На карте недостаточно средств." in text
    assert "Мы попробуем снова 16 января 2026" in text  # the first retry, a day later (customer's zone)
    link = re.search(r"Обновить карту: (\S+)", text)
    assert link is not None
    assert link.group(1) in html
    path = link.group(1).removeprefix(PUBLIC_URL)
    app = make_app(db, clock, gateway_url=gateway.url, public_url=PUBLIC_URL, gateway_timeout_seconds=1.0)
    with TestClient(app) as client:
        page = client.get(path)
    assert page.status_code == 200
    form = card_form(page.text)
    assert form is not None
    assert form.action.startswith(gateway.url)
    # In Chromium: the link opens the card form; a new card pays the invoice the old one could not.
    with live_server(make_app(db, clock, gateway_url=gateway.url)) as base:
        context = chromium.new_context(java_script_enabled=False)
        try:
            tab = context.new_page()
            tab.set_default_timeout(15_000)
            tab.goto(base + path)
            assert tab.locator("[data-testid=card-form]").count() == 1
            fill_card(tab, cards.SUCCESS, RU)
            tab.get_by_role("button").click()
            tab.wait_for_url(re.compile(r"\?result="))
            assert tab.locator("[data-testid=notice]").get_attribute("data-kind") == "paid"
        finally:
            context.close()
    with db.read() as conn:
        status = conn.execute(select(t.documents.c.status).where(t.documents.c.id == failed_doc)).scalar_one()
    assert status == "paid"


def test_a_card_expiring_next_month_is_announced_once(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    tenant = make_tenant(db, clock, "bg")
    customer = make_customer(db, clock, tenant, locale="en")
    token = gateway.tokenise(cards.SUCCESS, exp_month=1, exp_year=2027)
    add_card(db, clock, gateway.provider(), tenant.org_id, customer, token=token)
    december = FixedClock(datetime(2026, 12, 10, 9, 0, tzinfo=UTC))
    assert queue_scheduled(db, FixedClock(datetime(2026, 11, 30, tzinfo=UTC))) == 0  # two months ahead
    assert queue_scheduled(db, december) == 1
    assert queue_scheduled(db, december) == 0
    [row] = _outbox(db)
    assert row["kind"] == "card_expiring"
    with db.read() as conn:
        subject, text, html = preview_email(conn, tenant.org_id, "card_expiring", customer, None)
        slug = conn.execute(
            select(t.organizations.c.slug).where(t.organizations.c.id == tenant.org_id)
        ).scalar_one()
    assert subject == "Your card ending in 4242 expires soon"
    assert "expires at the end of January 2027" in text
    cards_url = f"https://billing.example/portal/{slug}/payment-methods"  # as the dunning emails: a new card
    assert f"Update your card: {cards_url}" in text
    assert f'<a href="{cards_url}"' in html


def test_a_bounced_address_gets_no_further_mail(db: Database, clock: FixedClock, mailbox: SmtpSink) -> None:
    tenant = make_tenant(db, clock, "us")
    customer = make_customer(db, clock, tenant, email="bounce-me@example.com")
    first = create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, 1)])
    bill_order_now(db, clock, tenant.org_id, first)
    summary = send_due(db, clock, _outlet(db, clock, mailbox))
    assert (summary.sent, summary.bounced) == (0, 1)
    [row] = _outbox(db)
    assert row["status"] == "bounced"
    assert "550" in (row["last_error"] or "")
    with db.read() as conn:
        suppressed = conn.execute(select(email_suppressions.c.address, email_suppressions.c.reason)).all()
    assert [tuple(s) for s in suppressed] == [("bounce-me@example.com", "bounced")]

    second = create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, 2)])
    bill_order_now(db, clock, tenant.org_id, second)
    assert [r["status"] for r in _outbox(db)] == ["bounced", "suppressed"]
    assert send_due(db, clock, _outlet(db, clock, mailbox)).sent == 0
    assert mailbox.messages() == []


def test_an_unreachable_server_is_retried_with_backoff(
    db: Database, clock: FixedClock, mailbox: SmtpSink
) -> None:
    tenant = make_tenant(db, clock, "us")
    customer = make_customer(db, clock, tenant)
    bill_order_now(
        db,
        clock,
        tenant.org_id,
        create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, 1)]),
    )
    down = SmtpSink(free_port(), mailbox.directory, mailbox.process)  # nothing listens there
    assert send_due(db, clock, _outlet(db, clock, down)).retried == 1
    [row] = _outbox(db)
    assert (row["status"], row["attempts"]) == ("queued", 1)
    assert row["next_attempt_at"] == clock.now() + timedelta(minutes=1)
    assert send_due(db, clock, _outlet(db, clock, mailbox)).sent == 0  # not due yet
    later = FixedClock(clock.now() + timedelta(minutes=1))
    assert send_due(db, later, _outlet(db, later, mailbox)).sent == 1
    assert len(mailbox.messages()) == 1


def _worker(db_url: str, sink: SmtpSink, docs: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FISCUS_DATABASE_URL": db_url,
        "FISCUS_SMTP_URL": sink.url,
        "FISCUS_EMAIL_LEASE_SECONDS": "3",
        "FISCUS_WORKER_PAUSE_SECONDS": "0.1",  # the restarted worker comes round as soon as the lease ends
        "FISCUS_PUBLIC_URL": PUBLIC_URL,
        DOCUMENTS_DIR_ENV: str(docs),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "fiscus.cli", "worker", "--interval", "3600"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait(predicate: Any, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_worker_killed_mid_send_then_restarted_sends_each_email_once(
    db: Database, db_url: str, mailbox: SmtpSink, tmp_path: Path
) -> None:
    # The worker runs on the wall clock: the data is made "now", so nothing else falls due meanwhile.
    now = FixedClock(datetime.now(UTC).replace(microsecond=0))
    tenant = make_tenant(db, now, "kz")
    for n in range(2):
        customer = make_customer(db, now, tenant, n, locale="kk")
        order = create_order(db, now, tenant.org_id, customer, [ItemSpec(tenant.one_off, 1)])
        bill_order_now(db, now, tenant.org_id, order)
    assert len(_outbox(db)) == 2
    (mailbox.directory / "stall").touch()
    first = _worker(db_url, mailbox, tmp_path / "docs")
    try:
        _wait((mailbox.directory / "stalled").exists, "the server to hold a message at DATA")
        assert "sending" in {r["status"] for r in _outbox(db)}
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert mailbox.messages() == []
    (mailbox.directory / "stall").unlink()
    second = _worker(db_url, mailbox, tmp_path / "docs")
    try:
        _wait(lambda: all(r["status"] == "sent" for r in _outbox(db)), "every email sent after the restart")
    finally:
        second.terminate()
        second.wait(20)
    rows = _outbox(db)
    received = Counter((m["Message-ID"], m["To"]) for m in mailbox.messages())
    assert received == Counter((r["message_id"], r["recipient"]) for r in rows)
    assert set(received.values()) == {1}
    assert max(r["attempts"] for r in rows) == 2  # the one held at DATA was tried again, once
    with db.read() as conn:
        assert conn.execute(select(t.documents.c.id)).scalars().all()  # the invoices themselves are intact
