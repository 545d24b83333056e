"""The catalog and settings pages: each write goes through the API's service with the operator as the
audit actor, is refused by the permission table for a role without it, shows the API's field errors
next to the field, and shows stored markup escaped; secrets and set-password links appear once."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_console as tc
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.errors import FieldConflictError
from fiscus.services import access, org_settings
from fiscus.web.console.labels_extra import EXTRA
from fiscus.web.console.settings_labels import OWN as SETTINGS_LABELS
from tests.api_support import make_app
from tests.conftest import BACKENDS, new_database_url
from tests.console.settings_support import XSS
from tests.console.support import ConsoleWorld, build_world, csrf_token, login


@pytest.fixture(scope="module", params=BACKENDS)
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Database, FixedClock, ConsoleWorld]]:
    url = new_database_url(str(request.param), request, tmp_path_factory.mktemp("console-settings"))
    db = Database(url)
    clock = FixedClock(datetime(2026, 1, 15, 9, 30, tzinfo=UTC))
    yield db, clock, build_world(db, clock)
    db.dispose()


@pytest.fixture(scope="module")
def client(setup: tuple[Database, FixedClock, ConsoleWorld]) -> Iterator[TestClient]:
    """One app per database for the module (each test signs in as whom it needs)."""
    db, clock, _ = setup
    with TestClient(make_app(db, clock), raise_server_exceptions=True) as c:
        yield c


class _Form(HTMLParser):
    """The values a browser would post from the form whose action ends with `action`."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action, self.inside = action, False
        self.values: dict[str, str] = {}
        self.select: str | None = None
        self.area: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("action", "").endswith(self.action)
        elif not self.inside or (not a.get("name") and tag != "option"):
            return
        elif tag == "input" and (a.get("type") != "checkbox" or "checked" in a):
            self.values[a["name"]] = a.get("value", "on" if a.get("type") == "checkbox" else "")
        elif tag == "select":
            self.select = a["name"]
        elif tag == "option" and self.select and "selected" in a:
            self.values[self.select] = a.get("value", "")
        elif tag == "textarea":
            self.area = a["name"]
            self.values[self.area] = ""

    def handle_data(self, data: str) -> None:
        if self.area:
            self.values[self.area] += data

    def handle_endtag(self, tag: str) -> None:
        self.inside = self.inside and tag != "form"
        self.select = None if tag == "select" else self.select
        self.area = None if tag == "textarea" else self.area


def form_of(page: str, action: str) -> dict[str, str]:
    parser = _Form(action)
    parser.feed(page)
    return parser.values


def _audit_actor(db: Database, org_id: int, entity: str, action: str) -> str | None:
    a = t.audit_events.c
    with db.read() as conn:
        return conn.execute(
            select(a.actor)
            .where(a.organization_id == org_id, a.entity_type == entity, a.action == action)
            .order_by(a.id.desc())
        ).scalar()


def _operator_id(db: Database, email: str) -> int:
    with db.read() as conn:
        return int(conn.execute(select(tc.operators.c.id).where(tc.operators.c.email == email)).scalar_one())


def test_catalog_is_changed_by_finance_with_the_api_s_errors_and_refused_to_support(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    db, _, world = setup
    org, base = world.tenant.org_id, f"/console/{world.tenant.org_id}"
    login(client, world.emails["support"])
    page = client.get(f"{base}/catalog")
    assert 'action="' + base + '/catalog/products"' not in page.text  # no form shown
    refused = client.post(
        f"{base}/catalog/products", data={"csrf_token": csrf_token(page.text), "code": "s", "name": "S"}
    )
    assert refused.status_code == 403
    assert client.post(f"{base}/catalog/products", data={"code": "n", "name": "No token"}).status_code == 403

    login(client, world.emails["finance"])
    token = csrf_token(client.get(f"{base}/catalog").text)
    made = client.post(
        f"{base}/catalog/products",
        data={"csrf_token": token, "code": "pro", "name": "Pro"},
        follow_redirects=False,
    )
    assert made.status_code == 303
    product_path = made.headers["location"].split("?")[0]
    taken = client.post(
        f"{base}/catalog/products", data={"csrf_token": token, "code": "pro", "name": "Again"}
    )
    assert taken.status_code == 409
    assert 'id="product-code-error"' in taken.text
    assert 'aria-invalid="true"' in taken.text
    product_id = int(product_path.rsplit("/", 1)[1])
    variant = client.post(
        f"{product_path}/variants",
        data={"csrf_token": token, "code": "team", "name": "Team", "limits": "5 users, 10 GB"},
        follow_redirects=False,
    )
    assert variant.status_code == 303
    with db.read() as conn:
        v = conn.execute(select(t.variants).where(t.variants.c.product_id == product_id)).mappings().one()
    assert v["limits"] == ["5 users", "10 GB"]
    price_path = f"{base}/catalog/variants/{v['id']}/prices"
    bad = client.post(
        price_path, data={"csrf_token": token, "currency": "EURO", "unit_amount": "9.90", "interval": "month"}
    )
    assert bad.status_code == 422
    assert f'id="p{v["id"]}-currency-error"' in bad.text
    assert 'value="9.90"' in bad.text  # what was typed is kept
    ok = client.post(
        price_path,
        data={
            "csrf_token": token,
            "currency": "EUR",
            "unit_amount": "1234.50",
            "interval": "month",
            "interval_count": "1",
            "tax_category": "reduced",
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303
    with db.read() as conn:
        price = conn.execute(select(t.prices).where(t.prices.c.variant_id == v["id"])).mappings().one()
    assert (str(price["unit_amount"]), price["tax_category"]) == ("1234.50", "reduced")
    assert (
        _audit_actor(db, org, "price", "created") == f"operator:{_operator_id(db, world.emails['finance'])}"
    )
    shown = client.get(product_path + "?lang=bg").text
    assert "1\xa0234,50\xa0€" in shown  # the operator's locale
    confirm = client.get(f"{base}/catalog/prices/{price['id']}/archive")
    assert confirm.status_code == 200
    assert 'class="danger"' in confirm.text
    client.post(f"{base}/catalog/prices/{price['id']}/archive", data={"csrf_token": token})
    with db.read() as conn:
        assert conn.execute(select(t.prices.c.active).where(t.prices.c.id == price["id"])).scalar() is False
    assert (
        _audit_actor(db, org, "price", "archived") == f"operator:{_operator_id(db, world.emails['finance'])}"
    )


def test_organization_settings_keep_the_api_s_statuses_and_fields(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    db, _clock, world = setup
    org, base = world.tenant.org_id, f"/console/{world.tenant.org_id}"
    login(client, world.emails["viewer"])
    page = client.get(f"{base}/settings/organization")
    assert "<fieldset disabled>" in page.text
    assert (
        client.post(
            f"{base}/settings/organization", data=form_of(page.text, "/settings/organization")
        ).status_code
        == 403
    )

    login(client, world.emails["admin"])
    page = client.get(f"{base}/settings/organization")
    form = form_of(page.text, "/settings/organization")
    assert form["legal_name"]
    assert form["country"] == "BG"
    assert "customer_promotion_codes" not in form  # off by default: the checkbox is not checked
    saved = client.post(
        f"{base}/settings/organization",
        data={
            **form,
            "trading_name": "Acme <b>",
            "footers.bg": "Благодарим!",
            "payment_terms_days": "30",
            "customer_promotion_codes": "on",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303
    with db.read() as conn:
        row = conn.execute(select(t.organizations).where(t.organizations.c.id == org)).mappings().one()
    assert (row["trading_name"], row["footers"]["bg"], row["payment_terms_days"]) == (
        "Acme <b>",
        "Благодарим!",
        30,
    )
    assert row["customer_promotion_codes"] is True
    assert (
        form_of(client.get(f"{base}/settings/organization").text, "/settings/organization")[
            "customer_promotion_codes"
        ]
        == "on"
    )
    assert (
        _audit_actor(db, org, "organization", "updated")
        == f"operator:{_operator_id(db, world.emails['admin'])}"
    )
    # A VAT-registered EU organisation clearing its VAT ID: the API's 409 field conflict on vat_id.
    with pytest.raises(FieldConflictError):
        org_settings.validate_changes(
            {**row, "vat_rates": {"standard": "0.2", "reduced": None}}, {"vat_id": None}
        )
    page = client.get(f"{base}/settings/organization")
    form = form_of(page.text, "/settings/organization")
    cleared = client.post(f"{base}/settings/organization", data={**form, "vat_id": ""})
    assert cleared.status_code == 409
    assert 'id="f-vat_id-error"' in cleared.text
    wrong = client.post(f"{base}/settings/organization", data={**form, "timezone": "Mars/Olympus"})
    assert wrong.status_code == 422
    assert 'id="f-timezone-error"' in wrong.text
    assert "Acme &lt;b&gt;" in page.text


def test_logo_svg_with_script_is_neutralised(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    db, _, world = setup
    base = f"/console/{world.tenant.org_id}"
    login(client, world.emails["admin"])
    token = csrf_token(client.get(f"{base}/settings/organization").text)
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20" onload="alert(1)">'
        b'<script>alert(2)</script><rect width="40" height="20" fill="#123456"/></svg>'
    )
    sent = client.post(
        f"{base}/settings/logo",
        data={"csrf_token": token},
        files={"file": ("logo.svg", svg, "image/svg+xml")},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    with db.read() as conn:
        stored = (
            conn.execute(
                select(t.organization_logos.c.data).where(
                    t.organization_logos.c.organization_id == world.tenant.org_id
                )
            )
            .scalars()
            .all()
        )
    assert stored
    assert all(b"script" not in d and b"onload" not in d for d in stored)
    shown = client.get(f"{base}/settings/organization").text
    assert 'src="data:image/svg+xml;base64,' in shown
    assert "<script>alert(2)" not in shown
    junk = client.post(
        f"{base}/settings/logo",
        data={"csrf_token": token},
        files={"file": ("x.png", b"not an image", "image/png")},
    )
    assert junk.status_code == 422
    assert 'id="f-file-error"' in junk.text


def test_number_series_move_forward_only(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    _, _, world = setup
    path = f"/console/{world.tenant.org_id}/settings/number-series"
    login(client, world.emails["admin"])
    token = csrf_token(client.get(path).text)
    made = client.post(
        path,
        data={
            "csrf_token": token,
            "document_type": "invoice",
            "series": "EXP",
            "format": "EXP-{seq:04}",
            "next_value": "100",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303
    page = client.get(path).text
    assert "EXP-{seq:04}" in page
    assert ">100<" in page
    back = client.post(
        path, data={"csrf_token": token, "document_type": "invoice", "series": "EXP", "next_value": "5"}
    )
    assert back.status_code == 409
    assert 'id="f-next_value-error"' in back.text
    bad = client.post(
        path, data={"csrf_token": token, "document_type": "invoice", "series": "NEW", "format": "no sequence"}
    )
    assert bad.status_code == 422
    assert 'id="f-format-error"' in bad.text


def test_webhooks_keys_show_a_secret_once_and_redeliver(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    db, clock, world = setup
    assert world.settings is not None
    org, base = world.tenant.org_id, f"/console/{world.tenant.org_id}"
    login(client, world.emails["admin"])
    page = client.get(f"{base}/settings/webhooks")
    token = csrf_token(page.text)
    assert XSS not in page.text
    assert html.escape(XSS, quote=False)[:20] in page.text
    created = client.post(
        f"{base}/settings/webhooks",
        data={
            "csrf_token": token,
            "url": "https://example.com/hook",
            "event_types": "invoice.*, payment.succeeded",
            "description": "ERP",
        },
    )
    assert created.status_code == 201
    assert "whsec_" in created.text
    assert "whsec_" not in client.get(f"{base}/settings/webhooks").text
    private = client.post(
        f"{base}/settings/webhooks",
        data={"csrf_token": token, "url": "http://127.0.0.1/x", "event_types": "*"},
    )
    assert private.status_code == 422
    assert 'id="f-url-error"' in private.text
    delivery = world.settings.delivery_id
    client.post(f"{base}/settings/webhook-deliveries/{delivery}/redeliver", data={"csrf_token": token})
    with db.read() as conn:
        assert (
            conn.execute(
                select(t.webhook_deliveries.c.status).where(t.webhook_deliveries.c.id == delivery)
            ).scalar()
            == "pending"
        )
    assert (
        _audit_actor(db, org, "webhook_delivery", "redelivered")
        == f"operator:{_operator_id(db, world.emails['admin'])}"
    )

    key = client.post(f"{base}/settings/api-keys", data={"csrf_token": token, "name": "ERP sync"})
    assert key.status_code == 201
    secret = key.text.split('<code class="secret">')[1].split("</code>")[0]
    assert access.authenticate(db, clock, secret) is not None
    listed = client.get(f"{base}/settings/api-keys").text
    assert secret not in listed
    assert secret[:9] in listed
    key_id = access.authenticate(db, clock, secret).credential_id  # type: ignore[union-attr]
    client.post(f"{base}/settings/api-keys/{key_id}/revoke", data={"csrf_token": token})
    assert access.authenticate(db, clock, secret) is None
    again = client.post(f"{base}/settings/api-keys/{key_id}/revoke", data={"csrf_token": token})
    assert again.status_code == 409


def test_operators_invite_change_and_the_last_admin_stays(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    db, _, world = setup
    org, base = world.tenant.org_id, f"/console/{world.tenant.org_id}"
    login(client, world.emails["finance"])
    assert client.get(f"{base}/settings/operators").status_code == 403
    login(client, world.emails["admin"])
    token = csrf_token(client.get(f"{base}/settings/operators").text)
    invited = client.post(
        f"{base}/settings/operators",
        data={"csrf_token": token, "email": "new@console.example", "name": XSS, "role": "support"},
    )
    assert invited.status_code == 201
    assert XSS not in invited.text
    link = invited.text.split('<code class="secret">')[1].split("</code>")[0]
    assert "/console/set-password?token=" in link
    assert client.get(link.split("testserver", 1)[-1]).status_code == 200
    new_id = _operator_id(db, "new@console.example")
    token = csrf_token(client.get(f"{base}/settings/operators").text)  # that page set an anonymous token
    bad_role = client.post(
        f"{base}/settings/operators/{new_id}/role", data={"csrf_token": token, "role": "owner"}
    )
    assert bad_role.status_code == 422
    client.post(f"{base}/settings/operators/{new_id}/role", data={"csrf_token": token, "role": "viewer"})
    with db.read() as conn:
        m = tc.operator_memberships.c
        assert (
            conn.execute(select(m.role).where(m.operator_id == new_id, m.organization_id == org)).scalar()
            == "viewer"
        )
    me = _operator_id(db, world.emails["admin"])
    last = client.post(f"{base}/settings/operators/{me}/role", data={"csrf_token": token, "role": "viewer"})
    assert last.status_code == 409
    assert (
        client.post(f"{base}/settings/operators/{me}/remove", data={"csrf_token": token}).status_code == 409
    )
    assert (
        client.post(f"{base}/settings/operators/{me}/disable", data={"csrf_token": token}).status_code == 409
    )
    client.post(f"{base}/settings/operators/{new_id}/disable", data={"csrf_token": token})
    client.post(f"{base}/settings/operators/{new_id}/remove", data={"csrf_token": token})
    with db.read() as conn:
        assert (
            conn.execute(select(tc.operators.c.disabled).where(tc.operators.c.id == new_id)).scalar() is True
        )
        assert conn.execute(select(m.id).where(m.operator_id == new_id)).first() is None
    assert _audit_actor(db, org, "operator", "removed") == f"operator:{me}"
    # A person who already has a login (in another organisation) gets the role, and no link.
    token = csrf_token(client.get(f"{base}/settings/operators").text)
    data = {"csrf_token": token, "email": world.emails["outsider"], "role": "viewer"}
    added = client.post(f"{base}/settings/operators", data=data, follow_redirects=False)
    assert added.status_code == 303
    outsider = _operator_id(db, world.emails["outsider"])
    assert client.post(f"{base}/settings/operators", data=data).status_code == 409  # already here
    # Not theirs to disable (it opens an organisation this admin does not run); removing is.
    assert (
        client.post(f"{base}/settings/operators/{outsider}/disable", data={"csrf_token": token}).status_code
        == 409
    )
    client.post(f"{base}/settings/operators/{outsider}/remove", data={"csrf_token": token})
    with db.read() as conn:
        assert (
            conn.execute(select(m.id).where(m.operator_id == outsider, m.organization_id == org)).first()
            is None
        )


def test_new_pages_show_stored_markup_escaped(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    _, _, world = setup
    assert world.settings is not None
    login(client, world.emails["admin"])
    base = f"/console/{world.tenant.org_id}"
    for path in (
        f"{base}/catalog",
        f"{base}/catalog/products/{world.settings.product_id}",
        f"{base}/settings/webhooks",
        f"{base}/settings/webhooks/{world.settings.endpoint_id}",
        f"{base}/settings/api-keys",
    ):
        text = client.get(path).text
        assert "<script>alert" not in text, path
        assert "<img src=x" not in text, path
        assert "&lt;script&gt;" in text, path
    assert "Баптаулар" in client.get(f"{base}/settings?lang=kk").text
    assert "Настройки" in client.get(f"{base}/settings?lang=ru").text
    client.get(f"{base}/settings?lang=en")


def test_every_new_post_without_a_csrf_token_is_refused(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    db, _, world = setup
    ids = world.settings
    assert ids is not None
    login(client, world.emails["admin"])
    base = f"/console/{world.tenant.org_id}"
    a = t.audit_events.c
    with db.read() as conn:
        before = conn.execute(select(a.id).order_by(a.id.desc())).scalar()
    for path in (
        "/catalog/products",
        f"/catalog/products/{ids.product_id}/variants",
        f"/catalog/variants/{ids.variant_id}/prices",
        f"/catalog/prices/{ids.price_id}/archive",
        f"/catalog/products/{ids.product_id}",
        f"/settings/webhooks/{ids.endpoint_id}",
        "/settings/organization",
        "/settings/logo",
        "/settings/logo/remove",
        "/settings/number-series",
        "/settings/payments",
        "/settings/webhooks",
        f"/settings/webhooks/{ids.endpoint_id}/disable",
        f"/settings/webhook-deliveries/{ids.delivery_id}/redeliver",
        "/settings/api-keys",
        f"/settings/api-keys/{ids.key_id}/revoke",
        "/settings/operators",
        f"/settings/operators/{ids.operator_id}/role",
        f"/settings/operators/{ids.operator_id}/remove",
        f"/settings/operators/{ids.operator_id}/disable",
    ):
        answer = client.post(base + path, data={"name": "x", "code": "x", "role": "admin"})
        assert answer.status_code == 403, path
    with db.read() as conn:
        assert conn.execute(select(a.id).order_by(a.id.desc())).scalar() == before  # nothing written


def test_every_new_label_is_in_each_language() -> None:
    assert set(SETTINGS_LABELS) == {"en", "bg", "ru", "kk"}
    for language, texts in SETTINGS_LABELS.items():
        assert set(texts) == set(SETTINGS_LABELS["en"]), language
    assert set(EXTRA) == {"en", "bg", "ru", "kk"}
    for language, texts in EXTRA.items():
        assert set(texts) == set(EXTRA["en"]), language
        assert all(x.strip() for x in texts.values()), language


def test_product_and_webhook_endpoint_edits_with_the_api_s_checks(
    setup: tuple[Database, FixedClock, ConsoleWorld], client: TestClient
) -> None:
    """Finance renames a product and describes it (a blank name refused by its field, support refused),
    visible through the API's own update and read; an admin changes an endpoint's URL and events with
    the API's checks (a private address, a bad event pattern: by the field, what was typed kept)."""
    db, clock, world = setup
    ids = world.settings
    assert ids is not None
    org, base = world.tenant.org_id, f"/console/{world.tenant.org_id}"
    login(client, world.emails["support"])
    token = csrf_token(client.get(f"{base}/catalog/products/{ids.product_id}").text)
    edit = {"csrf_token": token, "name": "Renamed", "detail": "Fast <b>VPS</b>"}
    assert client.post(f"{base}/catalog/products/{ids.product_id}", data=edit).status_code == 403
    client.cookies.clear()
    login(client, world.emails["finance"])
    token = csrf_token(client.get(f"{base}/catalog/products/{ids.product_id}").text)
    blank = client.post(
        f"{base}/catalog/products/{ids.product_id}", data={**edit, "csrf_token": token, "name": " "}
    )
    assert blank.status_code == 422
    assert 'id="prod-name-error"' in blank.text
    saved = client.post(f"{base}/catalog/products/{ids.product_id}", data={**edit, "csrf_token": token})
    assert saved.status_code == 200
    assert "Fast &lt;b&gt;VPS&lt;/b&gt;" in saved.text
    assert (
        _audit_actor(db, org, "product", "updated") == f"operator:{_operator_id(db, world.emails['finance'])}"
    )
    key = access.create_api_key(db, clock, org).secret
    api = {"Authorization": f"Bearer {key}"}
    assert client.get(f"/api/v1/products/{ids.product_id}", headers=api).json()["name"] == "Renamed"
    by_api = client.post(f"/api/v1/products/{ids.product_id}", json={"detail": ""}, headers=api)
    assert by_api.status_code == 200
    assert by_api.json()["detail"] == ""
    assert by_api.json()["name"] == "Renamed"
    assert (
        client.post(f"/api/v1/products/{ids.product_id}", json={"name": ""}, headers=api).status_code == 422
    )
    assert (
        client.post(f"/api/v1/products/{ids.other_product_id}", json={"name": "x"}, headers=api).status_code
        == 404
    )

    client.cookies.clear()
    login(client, world.emails["admin"])
    page = client.get(f"{base}/settings/webhooks/{ids.endpoint_id}")
    token = csrf_token(page.text)
    hook = f"{base}/settings/webhooks/{ids.endpoint_id}"
    private = client.post(hook, data={"csrf_token": token, "url": "http://127.0.0.1/x", "event_types": "*"})
    assert private.status_code == 422
    assert 'id="e-url-error"' in private.text
    assert 'value="http://127.0.0.1/x"' in private.text
    bad = client.post(
        hook, data={"csrf_token": token, "url": "https://erp.example/h", "event_types": "invoice.*, Nope!"}
    )
    assert bad.status_code == 422
    assert 'id="e-event_types-error"' in bad.text
    done = client.post(
        hook,
        data={
            "csrf_token": token,
            "url": "https://erp.example/h",
            "event_types": "invoice.*",
            "description": "ERP",
        },
    )
    assert done.status_code == 200
    shown = client.get(f"/api/v1/webhook_endpoints/{ids.endpoint_id}", headers=api).json()
    assert (shown["url"], shown["event_types"], shown["description"]) == (
        "https://erp.example/h",
        ["invoice.*"],
        "ERP",
    )
    assert (
        _audit_actor(db, org, "webhook_endpoint", "updated")
        == f"operator:{_operator_id(db, world.emails['admin'])}"
    )
