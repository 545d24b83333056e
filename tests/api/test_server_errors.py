"""A failure inside a handler, forced, under a real uvicorn server: each surface answers 500 in its own
documented shape with its content type (never plain text, never a dropped connection), and the next
request is served normally."""

from __future__ import annotations

from typing import Any, Final

import httpx
import pytest

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from tests.api_support import auth, build_world, live_server, make_app

CASES: Final = [
    # (module attribute that fails, path, content type, body)
    (
        "fiscus.api.dialects.billing.payment_facts",
        "/v1/billing/invoices/",
        "application/json",
        {"error": "Server Error (500)"},
    ),
    (
        "fiscus.api.dialects.billing.payment_facts",
        "/v1/billing/invoices/{doc}/",
        "application/json",
        {"error": "Server Error (500)"},
    ),
    (
        "fiscus.api.dialects.payments.collection_facts",
        "/invoices",
        "application/json",
        {"error": {"code": "internal_error", "message": "Server Error", "param": None}},
    ),
    (
        "fiscus.api.dialects.payments.collection_facts",
        "/invoices/{doc}",
        "application/json",
        {"error": {"code": "internal_error", "message": "Server Error", "param": None}},
    ),
    (  # the list's items are cached by the first request: fail before the cache
        "fiscus.api.dialects.vps.count_documents",
        "/v1/invoices",
        "application/json",
        {"message": "Server Error"},
    ),
    (
        "fiscus.api.dialects.vps.present",
        "/v1/invoices/{doc}",
        "application/json",
        {"message": "Server Error"},
    ),
    (
        "fiscus.api.routes.documents.load_documents",
        "/api/v1/documents/{doc}",
        "application/problem+json",
        None,
    ),
]


def _boom(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("forced failure inside a handler")


@pytest.mark.parametrize(("target", "path", "content_type", "body"), CASES)
def test_a_server_error_is_in_the_surface_shape(
    db: Database,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    path: str,
    content_type: str,
    body: dict[str, Any] | None,
) -> None:
    world = build_world(db, clock)[0]
    module, _, name = target.rpartition(".")
    with live_server(make_app(db, clock)) as base, httpx.Client(base_url=base, timeout=30) as http:
        h = {**auth(world.key), "Accept": "application/json"}
        first = http.get("/v1/invoices", headers=h).json()["data"][0]["id"]
        url = path.format(doc=first)
        monkeypatch.setattr(f"{module}.{name}", _boom)
        failed = http.get(url, headers=h)
        assert failed.status_code == 500
        assert failed.headers["content-type"].split(";")[0] == content_type
        if body is not None:
            assert failed.json() == body
        else:
            problem = failed.json()
            assert (problem["status"], problem["code"]) == (500, "internal_error")
            assert "forced" not in failed.text  # no details leak
        monkeypatch.undo()
        assert http.get(url, headers=h).status_code == 200
