"""Contract tests of the "billing" dialect (seed 000, a Django REST framework API) against a real
uvicorn server on SQLite and PostgreSQL: the documented invoice object, DRF's page-number envelope,
DRF's error shapes, tenant isolation, and money equal to the stored minor units."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import func, insert, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.domain.money import currency
from fiscus.services.access import (
    create_api_key,
    create_customer_token,
    revoke_api_key,
    revoke_customer_token,
)
from fiscus.services.billing_run import run_billing
from fiscus.services.documents import (
    convert_proforma,
    issue_document,
    mark_paid,
    mark_uncollectible,
    void_document,
)
from fiscus.services.orders import create_order
from fiscus.services.payment_links import is_valid, link_secret, parse_link
from fiscus.services.subscriptions import ItemSpec, create_subscription
from fiscus.testing.bulk import bulk_customers, bulk_orders, bulk_subscriptions
from tests.api_support import auth, build_world, live_server, make_app
from tests.builders import Tenant, make_customer, make_tenant
from tests.dialects.payment_expectations import expected_payments

LIST = "/v1/billing/invoices/"
BILLED = ("invoice", "proforma")
STATUS = {
    "draft": "draft",
    "open": "waiting",
    "paid": "paid",
    "void": "canceled",
    "uncollectible": "failed",
    "converted": "converted",
}
DOC_KEYS = [
    "id", "tenant", "card", "currency", "status", "total", "captured_amount", "refund_amount", "captured_at",
    "start_at", "end_at", "items", "errors", "transaction_url", "created_at",
]  # fmt: skip
ITEM_KEYS = [
    "id", "integration", "variant", "invoice", "type", "start_at", "end_at", "count", "price", "amount",
    "integration_period",
]  # fmt: skip
INTEGRATION_KEYS = [
    "id", "code", "name", "slug", "comment", "slogan", "type", "detail", "icon", "image", "image_alt",
    "disabled", "extra", "demo_enabled", "demo_duration", "tags", "modules", "visable",
]  # fmt: skip
VARIANT_KEYS = ["id", "name", "code", "limits"]
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
REALM = 'Bearer realm="api"'


def _body(response: httpx.Response) -> Any:
    return json.loads(response.text, parse_float=Decimal)


def _money_pattern(exponent: int) -> re.Pattern[str]:
    return re.compile(rf"^-?\d+\.\d{{{exponent}}}$" if exponent else r"^-?\d+$")


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@contextmanager
def _server(db: Database, clock: FixedClock, **settings: object) -> Iterator[httpx.Client]:
    with (
        live_server(make_app(db, clock, **settings)) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        yield client


def _billed_ids(db: Database, org_id: int, customer_id: int | None = None) -> list[int]:
    d = t.documents.c
    query = select(d.id).where(d.organization_id == org_id, d.type.in_(BILLED)).order_by(d.id.desc())
    if customer_id is not None:
        query = query.where(d.customer_id == customer_id)
    with db.read() as conn:
        return list(conn.execute(query).scalars())


def _sql_count(db: Database, org_id: int, customer_id: int | None = None) -> int:
    d = t.documents.c
    query = (
        select(func.count()).select_from(t.documents).where(d.organization_id == org_id, d.type.in_(BILLED))
    )
    if customer_id is not None:
        query = query.where(d.customer_id == customer_id)
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


def _money(minor: int, exponent: int) -> str:
    return str(Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


def _check_contract(
    db: Database, invoices: list[dict[str, Any]], transaction_urls: dict[int, str] | None = None
) -> None:
    """Every documented field, with its type and format, equal to what the engine stored. Without
    `transaction_urls`, every issued one has a valid signed link; with them, exactly those given."""
    ids = [inv["id"] for inv in invoices]
    with db.read() as conn:
        docs = {
            r["id"]: r for r in conn.execute(select(t.documents).where(t.documents.c.id.in_(ids))).mappings()
        }
        lines: dict[int, list[Any]] = defaultdict(list)
        for r in conn.execute(
            select(t.document_lines)
            .where(t.document_lines.c.document_id.in_(ids))
            .order_by(t.document_lines.c.document_id, t.document_lines.c.position)
        ).mappings():
            lines[r["document_id"]].append(r)
        placed = {
            r.document_id: r.created_at
            for r in conn.execute(
                select(t.document_orders.c.document_id, t.orders.c.created_at)
                .join(t.orders, t.orders.c.id == t.document_orders.c.order_id)
                .where(t.document_orders.c.document_id.in_(ids))
            )
        }
        ordered = {r.id: r.created_at for r in conn.execute(select(t.orders.c.id, t.orders.c.created_at))}
        products = {r["id"]: r for r in conn.execute(select(t.products)).mappings()}
        variants = {r["id"]: r for r in conn.execute(select(t.variants)).mappings()}
    for inv in invoices:
        doc = docs[inv["id"]]
        cur = currency(doc["currency"])
        money = _money_pattern(cur.exponent)
        zero = "0" if cur.exponent == 0 else "0." + "0" * cur.exponent
        assert list(inv) == DOC_KEYS
        assert _is_int(inv["id"])
        assert _is_int(inv["tenant"])
        assert doc["type"] in BILLED
        assert inv["tenant"] == doc["customer_id"]
        paid = expected_payments(db, doc["id"])
        assert inv["card"] == (paid.method_id or 0)  # 0: no card (no attempt yet)
        assert _is_int(inv["card"])
        assert inv["currency"] == doc["currency"]
        assert inv["status"] == STATUS[doc["status"]]
        assert money.match(inv["total"]), inv["total"]
        assert Decimal(inv["total"]).scaleb(cur.exponent) == doc["total_minor"]
        for field, minor in (
            ("captured_amount", paid.captured_minor),
            ("refund_amount", paid.refunded_minor),
        ):
            assert money.match(inv[field]), inv[field]
            assert Decimal(inv[field]).scaleb(cur.exponent) == minor
            assert minor or inv[field] == zero
        assert inv["captured_amount"] == _money(doc["amount_paid_minor"], cur.exponent)
        assert inv["refund_amount"] == _money(doc["amount_refunded_minor"], cur.exponent)
        # nothing captured: the document's own instant ("0.00" says nothing was)
        assert inv["captured_at"] == _ts(paid.captured_at or doc["created_at"])
        # a one-off order's document: the order's instant as both ends (one order per document here)
        assert inv["start_at"] == _ts(doc["period_start"] or placed[doc["id"]])
        assert inv["end_at"] == _ts(doc["period_end"] or placed[doc["id"]])
        assert inv["created_at"] == _ts(doc["created_at"])
        for stamp in (inv["start_at"], inv["end_at"], inv["created_at"]):
            assert TIMESTAMP.match(stamp), stamp
        assert TIMESTAMP.match(inv["captured_at"])
        assert inv["errors"] == [
            {"id": i, "code": code, "description": message, "created_at": _ts(at), "invoice": on}
            for i, code, message, at, on in paid.errors
        ]
        if doc["status"] == "draft":  # no hosted page: its PDF preview
            assert re.fullmatch(rf"https?://[^/]+/api/v1/documents/{doc['id']}/pdf", inv["transaction_url"])
        elif transaction_urls is not None:
            assert inv["transaction_url"] == transaction_urls[doc["id"]]
        else:  # signed with the installation's own key, on whatever base the server was reached at
            parsed = parse_link(inv["transaction_url"].rsplit("/", 1)[1])
            assert parsed is not None
            assert parsed[0] == doc["id"]
            secret = link_secret(db, FixedClock(doc["created_at"]), None)
            assert is_valid(secret, doc["organization_id"], doc["id"], parsed[1])
        assert len(inv["items"]) == len(lines[doc["id"]])
        for item, line in zip(inv["items"], lines[doc["id"]], strict=True):
            assert list(item) == ITEM_KEYS
            assert item["id"] == line["id"]
            assert item["invoice"] == doc["id"]
            assert item["integration_period"] == (line["subscription_period_id"] or 0)
            assert (item["integration_period"] == 0) == (line["kind"] == "order")
            own = line["order_id"] is None or line["period_start"] is not None
            assert item["start_at"] == _ts(line["period_start"] if own else ordered[line["order_id"]])
            assert item["end_at"] == _ts(line["period_end"] if own else ordered[line["order_id"]])
            for stamp in (item["start_at"], item["end_at"]):
                assert TIMESTAMP.match(stamp), stamp
            quantity = line["quantity"]
            assert _is_int(item["count"])  # an integer in the seed, always (docs/dialects/billing.md)
            assert money.match(item["amount"]), item["amount"]
            assert Decimal(item["amount"]).scaleb(cur.exponent) == line["amount_minor"]
            if quantity > 0 and quantity == quantity.to_integral_value():
                assert item["count"] == quantity
                assert Decimal(item["price"]) == line["unit_price"]
                assert re.match(rf"^\d+(\.\d{{{cur.exponent},}})?$", item["price"]), item["price"]
            else:  # a prorated, credit or fractional line: one item at what the line charges
                charged = line["amount_minor"] + (line["tax_minor"] if line["tax_inclusive"] else 0)
                assert item["count"] == 1
                assert money.match(item["price"].lstrip("-")), item["price"]
                assert Decimal(item["price"]).scaleb(cur.exponent) == charged
            product = products[line["product_id"]]
            integration = item["integration"]
            assert list(integration) == INTEGRATION_KEYS
            assert integration["id"] == product["id"]
            assert item["type"] == product["type"]
            for key in INTEGRATION_KEYS[1:-1]:
                assert integration[key] == product[key], key
            assert integration["visable"] is product["visible"]
            for key in ("disabled", "demo_enabled", "visable"):
                assert isinstance(integration[key], bool)
            assert all(isinstance(x, str) for x in integration["tags"] + integration["modules"])
            variant = variants[line["variant_id"]]
            assert list(item["variant"]) == VARIANT_KEYS
            assert item["variant"] == {
                "id": variant["id"],
                "name": variant["name"],
                "code": variant["code"],
                "limits": variant["limits"],
            }


def _monthly(db: Database, clock: FixedClock, months: int) -> None:
    start = clock.now()
    for month in range(months):
        clock.set(start + timedelta(days=31 * month))
        run_billing(db, clock)


def test_invoices_carry_every_documented_field_with_the_stored_figures(
    db: Database, clock: FixedClock
) -> None:
    worlds = build_world(db, clock)
    scales = []
    for kind in ("jp", "kw"):
        tenant = make_tenant(db, clock, kind, slug=f"scale-{kind}")
        customer = make_customer(db, clock, tenant, 1)
        create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly_big, 3)])
        create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, Decimal("1.5"))])
        scales.append((tenant, create_api_key(db, clock, tenant.org_id).secret))
    run_billing(db, clock)
    with _server(db, clock) as api:
        for key, org_id in [(w.key, w.org_id) for w in worlds] + [(k, s.org_id) for s, k in scales]:
            response = api.get(LIST, params={"pageSize": 100}, headers=auth(key))
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/json"
            body = _body(response)
            assert list(body) == ["count", "next", "previous", "results"]
            assert body["count"] == _sql_count(db, org_id) == len(body["results"])
            _check_contract(db, body["results"])
            for inv in body["results"]:
                one = api.get(f"{LIST}{inv['id']}/", headers=auth(key))
                assert one.status_code == 200
                assert _body(one) == inv
        jp, kw = (_body(api.get(LIST, headers=auth(k)))["results"] for _s, k in scales)
    assert {i["captured_amount"] for i in jp} == {"0"}
    assert {i["refund_amount"] for i in kw} == {"0.000"}
    prices = {item["price"] for inv in jp + kw for item in inv["items"]}
    assert {"3333.5", "10.1235", "750", "1.502"} <= prices
    # 1.5 units of 500 JPY and of 1.001 KWD: one item each, priced at the line's amount
    assert {item["count"] for inv in jp + kw for item in inv["items"]} == {3, 1}
    orders = [inv for inv in jp + kw if inv["items"][0]["integration_period"] == 0]
    assert len(orders) == 2
    assert all(o["start_at"] == o["end_at"] == o["items"][0]["start_at"] for o in orders)


def test_every_engine_status_has_its_dialect_status(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(
        db, clock, "us", slug="states", auto_issue=False, order_document=DocumentType.PROFORMA
    )
    key = create_api_key(db, clock, tenant.org_id).secret
    customer = make_customer(db, clock, tenant, 1)
    create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)])
    for _ in range(2):
        create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off, 1)])
    _monthly(db, clock, 4)
    d = t.documents.c
    with db.read() as conn:
        rows = conn.execute(
            select(d.id, d.type).where(d.organization_id == tenant.org_id).order_by(d.id)
        ).all()
    invoices = [r.id for r in rows if r.type == "invoice"]
    proformas = [r.id for r in rows if r.type == "proforma"]
    assert len(invoices) == 4
    assert len(proformas) == 2
    org = tenant.org_id
    for doc in [*invoices[1:], *proformas]:
        issue_document(db, clock, org, doc)
    mark_paid(db, clock, org, invoices[2])
    mark_uncollectible(db, clock, org, invoices[3])
    convert_proforma(db, clock, org, proformas[0])
    void_document(db, clock, org, proformas[1])
    with _server(db, clock) as api:
        body = _body(api.get(LIST, headers=auth(key)))
    by_id = {inv["id"]: inv["status"] for inv in body["results"]}
    assert by_id[invoices[0]] == "draft"
    assert by_id[invoices[1]] == "waiting"
    assert by_id[invoices[2]] == "paid"
    assert by_id[invoices[3]] == "failed"
    assert by_id[proformas[0]] == "converted"
    assert by_id[proformas[1]] == "canceled"
    assert set(by_id.values()) == set(STATUS.values())
    _check_contract(db, body["results"])


@dataclass
class Market:
    tenant: Tenant
    key: str
    heavy: int
    token: str


def _market(db: Database, clock: FixedClock) -> Market:
    """A KZT marketplace: 24 customers with a subscription, one customer with four, a few orders, and
    a year of monthly billing runs: several pages for the organisation and for that customer."""
    tenant = make_tenant(db, clock, "kz", slug="market")
    now = clock.now()
    customers = bulk_customers(db, tenant.org_id, 25, now=now)
    heavy = customers[0]
    bulk_subscriptions(
        db,
        tenant.org_id,
        [heavy] * 4 + customers[1:],
        [tenant.monthly, tenant.monthly_big],
        start=now,
        now=now,
        currency="KZT",
    )
    bulk_orders(db, tenant.org_id, [heavy, heavy, *customers[1:4]], tenant.one_off, now=now, currency="KZT")
    _monthly(db, clock, 12)
    return Market(
        tenant,
        create_api_key(db, clock, tenant.org_id).secret,
        heavy,
        create_customer_token(db, clock, tenant.org_id, heavy).secret,
    )


def _walk(api: httpx.Client, secret: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    pages = [_body(api.get(LIST, params=params, headers=auth(secret)))]
    while pages[-1]["next"] is not None:
        response = api.get(pages[-1]["next"], headers=auth(secret))
        assert response.status_code == 200
        pages.append(_body(response))
    return pages


def test_pages_walk_every_invoice_exactly_once(db: Database, clock: FixedClock) -> None:
    market = _market(db, clock)
    org_ids = _billed_ids(db, market.tenant.org_id)
    heavy_ids = _billed_ids(db, market.tenant.org_id, market.heavy)
    assert len(org_ids) > 300
    assert len(heavy_ids) > 45
    with _server(db, clock) as api:
        base = str(api.base_url).rstrip("/") + LIST
        cases = [
            (market.key, {}, 20, org_ids),
            (market.key, {"pageSize": 100}, 100, org_ids),
            (market.token, {}, 20, heavy_ids),
            (market.token, {"pageSize": 7}, 7, heavy_ids),
        ]
        for secret, params, size, expected in cases:
            pages = _walk(api, secret, params)
            seen = [inv["id"] for page in pages for inv in page["results"]]
            assert seen == expected
            assert len(pages) == -(-len(expected) // size) >= 3
            assert {page["count"] for page in pages} == {len(expected)}
            assert all(len(p["results"]) == size for p in pages[:-1])
            assert 0 < len(pages[-1]["results"]) <= size
            suffix = f"&pageSize={size}" if params else ""
            for number, page in enumerate(pages, start=1):
                assert page["next"] == (None if number == len(pages) else f"{base}?page={number + 1}{suffix}")
                if number == 1:
                    assert page["previous"] is None
                elif number == 2:
                    assert page["previous"] == (f"{base}?pageSize={size}" if params else base)
                else:
                    assert page["previous"] == f"{base}?page={number - 1}{suffix}"
            last = _body(api.get(LIST, params={**params, "page": "last"}, headers=auth(secret)))
            assert last["results"] == pages[-1]["results"]
            assert last["next"] is None
            beyond = api.get(LIST, params={**params, "page": len(pages) + 1}, headers=auth(secret))
            assert beyond.status_code == 404
            assert _body(beyond) == {"detail": "Invalid page."}
        _check_contract(db, _walk(api, market.token, {"pageSize": 100})[0]["results"])
        heavy_docs = _walk(api, market.token, {"pageSize": 100})
        assert {inv["tenant"] for page in heavy_docs for inv in page["results"]} == {market.heavy}


def test_links_keep_other_parameters_and_follow_the_public_address(db: Database, clock: FixedClock) -> None:
    worlds = build_world(db, clock)
    key = worlds[0].key
    with _server(db, clock) as api:
        body = _body(api.get(f"{LIST}?z=last&pageSize=3&a=1&a=2&page=2&empty=", headers=auth(key)))
        base = str(api.base_url).rstrip("/") + LIST
        assert body["next"] == f"{base}?a=1&a=2&empty=&page=3&pageSize=3&z=last"
        assert body["previous"] == f"{base}?a=1&a=2&empty=&pageSize=3&z=last"
        forwarded = {**auth(key), "X-Forwarded-Proto": "https", "X-Forwarded-Host": "billing.example.com"}
        body = _body(api.get(LIST, params={"pageSize": 3}, headers=forwarded))
        assert body["next"] == "https://billing.example.com/v1/billing/invoices/?page=2&pageSize=3"
    with _server(db, clock, public_url="https://api.example.org/") as api:
        body = _body(api.get(LIST, params={"pageSize": 3, "page": 3}, headers=auth(key)))
        assert body["previous"] == "https://api.example.org/v1/billing/invoices/?page=2&pageSize=3"


def test_page_parameters_fall_back_or_fail_as_drf_does(db: Database, clock: FixedClock) -> None:
    worlds = build_world(db, clock)
    key = worlds[1].key
    total = _sql_count(db, worlds[1].org_id)
    assert total == 8
    with _server(db, clock) as api:

        def get(query: str) -> httpx.Response:
            return api.get(f"{LIST}?{query}", headers=auth(key))

        for query in (
            "page=0",
            "page=-1",
            "page=abc",
            "page=1.5",
            "page=3",
            "page=2&pageSize=8",
            "page=first",
        ):
            response = get(query)
            assert response.status_code == 404, query
            assert _body(response) == {"detail": "Invalid page."}
            assert response.headers["content-type"] == "application/json"
        for query, size in [
            ("pageSize=abc", 8),
            ("pageSize=0", 8),
            ("pageSize=-3", 8),
            ("pageSize=", 8),
            ("pageSize=2.5", 8),
            ("pageSize=1000", 8),
            ("pageSize=3", 3),
            ("pageSize=9&pageSize=2", 2),
            ("page=&pageSize=3", 3),
            ("page=9&page=2&pageSize=3", 3),
            ("page=+2&pageSize=3", 3),
        ]:
            response = get(query)
            assert response.status_code == 200, query
            assert len(_body(response)["results"]) == size, query
        second = _body(get("page=9&page=2&pageSize=3"))
        assert second["results"] == _body(get("page=2&pageSize=3"))["results"]
        assert second["previous"] is not None
        assert second["next"] is not None
    market_tenant = make_tenant(db, clock, "bg", slug="empty")
    empty_key = create_api_key(db, clock, market_tenant.org_id).secret
    with _server(db, clock) as api:
        empty = api.get(LIST, headers=auth(empty_key))
        assert empty.status_code == 200
        assert _body(empty) == {"count": 0, "next": None, "previous": None, "results": []}
        assert api.get(LIST, params={"page": "last"}, headers=auth(empty_key)).status_code == 200
        assert _body(api.get(LIST, params={"page": 2}, headers=auth(empty_key))) == {
            "detail": "Invalid page."
        }


def test_credentials_are_refused_in_drf_shapes(db: Database, clock: FixedClock) -> None:
    worlds = build_world(db, clock)
    org = worlds[0].org_id
    revoked_key = create_api_key(db, clock, org, name="old")
    revoke_api_key(db, clock, org, revoked_key.id)
    customer = worlds[0].customers[0]
    revoked_token = create_customer_token(db, clock, org, customer)
    revoke_customer_token(db, clock, org, revoked_token.id)
    expiring = create_customer_token(db, clock, org, customer, ttl=timedelta(hours=1)).secret
    clock.set(clock.now() + timedelta(hours=2))
    not_provided = "Authentication credentials were not provided."
    cases: list[tuple[dict[str, str], str]] = [
        ({}, not_provided),
        ({"Authorization": ""}, not_provided),
        ({"Authorization": f"Token {worlds[0].key}"}, not_provided),
        ({"Authorization": f"Basic {worlds[0].key}"}, not_provided),
        ({"Authorization": "Bearer"}, "Invalid token header. No credentials provided."),
        ({"Authorization": "Bearer a b"}, "Invalid token header. Token string should not contain spaces."),
        (auth("fsk_live_unknownunknownunknown"), "Invalid token."),
        (auth(revoked_key.secret), "Invalid token."),
        (auth(revoked_token.secret), "Invalid token."),
        (auth(expiring), "Invalid token."),
    ]
    with _server(db, clock) as api:
        for path in (LIST, f"{LIST}{_billed_ids(db, org)[0]}/", f"{LIST}999999/", f"{LIST}?page=99"):
            for headers, detail in cases:
                response = api.get(path, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert _body(response) == {"detail": detail}
                assert response.headers["www-authenticate"] == REALM
                assert response.headers["content-type"] == "application/json"
        assert api.get(LIST, headers={"Authorization": f"bearer {worlds[0].key}"}).status_code == 200
    with _server(db, clock, rate_limit_per_second=0.01, rate_limit_burst=1) as api:
        assert api.get(LIST, headers=auth(worlds[0].key)).status_code == 200
        throttled = api.get(LIST, headers=auth(worlds[0].key))
        assert throttled.status_code == 429
        wait = int(throttled.headers["retry-after"])
        assert _body(throttled) == {"detail": f"Request was throttled. Expected available in {wait} seconds."}


def test_foreign_and_unknown_ids_are_not_found(db: Database, clock: FixedClock) -> None:
    a, b = build_world(db, clock)
    first, second = a.customers
    d = t.documents.c
    with db.write() as conn:
        template = dict(
            conn.execute(select(t.documents).where(d.organization_id == a.org_id).order_by(d.id).limit(1))
            .mappings()
            .one()
        )
        credit_note = conn.execute(
            insert(t.documents)
            .values(
                {
                    **{k: v for k, v in template.items() if k not in ("id", "converted_from_id")},
                    "type": "credit_note",
                    "status": "draft",
                    "sequence": None,
                    "number": None,
                    "customer_id": first,
                }
            )
            .returning(d.id)
        ).scalar_one()
    with _server(db, clock) as api:
        assert credit_note not in {i["id"] for i in _walk(api, a.key, {"pageSize": 100})[0]["results"]}
        assert _body(api.get(LIST, headers=auth(a.key)))["count"] == _sql_count(db, a.org_id)
        probes: list[tuple[str, str]] = [(a.key, str(credit_note)), (a.key, "999999999"), (a.key, "abc")]
        probes += [(a.key, "9" * 30), (a.key, "-1"), (a.key, "1.5"), (a.tokens[first], str(credit_note))]
        probes += [(b.key, str(i)) for i in _billed_ids(db, a.org_id)]
        probes += [(a.tokens[second], str(i)) for i in _billed_ids(db, a.org_id, first)]
        probes += [(b.tokens[b.customers[0]], str(i)) for i in _billed_ids(db, a.org_id)]
        for secret, ident in probes:
            response = api.get(f"{LIST}{ident}/", headers=auth(secret))
            assert response.status_code == 404, (ident, response.text)
            assert _body(response) == {"detail": "Not found."}
        own = _billed_ids(db, a.org_id, first)[0]
        assert api.get(f"{LIST}{own}/", headers=auth(a.tokens[first])).status_code == 200
        assert api.get(f"{LIST}{own}/", headers=auth(a.key)).status_code == 200
        listed_by_b = {inv["id"] for inv in _body(api.get(LIST, headers=auth(b.key)))["results"]}
        assert listed_by_b == set(_billed_ids(db, b.org_id))


def test_a_customer_token_sees_only_its_own_invoices(db: Database, clock: FixedClock) -> None:
    worlds = build_world(db, clock)
    with _server(db, clock) as api:
        for world in worlds:
            for customer, token in world.tokens.items():
                body = _body(api.get(LIST, params={"pageSize": 100}, headers=auth(token)))
                assert [inv["id"] for inv in body["results"]] == _billed_ids(db, world.org_id, customer)
                assert body["count"] == _sql_count(db, world.org_id, customer)
                assert {inv["tenant"] for inv in body["results"]} == {customer}
                _check_contract(db, body["results"])


def test_framework_edges_behave_as_django_rest_framework(db: Database, clock: FixedClock) -> None:
    worlds = build_world(db, clock)
    key = worlds[0].key
    ident = _billed_ids(db, worlds[0].org_id)[0]
    allow = "GET, HEAD, OPTIONS"
    with _server(db, clock) as api:
        bare = api.get("/v1/billing/invoices?pageSize=2&x=%C3%A9", headers=auth(key))
        assert bare.status_code == 301
        assert bare.headers["location"] == "/v1/billing/invoices/?pageSize=2&x=%C3%A9"
        bare = api.get(f"/v1/billing/invoices/{ident}")
        assert bare.status_code == 301
        assert bare.headers["location"] == f"/v1/billing/invoices/{ident}/"
        one = api.get(f"{LIST}{ident}/", headers=auth(key))
        assert one.headers["allow"] == allow
        for path in (f"{LIST}{ident}.json", f"{LIST}{ident}.json/", f"{LIST}{ident}/?format=json"):
            assert api.get(path, headers=auth(key)).text == one.text
        for path in (f"{LIST}{ident}.xml/", f"{LIST}?format=api", f"{LIST}{ident}/?format=xml"):
            response = api.get(path)
            assert response.status_code == 404
            assert _body(response) == {"detail": "Not found."}
        head = api.head(LIST, headers=auth(key))
        assert head.status_code == 200
        assert head.content == b""
        for path, name in ((LIST, "Invoice List"), (f"{LIST}{ident}/", "Invoice Instance")):
            options = api.options(path, headers=auth(key))
            assert options.status_code == 200
            assert _body(options)["name"] == name
            assert _body(options)["renders"] == ["application/json"]
            assert api.options(path).status_code == 401
            for method in ("POST", "PUT", "PATCH", "DELETE"):
                refused = api.request(method, path, headers=auth(key), json={"status": "paid"})
                assert refused.status_code == 405
                assert _body(refused) == {"detail": f'Method "{method}" not allowed.'}
                assert refused.headers["allow"] == allow
                assert api.request(method, path).status_code == 401
        for accept, status in (("text/html", 406), ("application/xml, text/*", 406), ("application/*", 200)):
            response = api.get(LIST, headers={**auth(key), "Accept": accept})
            assert response.status_code == status, accept
        assert _body(api.get(LIST, headers={**auth(key), "Accept": "text/csv"})) == {
            "detail": "Could not satisfy the request Accept header."
        }
        spec = api.get("/openapi.json").json()
    assert spec["paths"][LIST]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert [p["name"] for p in spec["paths"][LIST]["get"]["parameters"]] == ["page", "pageSize"]
    assert set(spec["paths"][f"{LIST}{{id}}/"]) == {"get"}
    invoice = spec["components"]["schemas"]["BillingInvoice"]
    assert list(invoice["properties"]) == DOC_KEYS
    assert invoice["required"] == DOC_KEYS
    assert list(spec["components"]["schemas"]["BillingIntegration"]["properties"]) == INTEGRATION_KEYS


def test_the_prefix_setting_moves_the_routes(db: Database, clock: FixedClock) -> None:
    worlds = build_world(db, clock)
    with _server(db, clock, dialect_billing_prefix="/compat/market") as api:
        body = _body(api.get(f"/compat/market{LIST}", params={"pageSize": 2}, headers=auth(worlds[0].key)))
        assert body["next"] == f"{str(api.base_url).rstrip('/')}/compat/market{LIST}?page=2&pageSize=2"
        assert api.get(LIST, headers=auth(worlds[0].key)).status_code == 404
