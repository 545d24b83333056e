"""Idempotency-Key with Stripe's semantics, including two real requests racing on one key."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services import customers as customer_services
from tests.api_support import api_client, auth, build_world, live_server, make_app

BODY = {"name": "Ada", "email": "ada@example.com", "country": "BG"}


def customers(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(t.customers)).scalar_one())


def test_replay_mismatch_and_validation(db: Database, clock: FixedClock) -> None:
    a, b = build_world(db, clock)
    start = customers(db)
    with api_client(db, clock) as api:
        h = {**auth(a.key), "Idempotency-Key": "create-ada"}
        first = api.post("/api/v1/customers", json=BODY, headers=h)
        again = api.post("/api/v1/customers", json=BODY, headers=h)
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert customers(db) == start + 1
        other = api.post("/api/v1/customers", json={**BODY, "name": "Eve"}, headers=h)
        assert other.status_code == 422
        assert other.json()["code"] == "idempotency_key_mismatch"
        elsewhere = api.post("/api/v1/customers/999999", json={"name": "Eve"}, headers=h)
        assert elsewhere.status_code == 422  # same key, other path
        # keys are per organisation: B may use the same key for its own request
        assert (
            api.post(
                "/api/v1/customers", json=BODY, headers={**auth(b.key), "Idempotency-Key": "create-ada"}
            ).status_code
            == 201
        )
        # a request that failed validation is not stored: the key stays usable
        h2 = {**auth(a.key), "Idempotency-Key": "second"}
        assert api.post("/api/v1/customers", json={**BODY, "country": "ZZ"}, headers=h2).status_code == 422
        assert api.post("/api/v1/customers", json=BODY, headers=h2).status_code == 201
        # a domain refusal is a response like any other: replayed, not re-executed
        doc = api.get("/api/v1/documents", params={"status": "open", "type": "invoice"}, headers=auth(a.key))
        doc_id = doc.json()["data"][0]["id"] if doc.json()["data"] else None
        if doc_id:
            h3 = {**auth(a.key), "Idempotency-Key": "void-once"}
            assert api.post(f"/api/v1/documents/{doc_id}/void", headers=h3).status_code == 200
            assert api.post(f"/api/v1/documents/{doc_id}/void", headers=h3).json()["status"] == "void"
    assert customers(db) == start + 3


def test_a_concurrent_duplicate_gets_409(
    db: Database, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = build_world(db, clock)
    original = customer_services.create_customer  # what fiscus.api.routes.customers calls as svc
    entered, answered = threading.Event(), threading.Event()

    def slow(*args: Any, **kwargs: Any) -> int:
        """The first request holds its key inside the handler until the duplicate has been answered."""
        entered.set()
        assert answered.wait(60)
        return original(*args, **kwargs)

    monkeypatch.setattr(customer_services, "create_customer", slow)
    start = customers(db)
    with live_server(make_app(db, clock)) as base:
        headers = {**auth(a.key), "Idempotency-Key": "race"}

        def post() -> httpx.Response:
            return httpx.post(f"{base}/api/v1/customers", json=BODY, headers=headers, timeout=30)

        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(post)
            assert entered.wait(60)
            try:
                loser = post()  # the same key while the first is still being handled
            finally:
                answered.set()
            first = pending.result()
        assert (first.status_code, loser.status_code) == (201, 409)
        assert loser.json()["code"] == "idempotency_key_in_use"
        replay = httpx.post(f"{base}/api/v1/customers", json=BODY, headers=headers, timeout=30)
        assert replay.status_code == 201
        assert replay.headers["idempotent-replayed"] == "true"
    assert customers(db) == start + 1
