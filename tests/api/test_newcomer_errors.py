"""Errors a newcomer understands: malformed JSON says where, a missing or wrong Content-Type says which
one is expected, and the server's log is JSON only, with a line for every request (GETs included)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.access import create_api_key
from tests.api_support import api_client, auth, free_port
from tests.builders import make_tenant


@pytest.fixture
def key(db: Database, clock: FixedClock) -> str:
    return create_api_key(db, clock, make_tenant(db, clock, "bg").org_id).secret


def test_malformed_json_is_a_400_with_line_and_column(db: Database, clock: FixedClock, key: str) -> None:
    body = b'{\n  "name": "Ada",\n  "email": ,\n  "country": "BG"\n}'
    with api_client(db, clock) as client:
        r = client.post(
            "/api/v1/customers", content=body, headers={**auth(key), "Content-Type": "application/json"}
        )
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == "malformed_json"
    assert (problem["line"], problem["column"]) == (3, 12)
    assert "line 3, column 12" in problem["detail"]
    assert "Expecting value" in problem["detail"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_without_a_json_content_type_is_a_415_naming_it(
    db: Database, clock: FixedClock, key: str, content_type: str | None
) -> None:
    headers = auth(key) | ({"Content-Type": content_type} if content_type else {})
    with api_client(db, clock) as client:
        r = client.post(
            "/api/v1/customers",
            content=json.dumps({"name": "Ada", "email": "a@example.com", "country": "BG"}).encode(),
            headers=headers,
        )
        ok = client.post(
            "/api/v1/customers",
            json={"name": "Ada", "email": "a@example.com", "country": "BG"},
            headers=auth(key),
        )
    assert r.status_code == 415
    problem = r.json()
    assert problem["code"] == "unsupported_media_type"
    assert problem["expected"] == "application/json"
    assert "Content-Type: application/json" in problem["detail"]
    assert (content_type or "no Content-Type") in problem["detail"]
    assert ok.status_code == 201  # the same body with the right header is taken


def test_wrong_fields_in_good_json_stay_a_422(db: Database, clock: FixedClock, key: str) -> None:
    with api_client(db, clock) as client:
        r = client.post("/api/v1/customers", json={"name": "Ada"}, headers=auth(key))
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"


def test_served_log_is_json_only_with_a_line_per_get(
    db: Database, db_url: str, clock: FixedClock, key: str
) -> None:
    """`fiscus serve` in its own process (two workers): uvicorn's startup lines, our access lines and
    the shutdown are all JSON objects, and GET requests are logged with their request id."""
    if not db_url.startswith("sqlite"):
        pytest.skip("the log's shape does not depend on the database")
    port = free_port()
    env = {**os.environ, "FISCUS_DATABASE_URL": db_url, "FISCUS_RATE_LIMIT_PER_SECOND": "1000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fiscus.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        got = httpx.get(f"{base}/api/v1/customers", headers={**auth(key), "X-Request-Id": "get-logged-1"})
        assert got.status_code == 200
        bad = httpx.post(
            f"{base}/api/v1/customers", content=b"{", headers=auth(key) | {"Content-Type": "application/json"}
        )
        assert bad.status_code == 400
    finally:
        proc.send_signal(signal.SIGINT)
        out, errors = proc.communicate(timeout=30)
    lines = [ln for ln in (out + errors).splitlines() if ln.strip()]
    parsed = [json.loads(ln) for ln in lines]  # every line is a JSON object
    assert all(isinstance(p, dict) for p in parsed)
    requests = [p for p in parsed if p.get("event") == "request"]
    assert any(
        p["method"] == "GET" and p["request_id"] == "get-logged-1" and p["status"] == 200 for p in requests
    )
    assert any(p["method"] == "POST" and p["status"] == 400 for p in requests)
    assert any("Uvicorn running" in str(p.get("event")) for p in parsed)  # startup lines, as JSON
