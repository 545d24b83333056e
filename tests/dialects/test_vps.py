"""Contract tests of the VPS host's Laravel invoice API (seed 002), written from its document and
from Laravel's paginator, against the real app under uvicorn, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.services.access import (
    create_api_key,
    create_customer_token,
    revoke_api_key,
    revoke_customer_token,
)
from fiscus.services.billing_run import run_billing
from fiscus.services.documents import convert_proforma, mark_paid, mark_uncollectible, void_document
from fiscus.testing.bulk import bulk_customers, bulk_orders, bulk_subscriptions
from tests.api_support import auth, build_world, live_server, make_app
from tests.builders import make_customer, make_tenant

TIMESTAMP = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{6}Z$"
)
INVOICE_NUMBER = re.compile(r"^\d{10}$")
PHP_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d*[1-9])?$")
AMOUNT_TOKENS = re.compile(r'"(amount|amount_with_vat)":([^,}]*)')
FIELDS = ["id", "invoice_number", "created_at", "amount", "amount_with_vat", "type", "order_ids"]
META = ["current_page", "from", "last_page", "links", "path", "per_page", "to", "total"]
PREV, NEXT = "« Previous", "Next »"
UNAUTHENTICATED = {"message": "Unauthenticated."}
JSON_ACCEPT = {"Accept": "application/json"}


@dataclass(frozen=True)
class Row:
    """An invoice as the engine stores it, read with SQL for comparison."""

    id: int
    customer_id: int
    type: str
    status: str
    sequence: int
    subtotal_minor: int
    total_minor: int
    issue_date: date
    order_ids: tuple[int, ...]


@contextmanager
def served(db: Database, clock: FixedClock, **settings: object) -> Iterator[httpx.Client]:
    with (
        live_server(make_app(db, clock, **settings)) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        yield client


def origin(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


def get(client: httpx.Client, url: str, secret: str | None, **headers: str) -> httpx.Response:
    sent = {**JSON_ACCEPT, **(auth(secret) if secret else {}), **headers}
    return client.get(url, headers=sent)


def body(response: httpx.Response) -> Any:
    """The JSON with numbers kept exact (a float would hide what the server wrote)."""
    return json.loads(response.text, parse_float=Decimal)


def sql_invoices(db: Database, org_id: int, customer_id: int | None = None) -> dict[int, Row]:
    d, links = t.documents.c, t.document_orders.c
    query = select(
        d.id, d.customer_id, d.type, d.status, d.sequence, d.subtotal_minor, d.total_minor, d.issue_date
    )
    query = query.where(d.organization_id == org_id, d.type.in_(["invoice", "proforma"]), d.status != "draft")
    if customer_id is not None:
        query = query.where(d.customer_id == customer_id)
    with db.read() as conn:
        orders: dict[int, list[int]] = {}
        for link in conn.execute(select(links.document_id, links.order_id).order_by(links.order_id)):
            orders.setdefault(link.document_id, []).append(link.order_id)
        return {
            r.id: Row(
                r.id,
                r.customer_id,
                r.type,
                r.status,
                r.sequence,
                r.subtotal_minor,
                r.total_minor,
                r.issue_date,
                tuple(orders.get(r.id, [])),
            )
            for r in conn.execute(query)
        }


def sofia_midnight(day: date) -> str:
    return (
        datetime.combine(day, time(0), tzinfo=ZoneInfo("Europe/Sofia"))
        .astimezone(UTC)
        .strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    )


def check_invoice(item: dict[str, Any], row: Row) -> None:
    """Every documented field, with its documented type and format, equal to what the engine stores."""
    assert list(item) == FIELDS
    assert type(item["id"]) is int
    assert item["id"] == row.id
    assert INVOICE_NUMBER.match(item["invoice_number"])
    assert int(item["invoice_number"]) == row.sequence
    assert TIMESTAMP.match(item["created_at"]), item["created_at"]
    assert item["created_at"] == sofia_midnight(row.issue_date)
    assert item["created_at"][11:13] in ("21", "22")
    for name, minor in (("amount", row.subtotal_minor), ("amount_with_vat", row.total_minor)):
        assert type(item[name]) in (int, Decimal), (name, item[name])
        assert Decimal(item[name]) == Decimal(minor).scaleb(-2), (name, item[name], minor)
    assert item["type"] == {"proforma": "proform", "invoice": "original"}[row.type]
    assert isinstance(item["order_ids"], list)
    assert all(type(o) is int for o in item["order_ids"])
    assert tuple(item["order_ids"]) == row.order_ids


def check_raw(response: httpx.Response) -> None:
    """Bytes as PHP's json_encode writes them: escaped slashes and non-ASCII, plain amounts."""
    assert response.headers["content-type"] == "application/json"
    assert "://" not in response.text
    assert ":\\/\\/" in response.text
    assert "\\u00ab Previous" in response.text
    assert "Next \\u00bb" in response.text
    for _name, token in AMOUNT_TOKENS.findall(response.text):
        assert PHP_NUMBER.match(token), token


def labels(page: dict[str, Any]) -> list[str]:
    return [link["label"] for link in page["meta"]["links"]]


def check_links(page: dict[str, Any], path: str, current: int, last: int, expected: list[int | None]) -> None:
    """`meta.links` and `links` as LengthAwarePaginator builds them; None in `expected` is a `...`."""
    url = f"{path}?page=" + "{}"
    assert labels(page) == [PREV, *("..." if p is None else str(p) for p in expected), NEXT]
    entries = page["meta"]["links"]
    assert entries[0] == {
        "url": url.format(current - 1) if current > 1 else None,
        "label": PREV,
        "active": False,
    }
    assert entries[-1] == {
        "url": url.format(current + 1) if current < last else None,
        "label": NEXT,
        "active": False,
    }
    for entry, p in zip(entries[1:-1], expected, strict=True):
        if p is None:
            assert entry == {"url": None, "label": "...", "active": False}
        else:
            assert entry == {"url": url.format(p), "label": str(p), "active": p == current}
    assert page["links"] == {
        "first": url.format(1),
        "last": url.format(last),
        "prev": url.format(current - 1) if current > 1 else None,
        "next": url.format(current + 1) if current < last else None,
    }
    assert page["meta"]["path"] == path
    assert page["meta"]["current_page"] == current
    assert page["meta"]["last_page"] == last


def walk(client: httpx.Client, secret: str, rows: dict[int, Row], path: str) -> list[dict[str, Any]]:
    """Follow `links.next` from page 1 to the end; every invoice once, newest first, counts as SQL."""
    pages: list[dict[str, Any]] = []
    seen: list[int] = []
    url: str | None = "/v1/invoices"
    while url is not None:
        response = get(client, url, secret)
        assert response.status_code == 200, response.text
        check_raw(response)
        page = body(response)
        assert list(page) == ["data", "links", "meta"]
        assert list(page["meta"]) == META
        n = len(pages) + 1
        meta = page["meta"]
        assert meta["current_page"] == n
        assert meta["per_page"] == 30
        assert meta["total"] == len(rows)
        assert meta["from"] == 30 * (n - 1) + 1
        assert meta["to"] == meta["from"] + len(page["data"]) - 1
        assert len(page["data"]) == (30 if n < meta["last_page"] else len(rows) - 30 * (n - 1))
        for item in page["data"]:
            check_invoice(item, rows[item["id"]])
            seen.append(item["id"])
        pages.append(page)
        url = page["links"]["next"]
        if url is not None:
            assert url == f"{path}?page={n + 1}"
            url = url.removeprefix(origin(client))
    assert len(seen) == len(set(seen)) == len(rows)
    assert set(seen) == set(rows)
    assert seen == sorted(seen, reverse=True)
    assert pages[-1]["meta"]["last_page"] == len(pages) == -(-len(rows) // 30)
    return pages


# --- data --------------------------------------------------------------------------------------------


@dataclass
class BigOrg:
    org_id: int
    key: str
    heavy: int
    heavy_token: str
    excluded: list[int]


def big_org(db: Database, clock: FixedClock) -> BigOrg:
    """A Bulgarian host with ~500 issued documents over 14 monthly billing runs (subscriptions become
    invoices, orders proformas), one customer with ~85 of them, every status, plus a draft and a credit
    note that the dialect must not show."""
    tenant = make_tenant(db, clock, "bg", slug="vpsbg", order_document=DocumentType.PROFORMA)
    org = tenant.org_id
    start = clock.now()
    customers = bulk_customers(db, org, 30, now=start)
    heavy = customers[0]
    bulk_subscriptions(
        db, org, customers, [tenant.monthly, tenant.monthly_big], start=start, now=start, currency="EUR"
    )
    bulk_orders(db, org, [heavy] * 70 + customers[1:6], tenant.one_off, now=start, currency="EUR")
    for month in range(14):
        clock.set(start + timedelta(days=31 * month))
        run_billing(db, clock)
    rows = sql_invoices(db, org, heavy)
    invoices = sorted(r.id for r in rows.values() if r.type == "invoice")
    proformas = sorted(r.id for r in rows.values() if r.type == "proforma")
    mark_paid(db, clock, org, invoices[0])
    void_document(db, clock, org, invoices[1])
    mark_uncollectible(db, clock, org, invoices[2])
    mark_paid(db, clock, org, proformas[0])
    convert_proforma(db, clock, org, proformas[1])
    void_document(db, clock, org, proformas[2])
    excluded = [draft_order_document(db, clock, org, heavy, tenant.one_off), credit_note(db, org, heavy)]
    token = create_customer_token(db, clock, org, heavy).secret
    return BigOrg(org, create_api_key(db, clock, org).secret, heavy, token, excluded)


def draft_order_document(db: Database, clock: FixedClock, org: int, customer: int, price: int) -> int:
    with db.write() as conn:
        conn.execute(update(t.organizations).where(t.organizations.c.id == org).values(auto_issue=False))
    bulk_orders(db, org, [customer], price, now=clock.now(), currency="EUR")
    run_billing(db, clock)
    with db.read() as conn:
        return int(conn.execute(select(t.documents.c.id).where(t.documents.c.status == "draft")).scalar_one())


def credit_note(db: Database, org: int, customer: int) -> int:
    """There is no credit-note service yet: an issued one is written as its row would be."""
    with db.write() as conn:
        source = dict(
            conn.execute(
                select(t.documents).where(
                    t.documents.c.customer_id == customer, t.documents.c.type == "invoice"
                )
            )
            .mappings()
            .first()
            or {}
        )
        source.pop("id")
        source.update(
            type="credit_note", series="CN", sequence=1, number="CN-1", status="open", converted_from_id=None
        )
        return int(conn.execute(insert(t.documents).values(source).returning(t.documents.c.id)).scalar_one())


# --- tests -------------------------------------------------------------------------------------------


def test_organisation_and_customer_walk_every_invoice_once(db: Database, clock: FixedClock) -> None:
    org = big_org(db, clock)
    all_rows = sql_invoices(db, org.org_id)
    heavy_rows = sql_invoices(db, org.org_id, org.heavy)
    statuses = {r.status for r in heavy_rows.values()}
    assert statuses == {"open", "paid", "void", "uncollectible", "converted"}
    assert len(all_rows) > 13 * 30
    assert 60 < len(heavy_rows) <= 90
    with served(db, clock) as client:
        path = f"{origin(client)}/v1/invoices"
        pages = walk(client, org.key, all_rows, path)
        last = len(pages)
        assert last >= 16
        ending = [1, 2, None, *range(last - 9, last + 1)]
        check_links(pages[0], path, 1, last, [*range(1, 11), None, last - 1, last])
        check_links(pages[6], path, 7, last, [*range(1, 11), None, last - 1, last])
        check_links(pages[7], path, 8, last, [1, 2, None, *range(5, 12), None, last - 1, last])
        check_links(pages[8], path, 9, last, [1, 2, None, *range(6, 13), None, last - 1, last])
        middle = [1, 2, None, *range(last - 10, last - 3), None, last - 1, last]
        check_links(pages[last - 8], path, last - 7, last, middle)
        check_links(pages[last - 7], path, last - 6, last, ending)
        check_links(pages[-1], path, last, last, ending)

        beyond = body(get(client, f"/v1/invoices?page={last + 3}", org.key))
        assert beyond["data"] == []
        assert beyond["meta"]["from"] == 0
        assert beyond["meta"]["to"] == 0
        assert beyond["meta"]["total"] == len(all_rows)
        check_links(beyond, path, last + 3, last, ending)
        assert beyond["links"]["prev"] == f"{path}?page={last + 2}"
        assert beyond["links"]["next"] is None

        customer_pages = walk(client, org.heavy_token, heavy_rows, path)
        assert len(customer_pages) == 3
        check_links(customer_pages[0], path, 1, 3, [1, 2, 3])
        check_links(customer_pages[1], path, 2, 3, [1, 2, 3])
        check_links(customer_pages[2], path, 3, 3, [1, 2, 3])
        for excluded in org.excluded:
            assert excluded not in all_rows
            response = get(client, f"/v1/invoices/{excluded}", org.key)
            assert response.status_code == 404
            assert body(response) == {
                "message": f"No query results for model [App\\Models\\Invoice] {excluded}"
            }
        with db.read() as conn:
            kinds = conn.execute(
                select(t.documents.c.type, t.documents.c.series).where(t.documents.c.id.in_(org.excluded))
            ).all()
        assert sorted(k.type for k in kinds) == ["credit_note", "proforma"]


def test_fields_detail_and_money_exact(db: Database, clock: FixedClock) -> None:
    a, _b = build_world(db, clock)
    rows = sql_invoices(db, a.org_id)
    with served(db, clock) as client:
        listed = get(client, "/v1/invoices", a.key)
        assert listed.status_code == 200
        page = body(listed)
        assert {item["type"] for item in page["data"]} == {"proform", "original"}
        assert any(item["order_ids"] for item in page["data"])
        assert any(not i["order_ids"] for i in page["data"])
        assert any(type(item["amount"]) is Decimal for item in page["data"])
        assert any(type(item["amount"]) is int for item in page["data"])
        for item in page["data"]:
            check_invoice(item, rows[item["id"]])
            detail = get(client, f"/v1/invoices/{item['id']}", a.key)
            assert detail.status_code == 200
            assert detail.headers["content-type"] == "application/json"
            assert body(detail) == {"data": item}
        head = client.head("/v1/invoices", headers=auth(a.key))
        assert head.status_code == 200
        assert head.content == b""
        for raw_id in ("999999", "abc", "1.0", "-1", "0", "99999999999999999999"):
            response = get(client, f"/v1/invoices/{raw_id}", a.key)
            assert response.status_code == 404, raw_id
            assert body(response) == {
                "message": f"No query results for model [App\\Models\\Invoice] {raw_id}"
            }
        response = client.post("/v1/invoices", headers=auth(a.key))
        assert response.status_code == 405
        assert body(response) == {
            "message": "The POST method is not supported for route v1/invoices. Supported methods: GET, HEAD."
        }
        response = get(client, "/v1/invoices/1/pdf", a.key)
        assert response.status_code == 404
        assert body(response) == {"message": "The route v1/invoices/1/pdf could not be found."}


def test_page_parameter_as_laravel_resolves_it(db: Database, clock: FixedClock) -> None:
    a, _b = build_world(db, clock)
    total = len(sql_invoices(db, a.org_id))
    assert 0 < total <= 30
    with served(db, clock) as client:
        path = f"{origin(client)}/v1/invoices"
        first = body(get(client, "/v1/invoices", a.key))
        check_links(first, path, 1, 1, [1])
        assert first["meta"]["from"] == 1
        assert first["meta"]["to"] == total == first["meta"]["total"]
        for query in (
            "page=0",
            "page=-1",
            "page=abc",
            "page=1.5",
            "page=05",
            "page=",
            "page",
            "page[]=2",
            "page[x]=2",
            "page=2&page[]=2",
            "page=2&page=1",
            "page=0x2",
            "page=9223372036854775808",
            "page=1e1",
            "page=%20+1%20",
            "page=+1",
            "foo=bar",
        ):
            response = get(client, f"/v1/invoices?{query}", a.key)
            assert response.status_code == 200, query
            assert body(response) == first, query
        for query, current in (
            ("page=2", 2),
            ("page=1&page=2", 2),
            ("page=+2", 2),
            ("page=%2B2", 2),
            ("page=%092", 2),
        ):
            response = body(get(client, f"/v1/invoices?{query}&foo=bar", a.key))
            assert response["data"] == []
            assert response["meta"]["from"] == 0
            assert response["meta"]["to"] == 0
            check_links(response, path, current, 1, [1])
            assert response["meta"]["total"] == total
        huge = 9223372036854775807
        response = body(get(client, f"/v1/invoices?page={huge}", a.key))
        assert response["meta"]["current_page"] == huge
        assert response["data"] == []
        assert response["links"]["prev"] == f"{path}?page={huge - 1}"

    with served(db, clock, dialect_vps_prefix="/compat/vpsbg") as client:
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.vpsbg.eu"}
        page = body(get(client, "/compat/vpsbg/v1/invoices", a.key, **forwarded))
        check_links(page, "https://api.vpsbg.eu/compat/vpsbg/v1/invoices", 1, 1, [1])
        assert get(client, "/v1/invoices", a.key).status_code == 404


def test_credentials_and_isolation(db: Database, clock: FixedClock) -> None:
    a, b = build_world(db, clock)
    first, second = a.customers
    a_rows = sql_invoices(db, a.org_id)
    revoked_key = create_api_key(db, clock, a.org_id)
    revoke_api_key(db, clock, a.org_id, revoked_key.id)
    revoked_token = create_customer_token(db, clock, a.org_id, first)
    revoke_customer_token(db, clock, a.org_id, revoked_token.id)
    expiring = create_customer_token(db, clock, a.org_id, first, ttl=timedelta(minutes=5)).secret
    lonely = make_customer(db, clock, a.tenant, 77)
    lonely_token = create_customer_token(db, clock, a.org_id, lonely).secret
    with served(db, clock) as client:
        path = f"{origin(client)}/v1/invoices"
        for url in ("/v1/invoices", f"/v1/invoices/{next(iter(a_rows))}", "/v1/invoices/abc"):
            for headers in (
                {},
                {"Authorization": "Bearer"},
                {"Authorization": "Token x"},
                {"Authorization": f"Basic {a.key}"},
                {"Authorization": a.key},
                auth("fsk_live_unknown"),
                auth(revoked_key.secret),
                auth(revoked_token.secret),
            ):
                response = client.get(url, headers={**JSON_ACCEPT, **headers})
                assert response.status_code == 401, (url, headers)
                assert response.json() == UNAUTHENTICATED
                assert response.headers["content-type"] == "application/json"
        assert client.get("/v1/invoices").json() == UNAUTHENTICATED

        clock.set(clock.now() + timedelta(minutes=10))
        assert get(client, "/v1/invoices", expiring).json() == UNAUTHENTICATED

        foreign = body(get(client, "/v1/invoices?page=1", b.key))
        assert foreign["meta"]["total"] == len(sql_invoices(db, b.org_id))
        assert not {item["id"] for item in foreign["data"]} & set(a_rows)
        for doc_id in a_rows:
            for secret in (b.key, *b.tokens.values()):
                response = get(client, f"/v1/invoices/{doc_id}", secret)
                assert response.status_code == 404
                assert body(response) == {
                    "message": f"No query results for model [App\\Models\\Invoice] {doc_id}"
                }

        for customer, other in ((first, second), (second, first)):
            own = sql_invoices(db, a.org_id, customer)
            page = body(get(client, "/v1/invoices", a.tokens[customer]))
            assert {item["id"] for item in page["data"]} == set(own)
            assert page["meta"]["total"] == len(own)
            for item in page["data"]:
                check_invoice(item, own[item["id"]])
            for doc_id in sql_invoices(db, a.org_id, other):
                response = get(client, f"/v1/invoices/{doc_id}", a.tokens[customer])
                assert response.status_code == 404
                assert "App\\Models\\Invoice" in body(response)["message"]
            for doc_id in own:
                assert get(client, f"/v1/invoices/{doc_id}", a.tokens[customer]).status_code == 200

        empty = body(get(client, "/v1/invoices", lonely_token))
        assert empty["data"] == []
        assert empty["meta"] | {"links": None} == {
            "current_page": 1,
            "from": 0,
            "last_page": 1,
            "links": None,
            "path": path,
            "per_page": 30,
            "to": 0,
            "total": 0,
        }
        check_links(empty, path, 1, 1, [1])


def test_openapi_documents_the_routes(db: Database, clock: FixedClock) -> None:
    with served(db, clock) as client:
        spec = client.get("/openapi.json").json()
    listing = spec["paths"]["/v1/invoices"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"page", "Accept"}
    schema = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert list(schema["properties"]["data"]["items"]["properties"]) == FIELDS
    assert list(schema["properties"]["meta"]["properties"]) == META
    assert listing["responses"]["401"]["content"]["application/json"]["example"] == UNAUTHENTICATED
    detail = spec["paths"]["/v1/invoices/{invoice}"]["get"]
    assert set(detail["responses"]) >= {"200", "401", "404"}
    assert set(spec["paths"]["/v1/invoices"]) == {"get"}
