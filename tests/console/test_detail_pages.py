"""The console's detail pages beyond the basics: the document's PDF and e-invoice files, mark paid with
a reference, a credit note by lines, resending a document's email, resuming a subscription, and the
customer's credit, timeline and VAT ID check; each through the services, audited with the operator."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_console as tc
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_email import email_outbox
from fiscus.domain.clock import FixedClock
from fiscus.domain.tax import VatCheck
from fiscus.services import access, operator_actions
from fiscus.services.operators import Actor, Role
from tests.api_support import make_app
from tests.builders import make_customer
from tests.conftest import BACKENDS, new_database_url
from tests.console.support import ConsoleWorld, build_world, csrf_token, login


@pytest.fixture(scope="module", params=BACKENDS)
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Database, FixedClock, ConsoleWorld]]:
    url = new_database_url(str(request.param), request, tmp_path_factory.mktemp("console-details"))
    db = Database(url)
    clock = FixedClock(datetime(2026, 1, 15, 9, 30, tzinfo=UTC))
    world = build_world(db, clock)
    yield db, clock, world
    db.dispose()


@pytest.fixture
def client(setup: tuple[Database, FixedClock, ConsoleWorld]) -> Iterator[TestClient]:
    db, clock, _ = setup
    with TestClient(make_app(db, clock), raise_server_exceptions=True) as c:
        yield c


def _open_invoices(db: Database, org_id: int) -> list[int]:
    d = t.documents.c
    with db.read() as conn:
        return list(
            conn.execute(
                select(d.id)
                .where(d.organization_id == org_id, d.type == "invoice", d.status == "open")
                .order_by(d.id.desc())
            ).scalars()
        )


def test_document_files_mark_paid_with_reference_and_credit_by_lines(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    """The PDF framed same-origin, no XML without e-invoicing; a line credit refused by the quantity
    typed next to it, then issued; mark paid keeps the payment's reference (attempt and audit)."""
    db, _, world = setup
    login(client, world.emails["finance"])
    base = f"/console/{world.tenant.org_id}"
    page = client.get(f"{base}/documents/{world.document_id}")
    assert f'<iframe class="pdf" src="{base}/documents/{world.document_id}/pdf"' in page.text
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    pdf = client.get(f"{base}/documents/{world.document_id}/pdf")
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    assert pdf.headers["x-frame-options"] == "SAMEORIGIN"
    assert client.get(f"{base}/documents/{world.document_id}/xml/ubl").status_code == 409  # facturx off
    assert client.get(f"{base}/documents/{world.document_id}/xml/nope").status_code == 404

    credited, paid = _open_invoices(db, world.tenant.org_id)[:2]
    form = client.get(f"{base}/documents/{credited}/act/credit_note")
    assert 'name="line_1"' in form.text
    fields = {"csrf_token": csrf_token(form.text), "mode": "lines", "reason": "one seat less"}
    fields |= {"disposition": "reduce_due", "line_1": "1"}
    too_many = client.post(f"{base}/documents/{credited}/act/credit_note", data={**fields, "qty_1": "999"})
    assert too_many.status_code == 422
    assert 'id="qty_1-error"' in too_many.text
    assert "must not exceed the invoiced quantity" in too_many.text
    unticked = {k: v for k, v in fields.items() if k != "line_1"}
    none = client.post(f"{base}/documents/{credited}/act/credit_note", data=unticked)
    assert none.status_code == 422
    assert 'id="lines-error"' in none.text
    done = client.post(
        f"{base}/documents/{credited}/act/credit_note", data={**fields, "qty_1": "1"}, follow_redirects=False
    )
    assert done.status_code == 303
    d, dl = t.documents.c, t.document_lines.c
    with db.read() as conn:
        note = conn.execute(
            select(d.id).where(d.type == "credit_note", d.corrected_document_id == credited)
        ).scalar_one()
        assert conn.execute(select(func.count()).where(dl.document_id == note)).scalar_one() == 1

    form = client.get(f"{base}/documents/{paid}/act/mark_paid")
    answer = client.post(
        f"{base}/documents/{paid}/act/mark_paid",
        data={"csrf_token": csrf_token(form.text), "reference": "  SEPA RF18 5390  "},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    pa, a = t.payment_attempts.c, t.audit_events.c
    with db.read() as conn:
        attempt = conn.execute(select(pa.provider, pa.provider_charge_id).where(pa.document_id == paid)).one()
        audit = conn.execute(
            select(a.actor, a.after).where(a.entity_id == paid, a.action == "external_payment")
        ).one()
        status = conn.execute(select(d.status).where(d.id == paid)).scalar_one()
    assert (attempt.provider, attempt.provider_charge_id) == ("external", "SEPA RF18 5390")
    with db.read() as conn:
        attempt_id = conn.execute(select(pa.id).where(pa.document_id == paid)).scalar_one()
    shown = client.get(f"{base}/payments/{attempt_id}")
    assert shown.status_code == 200
    assert "SEPA RF18 5390" in shown.text
    assert client.get(f"/console/{world.other.org_id}/payments/{attempt_id}").status_code == 404
    assert f'href="{base}/payments/{attempt_id}"' in client.get(f"{base}/payments").text
    listed = client.get(f"{base}/refunds?status=succeeded")
    assert listed.status_code == 200
    exported = client.get(f"{base}/refunds.csv")
    assert exported.text.splitlines()[0].startswith("id,attempt_id,document_id,currency,amount")
    assert audit.actor.startswith("operator:")
    assert audit.after["reference"] == "SEPA RF18 5390"
    assert status == "paid"


def test_resend_queues_one_email_per_request(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    """Support resends a document's email: the same form posted twice queues once (its request key),
    a second deliberate resend queues another; each is audited once with the operator as actor."""
    db, _, world = setup
    login(client, world.emails["support"])
    base = f"/console/{world.tenant.org_id}/documents/{world.document_id}"
    form = client.get(f"{base}/act/resend")
    key = re.search(r'name="request_key" value="([^"]+)"', form.text)
    assert key
    data = {"csrf_token": csrf_token(form.text), "request_key": key.group(1)}
    for _ in range(2):
        assert client.post(f"{base}/act/resend", data=data, follow_redirects=False).status_code == 303
    again = client.get(f"{base}/act/resend")
    other = re.search(r'name="request_key" value="([^"]+)"', again.text)
    assert other
    assert other.group(1) != key.group(1)
    data = {"csrf_token": csrf_token(again.text), "request_key": other.group(1)}
    assert client.post(f"{base}/act/resend", data=data, follow_redirects=False).status_code == 303
    assert client.post(f"{base}/act/resend", data={**data, "request_key": "x"}).status_code == 422
    e, a = email_outbox.c, t.audit_events.c
    with db.read() as conn:
        keys = (
            conn.execute(
                select(e.message_key).where(
                    e.document_id == world.document_id, e.message_key.like("%:resend:%")
                )
            )
            .scalars()
            .all()
        )
        audits = conn.execute(
            select(func.count()).where(a.entity_id == world.document_id, a.action == "email_resent")
        ).scalar_one()
    assert sorted(keys) == sorted(
        f"invoice_issued:document:{world.document_id}:resend:{k}" for k in (key.group(1), other.group(1))
    )
    assert audits == 2


def test_cancel_at_period_end_then_resume(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    db, _, world = setup
    login(client, world.emails["support"])
    base = f"/console/{world.tenant.org_id}/subscriptions/{world.subscription_id}"
    form = client.get(f"{base}/cancel")
    token = csrf_token(form.text)
    assert client.post(f"{base}/resume", data={"csrf_token": token}).status_code == 409  # nothing to withdraw
    cancelled = client.post(f"{base}/cancel", data={"csrf_token": token, "when": "period_end"})
    assert cancelled.status_code == 200  # followed to the subscription page
    assert f'href="{base}/resume"' in cancelled.text
    resumed = client.post(f"{base}/resume", data={"csrf_token": token}, follow_redirects=False)
    assert resumed.status_code == 303
    s, a = t.subscriptions.c, t.audit_events.c
    with db.read() as conn:
        assert conn.execute(select(s.cancel_at).where(s.id == world.subscription_id)).scalar_one() is None
        actor = conn.execute(
            select(a.actor).where(a.entity_id == world.subscription_id, a.action == "resumed")
        ).scalar_one()
    assert actor.startswith("operator:")


class _Registry:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def check(self, vat_id: str) -> VatCheck:
        self.asked.append(vat_id)
        return VatCheck(True, name="KUNDE GMBH")


def test_customer_page_credit_timeline_and_vat_check(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    """The customer page shows its credit and a timeline of its documents and subscriptions; the VAT ID
    check asks the registry (none configured here: unknown) and audits the answer, and the service
    records a registry's answer as given."""
    db, clock, world = setup
    login(client, world.emails["support"])
    base = f"/console/{world.tenant.org_id}/customers/{world.customer_id}"
    page = client.get(base)
    assert "Credit balance" in page.text
    assert "Timeline" in page.text
    assert f'href="/console/{world.tenant.org_id}/documents/{world.document_id}"' in page.text
    de = make_customer(db, clock, world.tenant, 77, name="Kunde GmbH", country="DE", vat_id="DE136695976")
    checked = client.get(f"/console/{world.tenant.org_id}/customers/{de}")
    answer = client.post(
        f"/console/{world.tenant.org_id}/customers/{de}/vat-check",
        data={"csrf_token": csrf_token(checked.text)},
    )
    assert answer.status_code == 200
    assert "the registry could not answer" in answer.text
    registry = _Registry()
    support = Actor(1, world.tenant.org_id, Role.SUPPORT)
    assert operator_actions.check_vat_id(db, clock, registry, support, de).valid is True
    assert registry.asked == ["DE136695976"]
    a = t.audit_events.c
    with db.read() as conn:
        answers = [
            r["valid"]
            for r in conn.execute(
                select(a.after).where(a.entity_id == de, a.action == "vat_checked").order_by(a.id)
            ).scalars()
        ]
    assert answers == [None, True]


def test_pause_and_resume_collection_from_the_subscription_page(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    """Finance pauses (a day in the past refused by its field), the page says so, then resumes; support
    may not (403 from the service's permission); audited with the operator, the events written."""
    db, clock, world = setup
    base = f"/console/{world.tenant.org_id}/subscriptions/{world.subscription_id}"
    login(client, world.emails["support"])
    assert client.get(f"{base}/pause").status_code == 403
    client.cookies.clear()
    login(client, world.emails["finance"])
    form = client.get(f"{base}/pause")
    assert form.status_code == 200
    token = csrf_token(form.text)
    assert client.post(f"{base}/pause", data={"resumes_on": "2026-01-01"}).status_code == 403  # no CSRF
    past = client.post(f"{base}/pause", data={"csrf_token": token, "resumes_on": "2000-01-01"})
    assert past.status_code == 409
    assert 'aria-invalid="true"' in past.text
    later = (clock.now().date().replace(year=clock.now().year + 1)).isoformat()
    done = client.post(f"{base}/pause", data={"csrf_token": token, "resumes_on": later})
    assert done.status_code == 200  # followed to the subscription page
    assert f'href="{base}/resume-collection"' in done.text
    assert later in done.text
    resumed = client.post(f"{base}/resume-collection", data={"csrf_token": token}, follow_redirects=False)
    assert resumed.status_code == 303
    again = client.post(f"{base}/resume-collection", data={"csrf_token": token})
    assert again.status_code == 409
    a, o = t.audit_events.c, t.outbox_events.c
    with db.read() as conn:
        actors = (
            conn.execute(
                select(a.actor).where(
                    a.entity_id == world.subscription_id,
                    a.action.in_(("collection_paused", "collection_resumed")),
                )
            )
            .scalars()
            .all()
        )
        events = (
            conn.execute(
                select(o.type).where(
                    o.entity_id == world.subscription_id, o.type.like("subscription.collection%")
                )
            )
            .scalars()
            .all()
        )
    assert len(actors) == 2
    assert all(x.startswith("operator:") for x in actors)
    assert sorted(events) == ["subscription.collection_paused", "subscription.collection_resumed"]


def _resends(db: Database, document_id: int) -> tuple[list[tuple[str, str]], list[str], int]:
    """The document's resent messages (key, recipient), its `email_resent` audit actors, and the
    number of outbox events of the organisation (a resend emits none, whoever asks)."""
    e, a = email_outbox.c, t.audit_events.c
    with db.read() as conn:
        sent = [
            (str(k), str(r))
            for k, r in conn.execute(
                select(e.message_key, e.recipient)
                .where(e.document_id == document_id, e.message_key.like("%:resend:%"))
                .order_by(e.id)
            )
        ]
        actors = list(
            conn.execute(
                select(a.actor)
                .where(a.entity_type == "document", a.entity_id == document_id, a.action == "email_resent")
                .order_by(a.id)
            ).scalars()
        )
        events = conn.execute(select(func.count()).select_from(t.outbox_events)).scalar_one()
    return sent, actors, int(events)


def test_resend_by_api_is_the_consoles_resend(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    """`POST /api/v1/documents/{id}/resend` calls the console's service: one outbox message and one
    `email_resent` audit row per request, no event, an `Idempotency-Key` retry queues nothing more;
    a foreign id is 404, a customer token 403, a viewer in the console 403."""
    db, clock, world = setup
    org, doc = world.tenant.org_id, world.document_id
    before, actors_before, events_before = _resends(db, doc)
    login(client, world.emails["finance"])
    base = f"/console/{org}/documents/{doc}"
    form = client.get(f"{base}/act/resend")
    key = re.search(r'name="request_key" value="([^"]+)"', form.text)
    assert key
    posted = {"csrf_token": csrf_token(form.text), "request_key": key.group(1)}
    assert client.post(f"{base}/act/resend", data=posted, follow_redirects=False).status_code == 303
    by_console, console_actors, console_events = _resends(db, doc)
    assert len(by_console) == len(before) + 1
    assert console_actors[len(actors_before) :] == [f"operator:{_operator(db, world.emails['finance'])}"]
    assert console_events == events_before

    secret = access.create_api_key(db, clock, org).secret
    api = {"Authorization": f"Bearer {secret}"}
    once = client.post(f"/api/v1/documents/{doc}/resend", headers={**api, "Idempotency-Key": "resend-1"})
    assert once.status_code == 202, once.text
    assert once.json() == {"object": "document_email", "document_id": doc, "status": "queued"}
    replay = client.post(f"/api/v1/documents/{doc}/resend", headers={**api, "Idempotency-Key": "resend-1"})
    assert (replay.status_code, replay.json()) == (202, once.json())
    assert client.post(f"/api/v1/documents/{doc}/resend", headers=api).status_code == 202
    by_api, api_actors, api_events = _resends(db, doc)
    assert len(by_api) == len(by_console) + 2  # the keyed request once, the unkeyed one
    assert {r for _, r in by_api} == {by_console[-1][1]}  # the same recipient as the console's
    assert all(k.startswith(f"invoice_issued:document:{doc}:resend:") for k, _ in by_api)
    assert len(api_actors) == len(console_actors) + 2
    assert all(a.startswith("api_key:") for a in api_actors[len(console_actors) :])
    assert api_events == console_events

    foreign = client.post(f"/api/v1/documents/{world.other_document_id}/resend", headers=api)
    assert foreign.status_code == 404
    assert client.post("/api/v1/documents/999999999/resend", headers=api).status_code == 404
    token = access.create_customer_token(db, clock, org, world.customer_id).secret
    refused = client.post(f"/api/v1/documents/{doc}/resend", headers={"Authorization": f"Bearer {token}"})
    assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_scope")
    assert _resends(db, doc)[0] == by_api

    client.cookies.clear()
    login(client, world.emails["viewer"])
    viewer = client.get(f"{base}/act/resend")
    assert viewer.status_code == 403
    assert _resends(db, doc)[0] == by_api


def _operator(db: Database, email: str) -> int:
    with db.read() as conn:
        return int(conn.execute(select(tc.operators.c.id).where(tc.operators.c.email == email)).scalar_one())


def test_console_webhook_endpoint_honours_allow_private(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    """The console's new endpoint refuses or takes a loopback URL exactly as the API does, by the
    server's `webhooks_allow_private`."""
    db, clock, world = setup
    org = world.tenant.org_id
    secret = access.create_api_key(db, clock, org).secret
    for allow in (False, True):
        url = f"http://127.0.0.1:9/{'open' if allow else 'closed'}"
        app = make_app(db, clock, webhooks_allow_private=True) if allow else client.app
        with TestClient(app) as c:
            login(c, world.emails["admin"])
            page = c.get(f"/console/{org}/settings/webhooks")
            console = c.post(
                f"/console/{org}/settings/webhooks",
                data={"csrf_token": csrf_token(page.text), "url": url, "event_types": "*"},
            )
            api = c.post(
                "/api/v1/webhook_endpoints",
                json={"url": url + "-api", "event_types": ["*"]},
                headers={"Authorization": f"Bearer {secret}"},
            )
        assert (console.status_code, api.status_code) == ((201, 201) if allow else (422, 422))
        if not allow:
            assert 'id="f-url-error"' in console.text
        with db.read() as conn:
            w = t.webhook_endpoints.c
            stored = set(
                conn.execute(
                    select(w.url).where(w.organization_id == org, w.url.in_([url, url + "-api"]))
                ).scalars()
            )
        assert stored == ({url, url + "-api"} if allow else set())
