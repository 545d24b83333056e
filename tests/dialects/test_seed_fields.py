"""On the seeded demo (a year of history, card payments over the test gateway), every page of every list
and every single invoice of the three dialects, for every organisation's key, against the type model
derived from the seed documents (`seed_contract`): every field a seed shows as a value carries one of
that JSON type, and its date-times parse in the seed's format. Also: the native `hosted_url` is the same
link as seed 000's `transaction_url`, and every such link opens a page that shows the document's state.

No exceptions: a field with nothing to say in some state carries its documented "none" value (`card`
0, `paymentProfileId` "", `captured_at` the document's `created_at`, ...; docs/dialects/). Only what a
seed's own schema declares nullable (`seed_contract.NULLABLE`: the page links) may be null."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from fiscus.services.billing_run import run_billing
from fiscus.services.orders import create_order
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.api_support import auth, make_app
from tests.builders import make_customer, make_tenant
from tests.demo_support import DEMO_NOW, gateway_demo_on
from tests.dialects.seed_contract import (
    NULLABLE,
    SCHEMA_TYPES,
    SEEDS_DIR,
    SHARED_SEEDS,
    Shape,
    derive,
    seed_example,
    violations,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gateway_demo")]  # one worker seeds `demo` once
NOW: Final = DEMO_NOW


def _shapes() -> dict[str, Shape]:
    billing = derive(seed_example("billing_list"))
    vps = derive(seed_example("vps_list"), SCHEMA_TYPES["vps"])
    assert billing.fields["results"].item is not None
    assert vps.fields["data"].item is not None
    return {
        "billing_list": billing,
        "billing_one": billing.fields["results"].item,
        "payments_list": derive(seed_example("payments_list")),
        "payments_one": derive(seed_example("payments_get")),
        "vps_list": vps,
        "vps_one": Shape("object", fields={"data": vps.fields["data"].item}),
    }


@pytest.fixture
def demo(request: pytest.FixtureRequest) -> tuple[Database, dict[int, str], str]:
    """The demo with its card payments on SQLite (`gateway_demo_on`: seeded once, shared with
    tests/integration/test_demo.py); the gateway stays up for the pages."""
    seeded = gateway_demo_on("sqlite", request)
    return seeded.db, {o.id: str(o.api_key) for o in seeded.result.organizations}, seeded.gateway_url


def test_the_seed_examples_are_copied_verbatim() -> None:
    """The type model comes from the seed documents themselves (when `../shared/seeds/` is here)."""
    if not SHARED_SEEDS.is_dir():
        pytest.skip(f"{SHARED_SEEDS} is not here (a user's clone): nothing to compare the copies with")
    texts = {p.name[:3]: p.read_text(encoding="utf-8") for p in SHARED_SEEDS.glob("*.txt")}
    for name, seed in (
        ("billing_list", "000"),
        ("payments_get", "001"),
        ("payments_list", "001"),
        ("vps_list", "002"),
    ):
        copy = (SEEDS_DIR / f"{name}.json").read_text(encoding="utf-8").strip()
        assert copy in texts[seed], name
        json.loads(copy)


def _walk_billing(api: TestClient, h: dict[str, str], *, singles: bool = True) -> Iterator[tuple[str, Any]]:
    """Every page of the list and (`singles`) every invoice fetched on its own."""
    page = 1
    while True:
        body = api.get("/v1/billing/invoices/", params={"page": page, "pageSize": 100}, headers=h).json()
        yield "billing_list", body
        for inv in body["results"] if singles else ():
            yield "billing_one", api.get(f"/v1/billing/invoices/{inv['id']}/", headers=h).json()
        if body["next"] is None:
            return
        page += 1


def _walk_payments(api: TestClient, h: dict[str, str]) -> Iterator[tuple[str, Any]]:
    params = {"limit": "100"}
    while True:
        body = api.get("/invoices", params=params, headers=h).json()
        yield "payments_list", body
        for inv in body["data"]["items"]:
            yield "payments_one", api.get(f"/invoices/{inv['id']}", headers=h).json()
        if not body["data"]["hasMore"]:
            return
        params["startingAfter"] = body["data"]["items"][-1]["id"]


def _walk_vps(api: TestClient, h: dict[str, str]) -> Iterator[tuple[str, Any]]:
    page = 1
    while True:
        body = api.get("/v1/invoices", params={"page": page}, headers=h).json()
        yield "vps_list", body
        for inv in body["data"]:
            yield "vps_one", api.get(f"/v1/invoices/{inv['id']}", headers=h).json()
        if body["links"]["next"] is None:
            return
        page += 1


def test_every_field_the_seeds_show_as_a_value_has_one(demo: tuple[Database, dict[int, str], str]) -> None:
    db, keys, gateway = demo
    shapes = _shapes()
    responses: list[tuple[str, Any]] = []
    with TestClient(make_app(db, FixedClock(NOW), gateway_url=gateway), raise_server_exceptions=False) as api:
        for key in keys.values():
            h = auth(key)
            for walk in (_walk_billing, _walk_payments, _walk_vps):
                responses.extend(walk(api, h))
    faults: Counter[str] = Counter()
    for name, body in responses:
        dialect = name.split("_")[0]
        for problem in violations(shapes[name], body, nullable=frozenset(NULLABLE.get(dialect, ()))):
            faults[f"{name} {problem}"] += 1
    pages = Counter(name for name, _ in responses)
    print(f"responses walked: {dict(pages)}")
    assert pages["billing_one"] >= 700
    assert pages["payments_one"] >= 700
    assert pages["vps_one"] >= 600
    assert not faults, "\n".join(f"{n} × {f}" for f, n in faults.most_common())


def test_hosted_url_is_transaction_url_and_every_link_shows_the_state(
    demo: tuple[Database, dict[int, str], str],
) -> None:
    db, keys, gateway = demo
    kinds: Counter[tuple[str, str]] = Counter()
    with TestClient(make_app(db, FixedClock(NOW), gateway_url=gateway), raise_server_exceptions=False) as api:
        for key in keys.values():
            h = auth(key)
            billing = {  # the list pages suffice (each invoice on its own: the test above)
                inv["id"]: inv
                for name, body in _walk_billing(api, h, singles=False)
                if name == "billing_list"
                for inv in body["results"]
            }
            after: dict[str, str] = {}
            native: dict[int, Any] = {}
            while True:
                page = api.get("/api/v1/documents", params={"limit": 100, **after}, headers=h).json()
                native.update({d["id"]: d for d in page["data"]})
                if not page["has_more"]:
                    break
                after = {"starting_after": str(page["data"][-1]["id"])}
            for doc_id, inv in billing.items():
                if inv["status"] != "draft":  # a draft has no hosted page: its link is its PDF preview
                    assert native[doc_id]["hosted_url"] == inv["transaction_url"], doc_id
            assert all(d["hosted_url"] is None for d in native.values() if d["type"] == "credit_note")
            for inv in billing.values():
                if inv["status"] == "draft":
                    _assert_draft_preview(api, h, inv["transaction_url"])
                    continue
                page = api.get(urlsplit(inv["transaction_url"]).path)
                assert page.status_code == 200, (inv["id"], inv["status"], page.text[:200])
                assert page.headers["content-type"].startswith("text/html")
                kind = _notice_kind(page.text)
                has_form = "/hosted/tokenize" in page.text
                expected = EXPECTED_PAGE[inv["status"]]
                assert kind in expected or (has_form and "form" in expected), (inv["id"], inv["status"], kind)
                kinds[(inv["status"], "form" if has_form else kind or "none")] += 1
    print(f"hosted pages opened, by status and what they show: {dict(kinds)}")
    # the demo voids nothing; tests/pages covers the void page
    assert {status for status, _ in kinds} >= {"waiting", "paid", "converted", "failed"}


EXPECTED_PAGE: Final = {
    "paid": {"paid"},
    "canceled": {"info"},
    "converted": {"paid", "info"},
    "waiting": {"form", "info", "confirming", "authorized", "received"},
    "failed": {"form", "info", "confirming", "authorized"},
}
"""What a document's hosted page shows, by seed 000 status: a receipt once paid, the void state, what a
proforma became, and while something is due the card form (or why there is none: nothing left due
after credit notes, a payment being confirmed, an authorisation awaiting capture)."""


def _notice_kind(html: str) -> str | None:
    marker = 'data-kind="'
    start = html.find(marker)
    return None if start < 0 else html[start + len(marker) : html.index('"', start + len(marker))]


def _assert_draft_preview(api: TestClient, h: dict[str, str], url: str) -> None:
    """A draft's link opens its PDF preview with the caller's credential."""
    response = api.get(urlsplit(url).path, headers=h)
    assert response.status_code == 200, (url, response.text[:200])
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")


def test_a_draft_carries_every_field_and_its_links_open(db: Database, clock: FixedClock) -> None:
    """An organisation that keeps its documents as drafts (the demo issues everything): on every dialect
    a draft carries every field the seeds show as a value, and its `transaction_url` / `pdfUrl` open
    its PDF preview."""
    tenant = make_tenant(db, clock, "kz", slug="keeps-drafts", auto_issue=False)
    cid = make_customer(db, clock, tenant, 7)
    create_subscription(db, clock, tenant.org_id, cid, [ItemSpec(tenant.monthly, 1)])
    create_order(db, clock, tenant.org_id, cid, [ItemSpec(tenant.one_off, 1)])
    run_billing(db, clock)
    key = str(create_api_key(db, clock, tenant.org_id).secret)
    shapes = _shapes()
    h = auth(key)
    with TestClient(make_app(db, clock), raise_server_exceptions=False) as api:
        responses = [r for walk in (_walk_billing, _walk_payments, _walk_vps) for r in walk(api, h)]
        faults = [
            f"{name} {problem}"
            for name, body in responses
            for problem in violations(
                shapes[name], body, nullable=frozenset(NULLABLE.get(name.split("_")[0], ()))
            )
        ]
        assert not faults, "\n".join(faults)
        billing = [inv for name, body in responses if name == "billing_list" for inv in body["results"]]
        payments = [
            inv for name, body in responses if name == "payments_list" for inv in body["data"]["items"]
        ]
        assert [inv["status"] for inv in billing] == ["draft", "draft"]
        assert [inv["status"] for inv in payments] == ["DRAFT", "DRAFT"]
        for inv in billing:
            assert (inv["card"], inv["captured_amount"], inv["captured_at"]) == (0, "0.00", inv["created_at"])
            _assert_draft_preview(api, h, inv["transaction_url"])
        for inv in payments:
            assert (inv["paymentProfileId"], inv["network"], inv["totalPaymentAttempts"]) == ("", "", 0)
            assert inv["lastPaymentAttemptDate"] == inv["createdAt"]
            _assert_draft_preview(api, h, inv["pdfUrl"])
