"""The console's pages as each role and as another organisation's operator: what is allowed, 403,
404; CSRF-less posts, expired sessions, fixation, open redirects, stored XSS shown escaped; filters,
totals and the CSV export."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_console as tc
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services import console_sessions
from fiscus.services.emails.settings import read_email_settings
from fiscus.web.console.auth import safe_next
from tests.api_support import make_app
from tests.conftest import BACKENDS, new_database_url
from tests.console.settings_support import foreign_paths, settings_routes
from tests.console.support import XSS, ConsoleWorld, build_world, csrf_token, login


@pytest.fixture(scope="module", params=BACKENDS)
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Database, FixedClock, ConsoleWorld]]:
    url = new_database_url(str(request.param), request, tmp_path_factory.mktemp("console"))
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


def _routes(world: ConsoleWorld) -> list[tuple[str, str]]:
    """(path, permission) of every GET page of an organisation."""
    o, d, s, c = world.tenant.org_id, world.document_id, world.subscription_id, world.customer_id
    base = f"/console/{o}"
    return [
        (f"{base}/", "read"),
        (f"{base}/documents", "read"),
        (f"{base}/documents.csv", "read"),
        (f"{base}/document-totals", "read"),
        (f"{base}/documents/{d}", "read"),
        (f"{base}/customers", "read"),
        (f"{base}/customers/{c}", "read"),
        (f"{base}/subscriptions", "read"),
        (f"{base}/subscriptions/{s}", "read"),
        (f"{base}/payments", "read"),
        (f"{base}/refunds", "read"),
        (f"{base}/refunds.csv?status=succeeded", "read"),
        (f"{base}/webhook-deliveries?status=failed", "read"),
        (f"{base}/audit", "read"),
        (f"{base}/billing_runs", "read"),
        (f"{base}/billing_runs/preview", "read"),
        (f"{base}/documents/{d}/act/void", "money"),
        (f"{base}/documents/{d}/act/credit_note", "money"),
        (f"{base}/documents/{d}/act/refund", "money"),
        (f"{base}/documents/{d}/act/mark_paid", "money"),
        (f"{base}/documents/{d}/act/retry", "staff"),
        (f"{base}/documents/{d}/act/resend", "staff"),
        (f"{base}/documents/{d}/pdf", "read"),
        (f"{base}/subscriptions/{s}/change", "staff"),
        (f"{base}/subscriptions/{s}/cancel", "staff"),
        (f"{base}/subscriptions/{s}/resume", "staff"),
        (f"{base}/subscriptions/{s}/pause", "money"),
        (f"{base}/subscriptions/{s}/resume-collection", "money"),
        (f"{base}/webhook-deliveries.csv?status=failed", "read"),
        (f"{base}/customers?sort=-name", "read"),
        (f"{base}/email-settings", "read"),
        (f"{base}/emails/preview?kind=invoice_issued&id={d}", "read"),
        (f"{base}/emails/preview.html?kind=invoice_issued&id={d}", "read"),
        (f"{base}/emails/preview.html?kind=portal_login&id={c}", "read"),
        *settings_routes(o, world.settings),
    ]


ALLOWED = {
    "admin": {"read", "money", "staff", "catalog", "admin"},
    "finance": {"read", "money", "staff", "catalog"},
    "support": {"read", "staff"},
    "viewer": {"read"},
}


@pytest.mark.parametrize("role", ["admin", "finance", "support", "viewer", "outsider"])
def test_every_route_as_each_role(
    role: str, setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    _, _, world = setup
    login(client, world.emails[role])
    for path, need in _routes(world):
        status = client.get(path).status_code
        # another organisation's pages do not exist for an outsider
        expected = 404 if role == "outsider" else 200 if need in ALLOWED[role] else 403
        assert status == expected, (role, path, status)
    if role == "outsider":  # their own organisation's, with a foreign id in it: 404 as well
        base = f"/console/{world.other.org_id}"
        assert client.get(f"{base}/documents/{world.document_id}").status_code == 404
        assert client.get(f"{base}/customers/{world.customer_id}").status_code == 404
        assert client.get(f"{base}/subscriptions/{world.subscription_id}").status_code == 404
        assert client.get(f"{base}/documents/{world.other_document_id}").status_code == 200
        assert client.get(f"/console/switch?to={world.tenant.org_id}").status_code == 404
        token = csrf_token(client.get(f"{base}/settings").text)
        for method, path in foreign_paths(world.other.org_id, world.settings):
            answer = client.request(method, path, data={"csrf_token": token} if method == "POST" else None)
            assert answer.status_code == 404, (method, path, answer.status_code)


def test_a_refused_post_changes_nothing(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    db, _, world = setup
    login(client, world.emails["viewer"])
    page = client.get(f"/console/{world.tenant.org_id}/documents/{world.document_id}")
    token = csrf_token(page.text)
    answer = client.post(
        f"/console/{world.tenant.org_id}/documents/{world.document_id}/act/void", data={"csrf_token": token}
    )
    assert answer.status_code == 403
    with db.read() as conn:
        status = conn.execute(
            select(t.documents.c.status).where(t.documents.c.id == world.document_id)
        ).scalar()
    assert status != "void"


def test_email_settings_are_read_by_all_and_changed_by_an_admin_with_the_api_s_errors(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    db, _, world = setup
    path = f"/console/{world.tenant.org_id}/email-settings"
    login(client, world.emails["finance"])
    page = client.get(path)
    assert "<fieldset disabled>" in page.text  # shown, not editable
    refused = client.post(path, data={"csrf_token": csrf_token(page.text), "from_name": "Finance Ltd"})
    assert refused.status_code == 403

    login(client, world.emails["admin"])
    page = client.get(path)
    token = csrf_token(page.text)
    assert client.post(path, data={"from_name": "No token"}).status_code == 403
    form = {
        "csrf_token": token,
        "from_name": "Acme Billing",
        "brand_color": "#7b1fa2",
        "trial_notice_days": "5",
        "renewal_notice_days": "14",
        "disabled.card_expiring": "on",
        "dunning.retry_days": "1, 3, 5",
        "dunning.final_action": "mark_uncollectible",
        "dunning.emails": "",
    }
    saved = client.post(path, data=form, follow_redirects=False)
    assert saved.status_code == 303
    with db.read() as conn:
        stored = read_email_settings(conn, world.tenant.org_id)
    assert (stored["from_name"], stored["brand_color"], stored["disabled"]) == (
        "Acme Billing",
        "#7b1fa2",
        ["card_expiring"],
    )
    assert stored["dunning"]["retry_days"] == [1, 3, 5]
    assert stored["dunning"]["emails"] == [
        "payment_failed",
        "payment_failed",
        "final_notice",
        "payment_failed",
    ]
    bad = client.post(path, data={**form, "brand_color": "purple"})
    assert bad.status_code == 422
    assert 'id="brand_color-error"' in bad.text  # the API's message, next to the field
    assert 'value="purple"' in bad.text  # what was typed is kept
    with db.read() as conn:
        assert read_email_settings(conn, world.tenant.org_id)["brand_color"] == "#7b1fa2"

    base = f"/console/{world.tenant.org_id}/emails"
    preview = client.get(f"{base}/preview?kind=invoice_issued&id={world.document_id}")
    assert preview.status_code == 200
    assert "Acme Billing" in preview.text or "Invoice" in preview.text
    html = client.get(f"{base}/preview.html?kind=invoice_issued&id={world.document_id}")
    csp = html.headers["content-security-policy"]
    assert "sandbox" in csp
    assert "script-src" not in csp
    assert "default-src 'none'" in csp
    final = client.get(f"{base}/preview?kind=final_action&id={world.document_id}")
    assert final.status_code == 200  # the dunning's final-action email is previewable too
    assert 'value="final_action"' in final.text
    foreign = client.get(f"{base}/preview?kind=invoice_issued&id={world.other_document_id}")
    assert foreign.status_code == 404  # another organisation's document
    assert client.get(f"{base}/preview?kind=nonsense&id=1").status_code == 404


def test_csrf_less_posts_are_refused(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    _, _, world = setup
    login(client, world.emails["admin"])
    path = f"/console/{world.tenant.org_id}/documents/{world.document_id}/act/void"
    assert client.post(path, data={}).status_code == 403
    assert client.post(path, data={"csrf_token": "1.forged.token"}).status_code == 403
    assert client.post("/console/logout", data={}).status_code == 403
    fresh = TestClient(client.app)
    assert (
        fresh.post("/console/login", data={"email": world.emails["admin"], "password": "x"}).status_code
        == 403
    )


def test_login_fixation_expiry_and_redirects(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    _, clock, world = setup
    client.cookies.set("fiscus_console", "planted-by-an-attacker", path="/console")
    assert client.get("/console/", follow_redirects=False).status_code == 303
    page = client.get("/console/login?next=//evil.example/x")
    answer = client.post(
        "/console/login",
        data={
            "email": world.emails["viewer"],
            "password": "correct horse battery",
            "csrf_token": csrf_token(page.text),
            "next": "https://evil.example/",
        },
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/console/"  # no open redirect
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie.replace("Lax", "lax")
    session = cookie.split(";")[0].split("=", 1)[1]
    assert session
    assert session != "planted-by-an-attacker"
    client.cookies.clear()
    client.cookies.set("fiscus_console", session, path="/console")
    for bad in ("//evil.example", "/\\evil.example", "https://evil.example/console", "/console\\@evil"):
        assert safe_next(bad) == "/console/"
    assert safe_next("/console/1/documents?status=open") == "/console/1/documents?status=open"
    good = client.get("/console/login?next=/console/1/documents%3Fstatus%3Dopen")
    assert 'value="/console/1/documents?status=open"' in good.text
    assert client.get(f"/console/{world.tenant.org_id}/").status_code == 200
    clock.advance(console_sessions.IDLE_TIMEOUT + timedelta(minutes=1))
    expired = client.get(f"/console/{world.tenant.org_id}/documents", follow_redirects=False)
    assert expired.status_code == 303
    assert expired.headers["location"].startswith("/console/login?next=")
    clock.advance(-(console_sessions.IDLE_TIMEOUT + timedelta(minutes=1)))


def test_stored_xss_is_shown_escaped(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    _, _, world = setup
    login(client, world.emails["viewer"])
    base = f"/console/{world.tenant.org_id}"
    for path in (
        f"{base}/customers",
        f"{base}/customers/{world.customer_id}",
        f"{base}/documents",
        f"{base}/subscriptions",
    ):
        html = client.get(path).text
        assert XSS not in html, path
        assert "<script>alert" not in html, path
        assert "&lt;script&gt;" in html, path
    headers = client.get(f"{base}/customers").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]


def test_filters_totals_and_csv(setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient) -> None:
    db, _, world = setup
    login(client, world.emails["finance"])
    base = f"/console/{world.tenant.org_id}"
    with db.read() as conn:
        d = t.documents.c
        rows = conn.execute(
            select(d.id, d.total_minor, d.currency).where(
                d.organization_id == world.tenant.org_id, d.status == "open"
            )
        ).all()
    page = client.get(f"{base}/documents?status=open&sort=total_minor")
    assert page.status_code == 200
    for r in rows:
        assert f'/documents/{r.id}"' in page.text
    exported = client.get(f"{base}/documents.csv?status=open")
    assert exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert sorted(int(r["id"]) for r in table) == sorted(r.id for r in rows)
    assert all(r["status"] == "open" for r in table)
    totals = client.get(f"{base}/document-totals?status=open", headers={"HX-Request": "true"})
    assert "<html" not in totals.text  # the fragment htmx swaps in
    with db.read() as conn:
        due = conn.execute(
            select(func.count(), func.sum(d.total_minor)).where(
                d.organization_id == world.tenant.org_id, d.status == "open", d.type == "invoice"
            )
        ).one()
    assert f'<td>invoice</td><td class="num">{due[0]}</td>' in totals.text
    assert (
        "Totals of the filtered set" in client.get(f"{base}/document-totals?status=open").text
    )  # no JS: a page
    bad = client.get(f"{base}/documents?from=yesterday")
    assert bad.status_code == 422
    assert 'id="f-from-error"' in bad.text
    search = client.get(f"{base}/documents?q=plain%40example")
    assert "Plain Customer" in search.text
    assert "Evil" not in search.text
    one = client.get(f"{base}/documents", params={"sort": "total_minor"})
    assert one.status_code == 200


def test_login_page_is_localised(client: TestClient) -> None:
    assert "Вход" in client.get("/console/login?lang=bg").text
    assert "Кіру" in client.get("/console/login?lang=kk").text
    assert "Войти" in client.get("/console/login?lang=ru").text


def test_actions_leave_the_api_s_rows_with_the_operator_as_actor(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    """A partial credit note and a plan change after its preview, posted as a browser would, on both
    databases; the rows are the services' own, the audit names the operator."""
    db, _, world = setup
    login(client, world.emails["finance"])
    base = f"/console/{world.tenant.org_id}"
    with db.read() as conn:
        d = t.documents.c
        invoice = conn.execute(
            select(d.id).where(
                d.organization_id == world.tenant.org_id, d.type == "invoice", d.status == "open"
            )
        ).scalar()
        operator_id = conn.execute(
            select(tc.operators.c.id).where(tc.operators.c.email == world.emails["finance"])
        ).scalar_one()
    assert invoice is not None
    form = client.get(f"{base}/documents/{invoice}/act/credit_note")
    fields = {
        "csrf_token": csrf_token(form.text),
        "mode": "amount",
        "reason": "goodwill",
        "disposition": "reduce_due",
    }
    refused = client.post(f"{base}/documents/{invoice}/act/credit_note", data={**fields, "amount": "-1"})
    assert refused.status_code == 422
    assert 'id="amount-error"' in refused.text
    blank = client.post(
        f"{base}/documents/{invoice}/act/credit_note", data={**fields, "amount": "1.00", "reason": " "}
    )
    assert blank.status_code == 422
    assert 'id="reason-error"' in blank.text
    assert "must say why the invoice is corrected" in blank.text  # the service's own message
    done = client.post(
        f"{base}/documents/{invoice}/act/credit_note",
        data={**fields, "amount": "1.00"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    sub = world.subscription_id
    step = client.get(f"{base}/subscriptions/{sub}/change")
    token = csrf_token(step.text)
    preview = client.post(
        f"{base}/subscriptions/{sub}/change",
        data={
            "csrf_token": token,
            "price_id": str(world.tenant.monthly_big),
            "quantity": "1",
            "step": "preview",
        },
    )
    assert "Proration preview" in preview.text
    with db.read() as conn:
        items = (
            conn.execute(
                select(t.subscription_items.c.price_id).where(t.subscription_items.c.subscription_id == sub)
            )
            .scalars()
            .all()
        )
    assert items == [world.tenant.monthly]  # the preview wrote nothing
    confirmed = client.post(
        f"{base}/subscriptions/{sub}/change",
        data={
            "csrf_token": token,
            "price_id": str(world.tenant.monthly_big),
            "quantity": "1",
            "step": "confirm",
        },
        follow_redirects=False,
    )
    assert confirmed.status_code == 303
    with db.read() as conn:
        a = t.audit_events.c
        actors = conn.execute(
            select(a.entity_type, a.action).where(a.actor == f"operator:{operator_id}")
        ).all()
        note = conn.execute(
            select(d.total_minor, d.corrected_document_id).where(
                d.type == "credit_note", d.corrected_document_id == invoice
            )
        ).one()
    assert note.total_minor == 100
    assert ("subscription", "changed") in actors
    assert ("document", "linked") in actors


def test_billing_run_preview_then_start(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    """The dry run writes nothing; a viewer may look but not start; finance starts it and watches it."""
    db, clock, world = setup
    base = f"/console/{world.tenant.org_id}"
    clock.advance(timedelta(days=31))
    try:
        login(client, world.emails["viewer"])
        page = client.get(f"{base}/billing_runs/preview")
        assert page.status_code == 200
        assert "Start this billing run" not in page.text
        assert (
            client.post(f"{base}/billing_runs/start", data={"csrf_token": csrf_token(page.text)}).status_code
            == 403
        )
        login(client, world.emails["finance"])
        page = client.get(f"{base}/billing_runs/preview")
        assert "Start this billing run" in page.text
        with db.read() as conn:
            runs_before = conn.execute(select(t.billing_runs.c.id)).all()
        started = client.post(
            f"{base}/billing_runs/start", data={"csrf_token": csrf_token(page.text)}, follow_redirects=False
        )
        assert started.status_code == 303
        run_page = started.headers["location"]
        for _ in range(300):
            shown = client.get(run_page)
            if "finished" in shown.text:
                break
            time.sleep(0.1)
        assert "finished" in shown.text
        with db.read() as conn:
            runs = conn.execute(select(t.billing_runs.c.requested_by)).scalars().all()
        assert len(runs) == len(runs_before) + 1
        assert runs[-1] is not None
        assert runs[-1].startswith("operator:")
    finally:
        clock.advance(-timedelta(days=31))
