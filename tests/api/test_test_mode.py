"""Test mode and live mode, visibly apart: an organisation's test-mode sandbox is an organisation of its
own, so a test key sees only test data on every list and get of the native API and the three dialects;
its documents say `livemode: false`, carry a TEST mark on the PDF and the hosted page, and are numbered
from the sandbox's own series, so a test never consumes a legal number."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pypdf
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.pdf.renderer import PdfRenderer
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key, stored_test_keys
from fiscus.services.billing_run import run_billing
from fiscus.services.payment_links import link_secret, payment_path
from fiscus.services.rendering import ensure_pdf
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.api_support import OrgWorld, api_client, auth, build_world
from tests.builders import make_customer

NATIVE_LISTS = (
    "/api/v1/customers",
    "/api/v1/products",
    "/api/v1/prices",
    "/api/v1/subscriptions",
    "/api/v1/orders",
    "/api/v1/documents",
)
OWNED = {
    "/api/v1/customers": t.customers,
    "/api/v1/products": t.products,
    "/api/v1/prices": t.prices,
    "/api/v1/subscriptions": t.subscriptions,
    "/api/v1/orders": t.orders,
    "/api/v1/documents": t.documents,
}
DOCUMENT_GETS = (
    "/api/v1/documents/{id}",
    "/v1/billing/invoices/{id}/",
    "/invoices/{id}",
    "/v1/invoices/{id}",
)


def _sandboxed(db: Database, clock: FixedClock) -> tuple[OrgWorld, str, OrgWorld, str]:
    """The API world's two organisations made one business: beta becomes alpha's test-mode sandbox
    (as `fiscus init` makes them), each with a key of its mode."""
    live, test = build_world(db, clock)
    with db.write() as conn:
        conn.execute(
            t.organizations.update()
            .where(t.organizations.c.id == test.org_id)
            .values(mode="test", sandbox_of=live.org_id)
        )
    test_key = create_api_key(db, clock, test.org_id, name="test").secret
    assert test_key.startswith("fsk_test_")
    assert live.key.startswith("fsk_live_")
    return live, live.key, test, test_key


def _owned(db: Database, table: Any, org_id: int) -> set[int]:
    with db.read() as conn:
        return set(conn.execute(select(table.c.id).where(table.c.organization_id == org_id)).scalars())


def _listed(api: TestClient, key: str) -> dict[str, set[int]]:
    """Every id each list route shows to `key` (native lists, and the three dialects' invoice lists)."""
    h = auth(key)
    out: dict[str, set[int]] = {}
    for path in NATIVE_LISTS:
        response = api.get(f"{path}?limit=100", headers=h)
        assert response.status_code == 200, (path, response.text)
        out[path] = {int(x["id"]) for x in response.json()["data"]}
    billing = api.get("/v1/billing/invoices/?pageSize=100", headers=h).json()
    out["billing"] = {int(x["id"]) for x in billing["results"]}
    out["payments"] = {
        int(x["id"]) for x in api.get("/invoices?limit=100", headers=h).json()["data"]["items"]
    }
    out["vps"] = {int(x["id"]) for x in api.get("/v1/invoices?page=1", headers=h).json()["data"]}
    return out


def test_a_test_key_sees_test_data_only_on_every_list_and_get(db: Database, clock: FixedClock) -> None:
    live, live_key, test, test_key = _sandboxed(db, clock)
    with api_client(db, clock) as api:
        seen = {"live": _listed(api, live_key), "test": _listed(api, test_key)}
        for mode, world in (("live", live), ("test", test)):
            other = test if world is live else live
            for path, table in OWNED.items():
                assert seen[mode][path], (mode, path)
                assert seen[mode][path] <= _owned(db, table, world.org_id), (mode, path)
                assert not seen[mode][path] & _owned(db, table, other.org_id), (mode, path)
            documents = _owned(db, t.documents, world.org_id)
            for dialect in ("billing", "payments", "vps"):
                assert seen[mode][dialect], (mode, dialect)
                assert seen[mode][dialect] <= documents, (mode, dialect)
        # every document id of the other mode is a 404 on every get, in each surface
        for key, foreign in ((test_key, live), (live_key, test)):
            for doc_id in sorted(_owned(db, t.documents, foreign.org_id)):
                for template in DOCUMENT_GETS:
                    path = template.format(id=doc_id)
                    assert api.get(path, headers=auth(key)).status_code == 404, path
            for cid in foreign.customers:
                assert api.get(f"/api/v1/customers/{cid}", headers=auth(key)).status_code == 404
        # livemode, Stripe's name, on documents and the organisation
        for key, expected in ((live_key, True), (test_key, False)):
            docs = api.get("/api/v1/documents?limit=100", headers=auth(key)).json()["data"]
            assert {d["livemode"] for d in docs} == {expected}
            one = api.get(f"/api/v1/documents/{docs[0]['id']}", headers=auth(key)).json()
            assert one["livemode"] is expected
            org = api.get("/api/v1/organization", headers=auth(key)).json()
            assert (org["livemode"], org["mode"]) == (expected, "live" if expected else "test")
        # a customer token of the sandbox is a test-mode principal of test data too
        _cid, token = next(iter(test.tokens.items()))
        docs = api.get("/api/v1/documents?limit=100", headers=auth(token)).json()["data"]
        assert docs
        assert {d["livemode"] for d in docs} == {False}


def test_test_documents_have_their_own_series_and_never_consume_a_legal_number(
    db: Database, clock: FixedClock
) -> None:
    live, _, test, _ = _sandboxed(db, clock)
    s, d = t.number_series.c, t.documents.c

    def counters(org_id: int) -> dict[str, int]:
        with db.read() as conn:
            rows = conn.execute(select(s.document_type, s.next_value).where(s.organization_id == org_id))
            return {r.document_type: int(r.next_value) for r in rows}

    def numbers(org_id: int) -> list[int]:
        with db.read() as conn:
            query = select(d.sequence).where(d.organization_id == org_id, d.type == "invoice")
            return sorted(int(n) for n in conn.execute(query).scalars() if n is not None)

    live_before, live_numbers = counters(live.org_id), numbers(live.org_id)
    test_before = counters(test.org_id)
    # a month of test-mode billing: more test invoices, numbered from the sandbox's counter
    extra = make_customer(db, clock, test.tenant, 40)
    create_subscription(db, clock, test.org_id, extra, [ItemSpec(test.tenant.monthly, 1)])
    clock.advance(timedelta(days=40))
    run_billing(db, clock, organization_id=test.org_id)
    assert counters(test.org_id)["invoice"] > test_before["invoice"]
    assert counters(live.org_id) == live_before
    assert numbers(live.org_id) == live_numbers
    # the live series stays gapless from its start: no number went to a test
    assert live_numbers == list(range(1590, 1590 + len(live_numbers)))
    # and the next live invoice takes the very next legal number
    run_billing(db, clock, organization_id=live.org_id)
    after = numbers(live.org_id)
    assert after[: len(live_numbers)] == live_numbers
    assert after == list(range(1590, 1590 + len(after)))


def _pdf_text(path: Path) -> str:
    return " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(path.read_bytes())).pages)


def test_test_documents_are_marked_test_on_the_pdf_and_the_hosted_page(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    live, _, test, _ = _sandboxed(db, clock)
    renderer = PdfRenderer()
    secret = link_secret(db, clock, None)
    with api_client(db, clock, gateway_url=None) as api:
        for world, marked in ((live, False), (test, True)):
            with db.read() as conn:
                doc_id = conn.execute(
                    select(t.documents.c.id)
                    .where(t.documents.c.organization_id == world.org_id, t.documents.c.type == "invoice")
                    .limit(1)
                ).scalar_one()
            text = _pdf_text(ensure_pdf(db, clock, renderer, tmp_path, world.org_id, doc_id))
            assert ("TEST" in text) is marked, text[:200]
            assert ("Test mode: not a valid tax document" in text) is marked
            page = api.get(payment_path(secret, world.org_id, doc_id))
            assert page.status_code == 200
            assert ('data-testid="test-mode"' in page.text) is marked


def test_test_mode_keys_are_kept_to_be_shown_again_and_live_keys_never(
    db: Database, clock: FixedClock
) -> None:
    live, _live_key, test, test_key = _sandboxed(db, clock)
    assert [k.secret for k in stored_test_keys(db, test.org_id)] == [test_key]
    assert stored_test_keys(db, live.org_id) == []
    with db.read() as conn:
        kept = conn.execute(select(t.api_keys.c.secret).where(t.api_keys.c.organization_id == live.org_id))
        assert set(kept.scalars()) == {None}
    with pytest.raises(IntegrityError), db.write() as conn:  # the database refuses a kept live secret
        conn.execute(
            t.api_keys.update().where(t.api_keys.c.organization_id == live.org_id).values(secret="fsk_live_x")
        )
