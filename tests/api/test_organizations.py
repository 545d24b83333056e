"""Organisation settings through the API: own organisation by its key, any by a platform admin key,
nothing of another tenant's; field-level problems; audit and outbox; the seller snapshot of new
documents only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_admin_key, create_api_key, create_customer_token, revoke_admin_key
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.api_support import api_client, auth
from tests.builders import make_customer, make_tenant

PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5f6c27e0000000049454e44ae426082"
)
IBAN_BG = "BG80BNBG96611020345678"


def _errors(response: Any) -> dict[str, str]:
    body = response.json()
    return {e["field"]: e["detail"] for e in body.get("errors", [])}


def test_an_organisation_key_reads_and_updates_only_its_own(db: Database, clock: FixedClock) -> None:
    bg = make_tenant(db, clock, "bg", slug="own-bg")
    us = make_tenant(db, clock, "us", slug="own-us")
    bg_key = create_api_key(db, clock, bg.org_id).secret
    us_key = create_api_key(db, clock, us.org_id).secret
    customer = make_customer(db, clock, bg, 1)
    token = create_customer_token(db, clock, bg.org_id, customer).secret
    with api_client(db, clock) as api:
        got = api.get("/api/v1/organization", headers=auth(bg_key))
        assert got.status_code == 200, got.text
        assert got.json()["id"] == bg.org_id
        assert got.json()["paper_size"] == "a4"
        assert api.get("/api/v1/organization", headers=auth(us_key)).json()["paper_size"] == "letter"
        changed = api.post(
            "/api/v1/organization",
            headers=auth(bg_key),
            json={
                "trading_name": "Alpha Cloud",
                "address": {"lines": ["ul. Vitosha 1"], "region": "Sofia-grad"},
            },
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["trading_name"] == "Alpha Cloud"
        assert changed.json()["address"]["lines"] == ["ul. Vitosha 1"]
        assert api.get("/api/v1/organization", headers=auth(us_key)).json()["trading_name"] is None
        # an organisation key has no platform routes, and a customer token no settings
        assert api.get("/api/v1/organizations", headers=auth(bg_key)).status_code == 403
        assert api.post("/api/v1/organizations", headers=auth(bg_key), json={}).status_code == 403
        # another organisation is a 404, never its data; its own id is the same as /organization
        assert api.get(f"/api/v1/organizations/{us.org_id}", headers=auth(bg_key)).status_code == 404
        sneaky = api.post(f"/api/v1/organizations/{us.org_id}", headers=auth(bg_key), json={"locale": "bg"})
        assert sneaky.status_code == 404
        assert api.get("/api/v1/organization", headers=auth(us_key)).json()["locale"] == "en"
        own = api.get(f"/api/v1/organizations/{bg.org_id}", headers=auth(bg_key))
        assert own.status_code == 200
        assert own.json()["trading_name"] == "Alpha Cloud"
        assert api.get(f"/api/v1/organizations/{bg.org_id}", headers=auth(token)).status_code == 403
        assert api.get("/api/v1/organization", headers=auth(token)).status_code == 403
        assert (
            api.post("/api/v1/organization", headers=auth(token), json={"trading_name": "x"}).status_code
            == 403
        )
        assert api.get("/api/v1/organization").status_code == 401


def test_an_admin_key_creates_lists_reads_and_updates_organisations(db: Database, clock: FixedClock) -> None:
    existing = make_tenant(db, clock, "kz", slug="adm-kz")
    admin = create_admin_key(db, clock, name="ops")
    assert admin.secret.startswith("fak_")
    with api_client(db, clock) as api:
        created = api.post(
            "/api/v1/organizations",
            headers=auth(admin.secret),
            json={"legal_name": "Acme Tools Inc.", "country": "US", "tax_id": "043190200"},
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["default_currency"] == "USD"
        assert body["timezone"] == "America/New_York"
        assert body["vat_registered"] is False
        assert body["paper_size"] == "letter"
        assert body["tax_id"] == "04-3190200"
        assert body["tax_id_type"] == "us_ein"
        new_key = body["api_key"]["secret"]
        assert api.get("/api/v1/organization", headers=auth(new_key)).json()["id"] == body["id"]
        listed = api.get("/api/v1/organizations?limit=10", headers=auth(admin.secret)).json()
        assert {o["id"] for o in listed["data"]} == {existing.org_id, body["id"]}
        one = api.get(f"/api/v1/organizations/{existing.org_id}", headers=auth(admin.secret))
        assert one.json()["country"] == "KZ"
        assert one.json()["tax_id_type"] == "kz_bin"
        upd = api.post(
            f"/api/v1/organizations/{existing.org_id}", headers=auth(admin.secret), json={"locale": "kk"}
        )
        assert upd.status_code == 200
        assert upd.json()["locale"] == "kk"
        assert api.get("/api/v1/organizations/999999", headers=auth(admin.secret)).status_code == 404
        # an admin key reaches no organisation's data
        assert api.get("/api/v1/customers", headers=auth(admin.secret)).status_code == 401
        revoke_admin_key(db, clock, admin.id)
        assert api.get("/api/v1/organizations", headers=auth(admin.secret)).status_code == 401
    with db.read() as conn:
        audit = conn.execute(
            select(t.audit_events.c.actor, t.audit_events.c.action).where(
                t.audit_events.c.entity_type == "organization", t.audit_events.c.entity_id == existing.org_id
            )
        ).all()
    assert (f"admin_key:{admin.id}", "updated") in [tuple(a) for a in audit]


def test_validation_problems_name_the_field(db: Database, clock: FixedClock) -> None:
    bg = make_tenant(db, clock, "bg", slug="val-bg")
    key = create_api_key(db, clock, bg.org_id).secret
    cases: list[tuple[dict[str, Any], str]] = [
        ({"vat_id": "BG123"}, "vat_id"),
        ({"tax_id": "123456789"}, "tax_id"),
        ({"bank_accounts": [{"iban": "BG80BNBG96611020345679"}]}, "bank_accounts.0.iban"),
        ({"bank_accounts": [{"iban": IBAN_BG, "bic": "DEUTDEFF"}]}, "bank_accounts.0.bic"),
        ({"bank_accounts": [{"label": "no number"}]}, "bank_accounts.0"),
        ({"default_currency": "XXX"}, "default_currency"),
        ({"locale": "de"}, "locale"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"paper_size": "a3"}, "paper_size"),
        ({"payment_terms_days": 400}, "payment_terms_days"),
        ({"footers": {"de": "Danke"}}, "footers.de.[key]"),  # the key is at fault
        ({"vat_registered": True, "country": "BG", "vat_id": None}, "vat_id"),
        ({"facturx_enabled": True, "tax_rounding": "line"}, "facturx_enabled"),
        ({"country": "ZZ"}, "country"),
        ({"colour": "red"}, "colour"),
        ({"legal_name": None}, "legal_name"),
        ({"address": None}, "address"),
        ({"address": {"lines": None}}, "address.lines"),
        ({"vat_rates": {"standard": 1}}, "vat_rates.standard"),
    ]
    # Well-formed changes that contradict the organisation's stored settings: field conflicts (409).
    conflicts: list[tuple[dict[str, Any], str]] = [
        ({"vat_id": None}, "vat_id"),  # a VAT-registered BG organisation prints its VAT ID
        ({"vat_registered": True, "vat_id": ""}, "vat_id"),
        ({"country": "US"}, "vat_rates"),  # VAT-registered, with no US rate stored
    ]
    with api_client(db, clock) as api:
        for body, field in cases:
            response = api.post("/api/v1/organization", headers=auth(key), json=body)
            assert response.status_code == 422, (body, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert field in _errors(response), (body, response.json())
        facturx = api.post("/api/v1/organization", headers=auth(key), json={"facturx_enabled": True})
        assert facturx.status_code == 200, facturx.text
        conflicts.append(({"tax_rounding": "line"}, "facturx_enabled"))  # EN 16931 BR-S-09
        for body, field in conflicts:
            response = api.post("/api/v1/organization", headers=auth(key), json=body)
            assert response.status_code == 409, (body, response.text)
            assert response.json()["code"] == "field_conflict"
            assert field in _errors(response), (body, response.json())
        ok = api.post(
            "/api/v1/organization",
            headers=auth(key),
            json={
                "tax_id": "175074752",
                "bank_accounts": [{"iban": "bg80 bnbg 9661 1020 3456 78", "bic": "BNBGBGSF"}],
            },
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["bank_accounts"][0]["iban"] == IBAN_BG
        assert ok.json()["tax_id_type"] == "bg_eik"


def test_a_change_is_audited_and_announced_and_a_no_op_is_not(db: Database, clock: FixedClock) -> None:
    us = make_tenant(db, clock, "us", slug="evt-us")
    key = create_api_key(db, clock, us.org_id).secret
    with api_client(db, clock) as api:
        api.post("/api/v1/organization", headers=auth(key), json={"footers": {"en": "Thank you."}})
        api.post("/api/v1/organization", headers=auth(key), json={"footers": {"en": "Thank you."}})
    with db.read() as conn:
        events = conn.execute(
            select(t.outbox_events.c.payload).where(
                t.outbox_events.c.organization_id == us.org_id,
                t.outbox_events.c.type == "organization.updated",
            )
        ).all()
        audits = conn.execute(
            select(t.audit_events.c.before, t.audit_events.c.after).where(
                t.audit_events.c.entity_type == "organization", t.audit_events.c.action == "updated"
            )
        ).all()
    assert len(events) == 1
    assert events[0].payload["changed"] == ["footers"]
    assert len(audits) == 1
    assert audits[0].after == {"footers": {"en": "Thank you."}}


def test_number_series_format_changes_never_renumber_and_counters_only_move_forward(
    db: Database, clock: FixedClock
) -> None:
    from fiscus.services.billing_run import run_billing

    us = make_tenant(db, clock, "us", slug="num-us")
    key = create_api_key(db, clock, us.org_id).secret
    customer = make_customer(db, clock, us, 4)
    create_subscription(db, clock, us.org_id, customer, [ItemSpec(us.monthly, 1)])
    run_billing(db, clock)
    numbers = select(t.documents.c.id, t.documents.c.number).where(t.documents.c.organization_id == us.org_id)
    with db.read() as conn:
        issued = conn.execute(numbers).one()
    assert issued.number == "0000001590"  # the builder's series: {seq:010} from 1590
    path = "/api/v1/organization/number_series/invoice/default"
    with api_client(db, clock) as api:
        back = api.post(path, headers=auth(key), json={"next_value": 1591 - 1})
        assert back.status_code == 409  # well-formed, but the counter is already past it
        assert "next_value" in _errors(back)
        unknown = api.post(f"{path}-new", headers=auth(key), json={"next_value": 5})
        assert unknown.status_code == 409  # a new series needs a format
        assert "format" in _errors(unknown)
        for name in ("d\u00e9faut", "a" * 33, "a.b"):
            named = api.post(f"/api/v1/organization/number_series/invoice/{name}", headers=auth(key), json={})
            assert named.status_code == 422, (name, named.text)
        bad = api.post(path, headers=auth(key), json={"format": "INV-{seq}-{seq}"})
        assert bad.status_code == 422
        assert "format" in _errors(bad)
        moved = api.post(path, headers=auth(key), json={"format": "US-{YYYY}-{seq:05}", "next_value": 2000})
        assert moved.status_code == 200, moved.text
        assert moved.json()["format"] == "US-{YYYY}-{seq:05}"
        assert moved.json()["next_value"] == 2000
        new = api.post(
            "/api/v1/organization/number_series/invoice/eu", headers=auth(key), json={"format": "EU{seq:04}"}
        )
        assert new.status_code == 200
        assert new.json()["next_value"] == 1
        series = api.get("/api/v1/organization", headers=auth(key)).json()["number_series"]
        assert {(s["document_type"], s["series"]) for s in series} >= {
            ("invoice", "default"),
            ("invoice", "eu"),
        }
    clock.advance(timedelta(days=32))
    run_billing(db, clock)
    with db.read() as conn:
        after = {r.id: r.number for r in conn.execute(numbers)}
    assert after[issued.id] == "0000001590"  # the issued number is kept
    (second,) = [n for i, n in after.items() if i != issued.id]
    assert second == f"US-{clock.now().year}-02000"


def test_issued_documents_keep_their_seller_and_new_ones_show_the_change(
    db: Database, clock: FixedClock
) -> None:
    """Issue, change settings, issue again: the first document's seller is unchanged."""
    from fiscus.services.billing_run import run_billing

    bg = make_tenant(db, clock, "bg", slug="snap-bg")
    key = create_api_key(db, clock, bg.org_id).secret
    customer = make_customer(db, clock, bg, 3)
    create_subscription(db, clock, bg.org_id, customer, [ItemSpec(bg.monthly, 1)])
    run_billing(db, clock)
    with db.read() as conn:
        first = conn.execute(
            select(t.documents.c.id, t.documents.c.seller).where(t.documents.c.organization_id == bg.org_id)
        ).one()
    assert first.seller["bank_accounts"] == []
    assert first.seller["paper_size"] == "a4"
    with api_client(db, clock) as api:
        svg = (
            b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><rect width="9" height="9"/></svg>'
        )
        assert (
            api.post(
                "/api/v1/organization/logo",
                headers=auth(key),
                files={"file": ("l.svg", svg, "image/svg+xml")},
            ).status_code
            == 200
        )
        changed = api.post(
            "/api/v1/organization",
            headers=auth(key),
            json={
                "legal_name": "Alpha Cloud EOOD",
                "trading_name": "Alpha",
                "address": {
                    "lines": ["bul. Bulgaria 2"],
                    "city": "Plovdiv",
                    "postal_code": "4000",
                    "region": "Plovdiv",
                },
                "tax_id": "175074752",
                "bank_accounts": [{"iban": IBAN_BG, "bic": "BNBGBGSF", "bank_name": "BNB"}],
                "footers": {"bg": "Благодарим!"},
                "paper_size": "letter",
            },
        )
        assert changed.status_code == 200, changed.text
        logo_hash = changed.json()["logo"]["sha256"]
    with db.read() as conn:
        unchanged = conn.execute(
            select(t.documents.c.seller).where(t.documents.c.id == first.id)
        ).scalar_one()
    assert unchanged == first.seller
    clock.advance(timedelta(days=32))
    run_billing(db, clock)
    with db.read() as conn:
        second = conn.execute(
            select(t.documents.c.seller)
            .where(t.documents.c.organization_id == bg.org_id, t.documents.c.id != first.id)
            .order_by(t.documents.c.id.desc())
        ).first()
    assert second is not None
    seller = second.seller
    assert seller["legal_name"] == "Alpha Cloud EOOD"
    assert seller["trading_name"] == "Alpha"
    assert seller["address_line1"] == "bul. Bulgaria 2"
    assert seller["region"] == "Plovdiv"
    assert seller["tax_id"] == "175074752"
    assert seller["vat_registered"] is True
    assert seller["bank_accounts"][0]["iban"] == IBAN_BG
    assert seller["footers"] == {"bg": "Благодарим!"}
    assert seller["paper_size"] == "letter"
    assert seller["logo_sha256"] == logo_hash


def test_the_sandbox_follows_its_organisation_but_not_the_other_way(db: Database, clock: FixedClock) -> None:
    from fiscus.services.instance import NewOrganization, initialize

    created = initialize(db, clock, NewOrganization(legal_name="Acme Inc.", country="US"))
    assert created.test_key is not None
    live, test = created.key.secret, created.test_key.secret
    with api_client(db, clock) as api:
        assert api.get("/api/v1/organization", headers=auth(test)).json()["mode"] == "test"
        api.post("/api/v1/organization", headers=auth(live), json={"trading_name": "Acme"})
        assert api.get("/api/v1/organization", headers=auth(test)).json()["trading_name"] == "Acme"
        api.post("/api/v1/organization", headers=auth(test), json={"trading_name": "Acme (test)"})
        assert api.get("/api/v1/organization", headers=auth(live)).json()["trading_name"] == "Acme"
        own_sandbox = api.get(f"/api/v1/organizations/{created.sandbox_id}", headers=auth(live))
        assert own_sandbox.status_code == 404  # a separate organisation, reached by its own (test) key


def test_an_admin_creates_a_vat_registered_organisation_with_its_rate_as_a_string(
    db: Database, clock: FixedClock
) -> None:
    admin = create_admin_key(db, clock).secret
    body = {"legal_name": "Steppe LLP", "country": "KZ", "vat_rate": 0.12, "tax_id": "180440012349"}
    with api_client(db, clock) as api:
        refused = api.post("/api/v1/organizations", headers=auth(admin), json=body)
        assert refused.status_code == 422
        assert "vat_rate" in _errors(refused)
        created = api.post("/api/v1/organizations", headers=auth(admin), json={**body, "vat_rate": "0.12"})
        assert created.status_code == 201, created.text
        assert created.json()["vat_registered"] is True
        assert created.json()["default_currency"] == "KZT"
    with db.read() as conn:
        rates = conn.execute(
            select(t.tax_rates.c.rate).where(t.tax_rates.c.organization_id == created.json()["id"])
        ).scalars()
        assert str(max(rates)) == "0.12"


def test_vat_registration_needs_a_rate_and_rates_reach_the_next_documents(
    db: Database, clock: FixedClock
) -> None:
    us = make_tenant(db, clock, "us", slug="vat-us")
    key = create_api_key(db, clock, us.org_id).secret
    with api_client(db, clock) as api:
        assert api.get("/api/v1/organization", headers=auth(key)).json()["vat_rates"] == {
            "standard": None,
            "reduced": None,
        }
        refused = api.post("/api/v1/organization", headers=auth(key), json={"vat_registered": True})
        assert refused.status_code == 409  # this organisation has no rate yet
        assert "vat_rates" in _errors(refused)
        bad = api.post("/api/v1/organization", headers=auth(key), json={"vat_rates": {"standard": "1.5"}})
        assert "vat_rates.standard" in _errors(bad)
        only_reduced = api.post(
            "/api/v1/organization", headers=auth(key), json={"vat_rates": {"reduced": "0.05"}}
        )
        assert "vat_rates.standard" in _errors(only_reduced)
        ok = api.post(
            "/api/v1/organization",
            headers=auth(key),
            json={"vat_registered": True, "vat_rates": {"standard": "0.0725", "reduced": "0.05"}},
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["vat_registered"] is True
        assert ok.json()["vat_rates"] == {"standard": "0.0725", "reduced": "0.05"}
        again = api.post(
            "/api/v1/organization", headers=auth(key), json={"vat_rates": {"standard": "0.07250"}}
        )
        assert again.json()["vat_rates"]["standard"] == "0.0725"
    with db.read() as conn:
        events = conn.execute(
            select(t.outbox_events.c.payload).where(t.outbox_events.c.type == "organization.updated")
        ).all()
    assert len(events) == 1  # the same rate written differently, the reduced one left out: no change
    assert set(events[0].payload["changed"]) == {"vat_registered", "vat_rates"}
