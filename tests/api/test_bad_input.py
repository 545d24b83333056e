"""Oversized integers, NUL bytes and 10 kB values in every path parameter, query parameter, header and
JSON body field of every route of the app (enumerated from `app.routes`), sent with the owning
organisation's credentials: never a 5xx, and every refusal in the shape of the surface that owns the
path (the native API's RFC 9457 problem naming the field; each dialect's own error shape)."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import Table, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.payment_links import link_secret, payment_path
from tests.api_support import OrgWorld, auth, build_world, make_app
from tests.payments_support import WEBHOOK_SECRET, GatewayProcess, gateway_process

BIG_INT: Final = "9" * 4400
"""More digits than Python's int-string limit (4,300): `int()` of it raises ValueError."""
BAD_VALUES: Final = {"big_int": BIG_INT, "nul": "1\x00", "ten_kb": "x" * 10_240}
_RAW: Final = "@@raw-big-int@@"
"""Stands in the JSON for BIG_INT as a bare number (Python's json cannot encode it)."""
HEADERS: Final = ("Authorization", "Idempotency-Key", "Accept", "X-Request-Id", "X-Forwarded-Host")
PAGES: Final = ("/pay/", "/portal/", "/email/", "/console/")
"""Pages for people (the hosted payment page, the customer portal, the email unsubscribe page, the
operator console) answer refusals as HTML pages."""
SURFACES: Final = {
    "compatibility: billing": "billing",
    "compatibility: payments": "payments",
    "compatibility: vps": "vps",
}
ID_TABLES: Final[dict[str, Table]] = {
    "customer_id": t.customers,
    "product_id": t.products,
    "variant_id": t.variants,
    "price_id": t.prices,
    "subscription_id": t.subscriptions,
    "order_id": t.orders,
    "document_id": t.documents,
    "run_id": t.billing_runs,
    "endpoint_id": t.webhook_endpoints,
    "delivery_id": t.webhook_deliveries,
    "payment_method_id": t.payment_methods,
    "payment_id": t.payment_attempts,
    "invoiceId": t.documents,
    "id": t.documents,
    "invoice": t.documents,
}
PATH_DEFAULTS: Final = {"document_type": "invoice", "series": "main"}
"""Valid values of the path parameters that are not ids, so a bad value in one is the only fault."""
BODIES: Final[dict[tuple[str, str], Callable[[dict[str, str]], dict[str, Any]]]] = {
    ("POST", "/api/v1/customers"): lambda ids: {"name": "A", "email": "a@example.com", "country": "BG"},
    ("POST", "/api/v1/customers/{customer_id}"): lambda ids: {"name": "B"},
    ("POST", "/api/v1/products"): lambda ids: {"code": "p", "name": "P", "tags": ["t"]},
    ("POST", "/api/v1/products/{product_id}/variants"): lambda ids: {"code": "v", "name": "V", "limits": []},
    ("POST", "/api/v1/variants/{variant_id}/prices"): lambda ids: {
        "currency": "EUR",
        "unit_amount": "1.00",
        "interval": "month",
    },
    ("POST", "/api/v1/subscriptions"): lambda ids: {
        "customer_id": int(ids["customer_id"]),
        "items": [{"price_id": int(ids["price_id"]), "quantity": "1"}],
    },
    ("POST", "/api/v1/orders"): lambda ids: {
        "customer_id": int(ids["customer_id"]),
        "items": [{"price_id": int(ids["price_id"]), "quantity": "1"}],
    },
    ("POST", "/api/v1/webhook_endpoints"): lambda ids: {
        "url": "https://hooks.example.com/x",
        "events": ["document.issued"],
    },
    ("POST", "/api/v1/documents/{document_id}/credit_notes"): lambda ids: {"reason": "r"},
    ("POST", "/api/v1/subscriptions/{subscription_id}/cancel"): lambda ids: {"at_period_end": True},
    ("POST", "/api/v1/billing_runs"): lambda ids: {},
}


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    surface: str
    where: str  # "path", "query", "header", "body"
    name: str
    kind: str


def _surface(tags: list[Any] | None) -> str:
    for tag in tags or []:
        if str(tag) in SURFACES:
            return SURFACES[str(tag)]
    return "native"


def _ids(db: Database, world: OrgWorld, clock: FixedClock) -> dict[str, str]:
    """A real object of the organisation for every path parameter, so a bad value elsewhere reaches
    the handler instead of stopping at a 404."""
    out: dict[str, str] = {}
    with db.read() as conn:
        for name, table in ID_TABLES.items():
            query = select(table.c.id).order_by(table.c.id)
            if "organization_id" in table.c:
                query = query.where(table.c.organization_id == world.org_id)
            found = conn.execute(query.limit(1)).scalar_one_or_none()
            out[name] = str(found or 1)
    secret = link_secret(db, clock, None)
    out["link"] = payment_path(secret, world.org_id, int(out["document_id"])).rsplit("/", 1)[1]
    out["rest"] = "pdf"
    return out


def _routes(app: FastAPI) -> Iterator[tuple[str, str, str, list[str], list[str]]]:
    """(method, path template, surface, query parameter names, body field names) of every route."""
    spec = app.openapi()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = str(context.path)
        if path.startswith(("/docs", "/openapi")):
            continue
        dependant = getattr(route, "dependant", None)
        query = [p.alias for p in dependant.query_params] if dependant is not None else []
        for param in (getattr(route, "openapi_extra", None) or {}).get("parameters", []):
            if param["in"] == "query":
                query.append(param["name"])
        for method in sorted(context.methods or []):
            operation = spec["paths"].get(path, {}).get(method.lower(), {})
            body = _body_fields(spec, operation)
            yield method, path, _surface(getattr(context, "tags", None)), query, body


def _body_fields(spec: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = content.get("schema", {})
    ref = schema.get("$ref") or next((s.get("$ref") for s in schema.get("anyOf", []) if "$ref" in s), None)
    if ref is None:
        return []
    target = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return list(target.get("properties", {}))


def _fill(path: str, ids: dict[str, str], bad: tuple[str, str] | None = None) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        if bad is not None and name == bad[0]:
            return quote(bad[1], safe="")
        return ids.get(name, PATH_DEFAULTS.get(name, "1"))

    return re.sub(r"\{([^}]+)\}", value, path)


def _shape_ok(
    surface: str, method: str, path: str, status: int, content_type: str, body: bytes
) -> str | None:
    """None when a refusal is in its surface's shape, else what is wrong (HEAD: the content type only)."""
    if status < 400:
        return None
    if method == "HEAD" and not body:
        body = b"{}" if surface == "native" or path.startswith(PAGES) else b'{"detail":"","message":""}'
        if surface == "payments":
            body = b'{"error":{"code":"","message":"","param":null}}'
    if path.startswith(PAGES):
        return None if content_type.startswith("text/html") else f"page answered {content_type}"
    try:
        payload = json.loads(body)
    except ValueError:
        return f"not JSON ({content_type}): {body[:80]!r}"
    if surface == "native":
        if not content_type.startswith("application/problem+json"):
            return f"native refusal as {content_type}"
        missing = {"type", "title", "status", "detail", "code"} - set(payload)
        return f"problem without {missing}" if missing else None
    if not content_type.startswith("application/json"):
        return f"{surface} refusal as {content_type}"
    if surface == "billing":
        return None if isinstance(payload.get("detail"), str) else f"not DRF's shape: {payload}"
    if surface == "payments":
        error = payload.get("error")
        return None if isinstance(error, dict) and {"code", "message", "param"} <= set(error) else "shape"
    return None if isinstance(payload.get("message"), str) else f"not Laravel's shape: {payload}"


def _unnamed(probe: Probe, status: int, text: str) -> bool:
    """A native validation refusal of a parameter or body field that does not name it."""
    return probe.surface == "native" and status == 422 and probe.where != "header" and probe.name not in text


def _probes(app: FastAPI) -> Iterator[Probe]:
    """Every bad value in every place of every route."""
    for method, path, surface, query, body in _routes(app):
        places = [("path", name) for name in re.findall(r"\{([^}:]+)", path)]
        places += [("query", name) for name in query]
        places += [("header", name) for name in HEADERS]
        places += [("body", name) for name in body]
        for kind in BAD_VALUES:
            for where, name in places:
                yield Probe(method, path, surface, where, name, kind)


def _send(api: TestClient, world: OrgWorld, ids: dict[str, str], probe: Probe) -> Any:
    method, path, where = probe.method, probe.path, probe.where
    bad = (probe.name, BAD_VALUES[probe.kind])
    headers = {**auth(world.key), "Idempotency-Key": uuid.uuid4().hex}
    url = _fill(path, ids, bad if where == "path" else None)
    params: dict[str, str] = {}
    body: dict[str, Any] | None = None
    if method in ("POST", "PATCH", "PUT"):
        build = BODIES.get((method, path))
        body = {} if build is None else build(ids)
    if where == "query":
        params[bad[0]] = bad[1]
    elif where == "header":
        headers[bad[0]] = f"Bearer {bad[1]}" if bad[0] == "Authorization" else bad[1]
    elif where == "body":
        body = {**(body or {}), bad[0]: _RAW if bad[1] == BIG_INT else bad[1]}
    content = None if body is None else json.dumps(body).replace(f'"{_RAW}"', BIG_INT).encode()
    if content is not None:
        headers["Content-Type"] = "application/json"
    return api.request(method, url, params=params, headers=headers, content=content, follow_redirects=False)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("gw")) as gw:
        yield gw


@pytest.mark.slow
def test_bad_input_on_every_path_is_refused_in_the_surface_shape(
    db: Database, clock: FixedClock, gateway: GatewayProcess
) -> None:
    """With payments configured, so that the payment routes run their handlers too."""
    world = build_world(db, clock)[0]
    app = make_app(db, clock, gateway_url=gateway.url, gateway_webhook_secret=WEBHOOK_SECRET)
    ids = _ids(db, world, clock)
    faults: list[str] = []
    sent: Counter[str] = Counter()
    with TestClient(app, raise_server_exceptions=False) as api:
        for probe in _probes(app):
            try:
                response = _send(api, world, ids, probe)
            except Exception:  # the client itself refuses to send it (e.g. NUL in a header)
                if probe.where != "header":
                    raise
                sent["unsendable"] += 1
                continue
            sent[probe.surface] += 1
            where_msg = f"{probe.method} {probe.path} {probe.where}:{probe.name}={probe.kind}"
            if response.status_code >= 500:
                faults.append(f"{where_msg} → {response.status_code} {response.text[:120]}")
                continue
            wrong = _shape_ok(
                probe.surface,
                probe.method,
                probe.path,
                response.status_code,
                response.headers.get("content-type", ""),
                response.content,
            )
            if wrong:
                faults.append(f"{where_msg} → {response.status_code} {wrong}")
            elif _unnamed(probe, response.status_code, response.text):
                faults.append(f"{where_msg} → {response.status_code} names no field: {response.text[:200]}")
    print(f"bad-input probes sent: {dict(sent)}")
    assert not faults, f"{len(faults)} faults:\n" + "\n".join(faults[:400])
    assert sum(sent.values()) > 1000
