"""`FISCUS_REQUEST_THREADS` sizes the pool the synchronous handlers run in, once the app has started."""

from __future__ import annotations

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from fiscus.adapters.db.engine import Database
from fiscus.config import Settings
from fiscus.domain.clock import FixedClock
from tests.api_support import make_app


def _pool_size() -> int:
    return int(anyio.to_thread.current_default_thread_limiter().total_tokens)


def test_the_setting_sizes_the_handler_pool(db: Database, clock: FixedClock) -> None:
    with TestClient(make_app(db, clock, request_threads=3)) as client:
        assert client.portal is not None
        assert client.portal.call(_pool_size) == 3
        assert client.get("/healthz").status_code == 200


def test_a_pool_of_no_threads_is_refused() -> None:
    with pytest.raises(ValidationError, match="request_threads"):
        Settings(request_threads=0)
