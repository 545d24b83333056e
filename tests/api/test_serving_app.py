"""`fiscus serve`'s app factory: the same app, with what start-up built frozen out of the collector."""

from __future__ import annotations

import gc

import pytest
from fastapi.testclient import TestClient

from fiscus.adapters.db.engine import Database
from fiscus.api.app import GC_GEN0_THRESHOLD, create_serving_app


def test_the_serving_app_freezes_its_start_up_objects(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FISCUS_DATABASE_URL", db.url)
    threshold = gc.get_threshold()
    try:
        app = create_serving_app()
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold()[0] == GC_GEN0_THRESHOLD
        with TestClient(app) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            assert client.get("/readyz").status_code == 200
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
