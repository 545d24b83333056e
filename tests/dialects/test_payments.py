"""Contract tests of dialect 001 (subscription payments), written from its seed document and run against a
real uvicorn server on SQLite and PostgreSQL: every documented field with its type and format, money as
exact JSON numbers equal to the stored minor units, cursor walks that see each invoice once, and the
one error shape for bad parameters, credentials and foreign ids."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.money import currency, from_minor
from fiscus.services.access import (
    create_api_key,
    create_customer_token,
    revoke_api_key,
    revoke_customer_token,
)
from fiscus.services.billing_run import run_billing
from fiscus.services.documents import convert_proforma, mark_paid, mark_uncollectible, void_document
from fiscus.services.orders import create_order
from fiscus.services.subscriptions import ItemSpec, change_subscription, create_subscription
from fiscus.testing.bulk import bulk_customers, bulk_orders, bulk_subscriptions
from tests.api_support import OrgWorld, auth, build_world, live_server, make_app
from tests.builders import make_customer, make_tenant
from tests.dialects.payment_expectations import expected_payments

INVOICE_FIELDS = [
    "id",
    "paymentProfileId",
    "network",
    "pdfUrl",
    "status",
    "totalPaymentAttempts",
    "subTotal",
    "taxTotal",
    "currency",
    "invoiceItems",
    "subscriptionItems",
    "lastPaymentAttemptDate",
    "periodStart",
    "periodEnd",
    "createdAt",
]
ITEM_FIELDS = [
    "id",
    "network",
    "total",
    "currency",
    "paymentProfileId",
    "priceId",
    "invoiceId",
    "subscriptionId",
    "description",
    "createdAt",
    "updatedAt",
]
INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
ID = re.compile(r"[1-9][0-9]*")
NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
STATUS = {
    "draft": "DRAFT",
    "open": "OPEN",
    "paid": "PAID",
    "void": "VOID",
    "uncollectible": "UNCOLLECTIBLE",
    "converted": "VOID",
}


class Num(str):
    """A JSON number kept as its exact source text, so a test can tell 12.50 from 12.499999 or "12.50"."""


def parse(response: httpx.Response) -> Any:
    return json.loads(response.text, parse_float=Num, parse_int=Num)


def instant(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Data:
    alpha: OrgWorld
    beta: OrgWorld
    heavy: int
    drafts_key: str
    yen_key: str
    credit_note: int


def build(db: Database, clock: FixedClock) -> Data:
    """build_world, plus a US organisation with a dozen customers and one customer with four
    subscriptions, a mid-period change (proration lines) and extra orders; a KWD organisation that keeps
    drafts; a JPY one; paid, void, uncollectible and converted documents; and one credit note."""
    alpha, beta = build_world(db, clock)
    heavy = beta.customers[0]
    now = clock.now()
    extra = bulk_customers(db, beta.org_id, 8, now=now)
    prices = [beta.tenant.monthly, beta.tenant.monthly_big]
    bulk_subscriptions(
        db, beta.org_id, [*extra, heavy, heavy, heavy], prices, start=now, now=now, currency="USD"
    )
    bulk_orders(db, beta.org_id, [heavy, heavy], beta.tenant.one_off, now=now, currency="USD")
    create_order(db, clock, alpha.org_id, alpha.customers[0], [ItemSpec(alpha.tenant.one_off, 3)])
    keys = []
    for kind, slug, auto in (("kw", "gamma", False), ("jp", "delta", True)):
        tenant = make_tenant(db, clock, kind, slug=slug, auto_issue=auto)
        keys.append(create_api_key(db, clock, tenant.org_id).secret)
        for n in range(2):
            cid = make_customer(db, clock, tenant, n)
            create_subscription(db, clock, tenant.org_id, cid, [ItemSpec(tenant.monthly_big, 1)])
            create_order(db, clock, tenant.org_id, cid, [ItemSpec(tenant.one_off, 3)])
    run_billing(db, clock)
    with db.read() as conn:
        sub = (
            conn.execute(
                select(t.subscriptions.c.id).where(t.subscriptions.c.customer_id == heavy).order_by("id")
            )
            .scalars()
            .first()
        )
    assert sub is not None
    clock.advance(timedelta(days=10))
    change_subscription(db, clock, beta.org_id, sub, [ItemSpec(beta.tenant.monthly_big, 2)])
    for k in range(1, 4):
        clock.set(now + timedelta(days=31 * k))
        run_billing(db, clock)
    proformas = ids(db, alpha.org_id, types=("proforma",))
    convert_proforma(db, clock, alpha.org_id, proformas[0])
    mark_paid(db, clock, alpha.org_id, proformas[1])
    void_document(db, clock, alpha.org_id, proformas[2])
    invoices = ids(db, beta.org_id)
    mark_paid(db, clock, beta.org_id, invoices[0])
    void_document(db, clock, beta.org_id, invoices[1])
    mark_uncollectible(db, clock, beta.org_id, invoices[2])
    with db.write() as conn:
        row = dict(conn.execute(select(t.documents).where(t.documents.c.id == invoices[3])).mappings().one())
        row.update(type="credit_note", status="draft", sequence=None, number=None, issued_at=None)
        row.update(issue_date=None, due_date=None, paid_at=None, voided_at=None, amount_paid_minor=0)
        del row["id"]
        credit_note = conn.execute(insert(t.documents).values(row).returning(t.documents.c.id)).scalar_one()
    return Data(alpha, beta, heavy, keys[0], keys[1], int(credit_note))


def ids(
    db: Database,
    org_id: int,
    customer_id: int | None = None,
    types: tuple[str, ...] = ("invoice", "proforma"),
) -> list[int]:
    """What the dialect must list, straight from SQL, newest first."""
    d = t.documents.c
    query = select(d.id).where(d.organization_id == org_id, d.type.in_(types)).order_by(d.id.desc())
    if customer_id is not None:
        query = query.where(d.customer_id == customer_id)
    with db.read() as conn:
        return list(conn.execute(query).scalars())


@contextmanager
def served(db: Database, clock: FixedClock, **settings: object) -> Iterator[httpx.Client]:
    with (
        live_server(make_app(db, clock, **settings)) as base,
        httpx.Client(base_url=base, timeout=30) as http,
    ):
        yield http


def walk(http: httpx.Client, secret: str, limit: int | None) -> list[dict[str, Any]]:
    """Every page, following startingAfter from the last id, until hasMore is false."""
    pages: list[dict[str, Any]] = []
    params: dict[str, str] = {} if limit is None else {"limit": str(limit)}
    while True:
        response = http.get("/invoices", params=params, headers=auth(secret))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        body = parse(response)
        assert list(body) == ["data"]
        assert list(body["data"]) == ["hasMore", "items"]
        pages.append(body["data"])
        if not body["data"]["hasMore"]:
            return pages
        assert body["data"]["items"], "hasMore with an empty page would never end"
        params["startingAfter"] = body["data"]["items"][-1]["id"]


def listed(pages: list[dict[str, Any]]) -> list[int]:
    return [int(item["id"]) for page in pages for item in page["items"]]


def check_against_engine(db: Database, item: dict[str, Any]) -> str:
    """Every documented field, in the documented order, with its type, format and engine value."""
    assert list(item) == INVOICE_FIELDS
    assert isinstance(item["id"], str)
    assert ID.fullmatch(item["id"])
    doc_id = int(item["id"])
    with db.read() as conn:
        doc = conn.execute(select(t.documents).where(t.documents.c.id == doc_id)).mappings().one()
        lines = (
            conn.execute(
                select(t.document_lines)
                .where(t.document_lines.c.document_id == doc_id)
                .order_by(t.document_lines.c.position)
            )
            .mappings()
            .all()
        )
        placed = sorted(
            conn.execute(
                select(t.orders.c.created_at)
                .join(t.document_orders, t.document_orders.c.order_id == t.orders.c.id)
                .where(t.document_orders.c.document_id == doc_id)
            ).scalars()
        )
    cur = currency(doc["currency"])
    paid = expected_payments(db, doc_id)
    profile = "" if paid.method_id is None else str(paid.method_id)  # "": no payment profile yet
    assert item["paymentProfileId"] == profile
    assert item["network"] == (paid.network or "")
    # a real, authorised URL of the document's PDF (a draft's preview; tests/integration/test_pdf.py and
    # test_seed_fields.py fetch them)
    assert re.fullmatch(rf"https?://[^/]+/api/v1/documents/{doc_id}/pdf", item["pdfUrl"])
    assert item["lastPaymentAttemptDate"] == instant(paid.last_attempt_at or doc["created_at"])
    assert INSTANT.fullmatch(item["lastPaymentAttemptDate"])
    assert item["status"] == STATUS[doc["status"]]
    assert isinstance(item["totalPaymentAttempts"], Num)
    assert item["totalPaymentAttempts"] == str(paid.attempts)
    for field, minor in (("subTotal", doc["subtotal_minor"]), ("taxTotal", doc["tax_minor"])):
        assert isinstance(item[field], Num), f"{field} must be a JSON number"
        assert NUMBER.fullmatch(item[field])
        assert item[field] == str(from_minor(minor, cur))
    assert item["currency"] == doc["currency"]
    assert re.fullmatch(r"[A-Z]{3}", item["currency"])
    assert item["createdAt"] == instant(doc["created_at"])
    assert INSTANT.fullmatch(item["createdAt"])
    # a one-off order's document: from its first order's instant to its last one's
    period = (doc["period_start"], doc["period_end"]) if doc["period_start"] else (placed[0], placed[-1])
    for field, value in zip(("periodStart", "periodEnd"), period, strict=True):
        assert item[field] == instant(value)
        assert INSTANT.fullmatch(item[field])
    assert all(isinstance(i, str) for i in item["invoiceItems"])
    assert item["invoiceItems"] == [str(r["id"]) for r in lines if r["kind"] in ("order", "proration")]
    recurring = [r for r in lines if r["kind"] == "subscription"]
    assert len(item["subscriptionItems"]) == len(recurring)
    for sub_item, line in zip(item["subscriptionItems"], recurring, strict=True):
        assert list(sub_item) == ITEM_FIELDS
        assert sub_item["id"] == str(line["id"])
        assert sub_item["network"] == (paid.network or "")
        assert sub_item["paymentProfileId"] == profile
        assert isinstance(sub_item["total"], Num)
        assert sub_item["total"] == str(from_minor(line["amount_minor"], cur))
        assert sub_item["currency"] == doc["currency"]
        assert sub_item["priceId"] == str(line["price_id"])
        assert sub_item["invoiceId"] == item["id"]
        assert sub_item["subscriptionId"] == str(doc["subscription_id"])
        assert sub_item["description"] == line["description"]
        assert sub_item["createdAt"] == instant(doc["created_at"])
        assert sub_item["updatedAt"] == instant(doc["updated_at"])
        assert INSTANT.fullmatch(sub_item["createdAt"])
        assert INSTANT.fullmatch(sub_item["updatedAt"])
    assert sum(r["amount_minor"] for r in lines) == doc["subtotal_minor"]
    return str(doc["status"])


def error_of(response: httpx.Response, status: int, param: str | None = None) -> str:
    """The dialect's one error shape; returns its code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    assert list(body["error"]) == ["code", "message", "param"]
    assert isinstance(body["error"]["code"], str)
    assert body["error"]["message"]
    assert body["error"]["param"] == param
    return str(body["error"]["code"])


def test_every_field_matches_the_document_and_the_engine(db: Database, clock: FixedClock) -> None:
    data = build(db, clock)
    statuses: Counter[str] = Counter()
    currencies = set()
    with served(db, clock) as http:
        for secret in (data.alpha.key, data.beta.key, data.drafts_key, data.yen_key):
            items = [item for page in walk(http, secret, 100) for item in page["items"]]
            assert items
            for n, item in enumerate(items):
                statuses[check_against_engine(db, item)] += 1
                currencies.add(item["currency"])
                if n % 4 == 0:
                    one = http.get(f"/invoices/{item['id']}", headers=auth(secret))
                    assert one.status_code == 200
                    assert one.headers["content-type"] == "application/json"
                    assert parse(one) == {"data": item}
        raw = http.get("/invoices", params={"limit": "100"}, headers=auth(data.drafts_key)).text
    with db.read() as conn:
        kinds = set(conn.execute(select(t.document_lines.c.kind).distinct()).scalars())
    assert kinds == {"subscription", "order", "proration"}, "every kind of line was presented"
    assert set(statuses) == set(STATUS), statuses
    assert currencies == {"EUR", "USD", "KWD", "JPY"}
    assert re.search(r'"subTotal":[0-9]+\.[0-9]{3}[,}]', raw), "KWD keeps its three decimals"
    assert '"subTotal":"' not in raw


def test_pagination_walks_every_invoice_once(db: Database, clock: FixedClock) -> None:
    data = build(db, clock)
    org_ids = ids(db, data.beta.org_id)
    mine = ids(db, data.beta.org_id, data.heavy)
    assert len(org_ids) > 3 * 7
    assert len(mine) > 3 * 4
    token = data.beta.tokens[data.heavy]
    with served(db, clock) as http:
        for secret, limit, expected in (
            (data.beta.key, 7, org_ids),
            (data.beta.key, None, org_ids),
            (data.beta.key, 100, org_ids),
            (token, 4, mine),
            (token, len(mine), mine),
            (token, len(mine) - 1, mine),
        ):
            pages = walk(http, secret, limit)
            seen = listed(pages)
            assert seen == expected, "each invoice exactly once, newest first"
            assert len(seen) == len(set(seen))
            size = limit or 20
            assert all(len(p["items"]) == size for p in pages[:-1])
            assert 1 <= len(pages[-1]["items"]) <= size
            assert [p["hasMore"] for p in pages] == [True] * (len(pages) - 1) + [False]
        assert len(walk(http, data.beta.key, 7)) > 3

        beyond = http.get(
            "/invoices", params={"startingAfter": str(org_ids[-1])}, headers=auth(data.beta.key)
        )
        assert parse(beyond) == {"data": {"hasMore": False, "items": []}}
        middle = http.get(
            "/invoices", params={"limit": "5", "startingAfter": str(org_ids[9])}, headers=auth(data.beta.key)
        )
        assert [int(i["id"]) for i in parse(middle)["data"]["items"]] == org_ids[10:15]
        assert parse(middle)["data"]["hasMore"] is True
        padded = http.get("/invoices", params={"limit": "05"}, headers=auth(data.beta.key))
        assert [int(i["id"]) for i in parse(padded)["data"]["items"]] == org_ids[:5]

        first = parse(http.get("/invoices", params={"limit": "3"}, headers=auth(data.beta.key)))["data"]
        create_order(db, clock, data.beta.org_id, data.heavy, [ItemSpec(data.beta.tenant.one_off, 1)])
        run_billing(db, clock)
        assert ids(db, data.beta.org_id)[0] > org_ids[0]
        rest = walk_from(http, data.beta.key, first["items"][-1]["id"])
        assert [int(i["id"]) for i in first["items"]] + rest == org_ids, "new invoices never shift a walk"

        others = set(ids(db, data.beta.org_id)) - set(ids(db, data.beta.org_id, data.heavy))
        assert not others & set(listed(walk(http, token, 100)))


def walk_from(http: httpx.Client, secret: str, after: str) -> list[int]:
    seen: list[int] = []
    while True:
        body = parse(
            http.get("/invoices", params={"limit": "6", "startingAfter": after}, headers=auth(secret))
        )["data"]
        seen += [int(i["id"]) for i in body["items"]]
        if not body["hasMore"]:
            return seen
        after = body["items"][-1]["id"]


def test_bad_parameters_get_one_clear_400(db: Database, clock: FixedClock) -> None:
    alpha, beta = build_world(db, clock)
    own = ids(db, beta.org_id)
    foreign = ids(db, alpha.org_id)[0]
    other_customer = ids(db, beta.org_id, beta.customers[1])[0]
    with served(db, clock) as http:
        h = auth(beta.key)
        for limit in ["0", "00", "101", "1000", "-1", "+5", "abc", "1.5", "1e1", "", " 5", "5 ", "5\n", "٣"]:
            code = error_of(http.get("/invoices", params={"limit": limit}, headers=h), 400, "limit")
            assert code == "invalid_parameter"
        for after in ["", "abc", "0", "-1", "007", "1.0", "9" * 40, "99999999", str(foreign)]:
            response = http.get("/invoices", params={"startingAfter": after}, headers=h)
            assert error_of(response, 400, "startingAfter") == "invalid_parameter"
        token = auth(beta.tokens[beta.customers[0]])
        response = http.get("/invoices", params={"startingAfter": str(other_customer)}, headers=token)
        error_of(response, 400, "startingAfter")
        both = http.get("/invoices", params={"limit": "0", "startingAfter": "x"}, headers=h)
        error_of(both, 400, "limit")
        for limit, size in (("1", 1), ("9", 9), ("100", len(own)), ("99", len(own))):
            body = parse(http.get("/invoices", params={"limit": limit}, headers=h))
            assert len(body["data"]["items"]) == min(size, len(own))
        default = parse(http.get("/invoices", params={"unknown": "ignored"}, headers=h))
        assert [int(i["id"]) for i in default["data"]["items"]] == own[:20]
        last = http.get("/invoices", params=[("limit", "abc"), ("limit", "2")], headers=h)
        assert len(parse(last)["data"]["items"]) == 2


def test_credentials_and_foreign_ids(db: Database, clock: FixedClock) -> None:
    alpha, beta = build_world(db, clock)
    revoked_key = create_api_key(db, clock, beta.org_id)
    revoke_api_key(db, clock, beta.org_id, revoked_key.id)
    revoked_token = create_customer_token(db, clock, beta.org_id, beta.customers[0])
    revoke_customer_token(db, clock, beta.org_id, revoked_token.id)
    mine = ids(db, beta.org_id, beta.customers[0])
    theirs = ids(db, beta.org_id, beta.customers[1])
    foreign = ids(db, alpha.org_id)
    with served(db, clock) as http:
        for path in ("/invoices", f"/invoices/{mine[0]}", "/invoices?limit=abc"):
            for headers in (
                {},
                {"Authorization": "Basic dXNlcjpwYXNz"},
                {"Authorization": "Bearer"},
                {"Authorization": beta.key},
            ):
                response = http.get(path, headers=headers)
                assert error_of(response, 401) == "unauthenticated"
                assert response.headers["www-authenticate"].startswith("Bearer")
            for secret in (
                "fsk_live_unknown",
                "fct_unknown",
                "nonsense",
                revoked_key.secret,
                revoked_token.secret,
            ):
                response = http.get(path, headers=auth(secret))
                assert error_of(response, 401) == "invalid_credential"
                assert 'error="invalid_token"' in response.headers["www-authenticate"]

        for secret, doc_id in (
            (alpha.key, mine[0]),
            (beta.key, foreign[0]),
            (beta.tokens[beta.customers[0]], theirs[0]),
            (alpha.tokens[alpha.customers[0]], mine[0]),
        ):
            assert (
                error_of(http.get(f"/invoices/{doc_id}", headers=auth(secret)), 404, "invoiceId")
                == "not_found"
            )
        for bad in ("abc", "0", "-1", f"0{mine[0]}", "9" * 40, "1e3", "99999999"):
            error_of(http.get(f"/invoices/{bad}", headers=auth(beta.key)), 404, "invoiceId")

        token = auth(beta.tokens[beta.customers[0]])
        assert listed(walk(http, beta.tokens[beta.customers[0]], 2)) == mine
        assert http.get(f"/invoices/{mine[0]}", headers=token).status_code == 200
        assert listed(walk(http, alpha.key, 100)) == ids(db, alpha.org_id)


def test_credit_notes_are_not_invoices(db: Database, clock: FixedClock) -> None:
    _alpha, beta = build_world(db, clock)
    source = ids(db, beta.org_id)[0]
    with db.write() as conn:
        row = dict(conn.execute(select(t.documents).where(t.documents.c.id == source)).mappings().one())
        row.update(type="credit_note", status="draft", sequence=None, number=None, issued_at=None)
        del row["id"]
        note = conn.execute(insert(t.documents).values(row).returning(t.documents.c.id)).scalar_one()
    with served(db, clock) as http:
        error_of(http.get(f"/invoices/{note}", headers=auth(beta.key)), 404, "invoiceId")
        error_of(
            http.get("/invoices", params={"startingAfter": str(note)}, headers=auth(beta.key)),
            400,
            "startingAfter",
        )
        assert note not in listed(walk(http, beta.key, 100))
        assert listed(walk(http, beta.key, 100)) == ids(db, beta.org_id)


def test_openapi_and_prefix(db: Database, clock: FixedClock) -> None:
    _alpha, beta = build_world(db, clock)
    with served(db, clock, dialect_payments_prefix="/compat/payments") as http:
        spec = http.get("/openapi.json").json()
        listing = spec["paths"]["/compat/payments/invoices"]["get"]
        one = spec["paths"]["/compat/payments/invoices/{invoiceId}"]["get"]
        params = {p["name"]: p for p in listing["parameters"]}
        assert params["limit"]["schema"] == {"type": "string", "pattern": "^[0-9][0-9]?$|^100$"}
        assert params["startingAfter"]["in"] == "query"
        assert [p["name"] for p in one["parameters"]] == ["invoiceId"]
        assert set(listing["responses"]) == set(one["responses"]) == {"200", "400", "401", "404", "429"}
        schemas = spec["components"]["schemas"]
        invoice = schemas["PaymentsInvoice"]
        assert list(invoice["properties"]) == INVOICE_FIELDS
        assert set(invoice["required"]) == set(INVOICE_FIELDS)
        assert invoice["properties"]["subTotal"]["type"] == "number"
        assert invoice["properties"]["status"]["enum"] == ["DRAFT", "OPEN", "PAID", "VOID", "UNCOLLECTIBLE"]
        assert list(schemas["PaymentsSubscriptionItem"]["properties"]) == ITEM_FIELDS
        assert list(schemas["PaymentsError"]["properties"]) == ["error"]

        response = http.get("/compat/payments/invoices", params={"limit": "1"}, headers=auth(beta.key))
        assert [int(i["id"]) for i in parse(response)["data"]["items"]] == ids(db, beta.org_id)[:1]
