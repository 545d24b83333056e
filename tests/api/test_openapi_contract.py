"""The OpenAPI document against what the server does, operation by operation: every refusal a caller
can meet on every path (no credential, rate limited) is documented there with its content type, and
every operation tells a reader what it does. The fuzzing (test_fuzz.py) covers the bodies."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from tests.api_support import api_client, auth, build_world

NATIVE_REFUSALS = {"400", "401", "403", "404", "409", "422", "429"}


def _operations(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    doc = client.get("/openapi.json").json()
    return [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _documented(op: dict[str, Any], status: int, content_type: str) -> bool:
    response = op["responses"].get(str(status))
    if response is None:
        return False
    media = content_type.split(";")[0].strip()
    return media in response.get("content", {}) or not response.get("content")


def _authenticated(path: str, op: dict[str, Any]) -> bool:
    return path.startswith(("/api/", "/v1/", "/invoices")) and "webhooks/gateway" not in path


def test_every_operation_has_a_summary_and_a_description(db: Database, clock: FixedClock) -> None:
    with api_client(db, clock) as client:
        bare = [
            f"{m.upper()} {p}"
            for p, m, op in _operations(client)
            if not op.get("summary") or not op.get("description")
        ]
    assert bare == []


def test_native_operations_document_every_refusal(db: Database, clock: FixedClock) -> None:
    with api_client(db, clock) as client:
        missing = {
            f"{m.upper()} {p}": sorted(NATIVE_REFUSALS - set(op["responses"]))
            for p, m, op in _operations(client)
            if p.startswith("/api/v1/") and "webhooks/gateway" not in p
        }
    assert {k: v for k, v in missing.items() if v} == {}


def test_no_credential_is_answered_as_documented(db: Database, clock: FixedClock) -> None:
    with api_client(db, clock) as client:
        wrong = []
        for path, method, op in _operations(client):
            if not _authenticated(path, op):
                continue
            r = client.request(method.upper(), _url(path), json={} if method == "post" else None)
            if r.status_code != 401 or not _documented(op, 401, r.headers.get("content-type", "")):
                wrong.append(f"{method.upper()} {path}: {r.status_code} {r.headers.get('content-type')}")
    assert wrong == []


@pytest.mark.parametrize("kind", ["key", "token"])
def test_rate_limiting_is_answered_as_documented(db: Database, clock: FixedClock, kind: str) -> None:
    world = build_world(db, clock)[0]
    secret = world.key if kind == "key" else world.tokens[world.customers[0]]
    with api_client(db, clock, rate_limit_per_second=0.001, rate_limit_burst=1.0) as client:
        wrong = []
        for path, method, op in _operations(client):
            if not _authenticated(path, op):
                continue
            headers = {**auth(secret), "Accept": "application/json"}
            client.get("/api/v1/customers", headers=headers)  # spends the one request of the burst
            r = client.request(method.upper(), _url(path), headers=headers)
            if r.status_code == 403 and _documented(op, 403, r.headers.get("content-type", "")):
                continue  # a credential this operation refuses outright (admin-only routes)
            if r.status_code != 429 or not _documented(op, 429, r.headers.get("content-type", "")):
                wrong.append(f"{method.upper()} {path}: {r.status_code} {r.headers.get('content-type')}")
            elif "retry-after" not in {h.lower() for h in r.headers}:
                wrong.append(f"{method.upper()} {path}: 429 without Retry-After")
    assert wrong == []
