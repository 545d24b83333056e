"""Schema-driven fuzzing (schemathesis) of the OpenAPI document against a real `fiscus serve`
process on each database: no 5xx, no response that breaks the schema, no accepted invalid input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from tests.api_support import build_world, free_port
from tests.payments_support import WEBHOOK_SECRET, gateway_process

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("FISCUS_FUZZ_EXAMPLES", "40"))


def test_schemathesis_finds_no_server_errors(
    db: Database, db_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    worlds = build_world(db, clock)
    with gateway_process(tmp_path) as gateway:
        _fuzz(worlds[0].key, db_url, tmp_path, gateway.url)


def _fuzz(key: str, db_url: str, tmp_path: Path, gateway_url: str) -> None:
    """With a gateway configured: the payment routes' 503 "not configured" is by design, not a fault."""
    port = free_port()
    env = {
        **os.environ,
        "FISCUS_DATABASE_URL": db_url,
        "FISCUS_RATE_LIMIT_PER_SECOND": "100000",
        "FISCUS_RATE_LIMIT_BURST": "100000",
        "FISCUS_ACCESS_LOG": "false",
        "FISCUS_LOG_LEVEL": "WARNING",
        "FISCUS_GATEWAY_URL": gateway_url,
        "FISCUS_GATEWAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "fiscus.cli", "serve", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "w"),  # noqa: SIM115
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "run",
                f"{base}/openapi.json",
                "-H",
                f"Authorization: Bearer {key}",
                "--checks",
                "not_a_server_error,response_schema_conformance,content_type_conformance,"
                "status_code_conformance,negative_data_rejection",
                "--max-examples",
                str(EXAMPLES),
                "--seed",
                "20261123",
                "--no-color",
                "--workers",
                "2",
                "--phases",
                "examples,coverage,fuzzing",
                "--suppress-health-check",
                "all",
                "--request-timeout",
                "10",
                "--generation-database",
                "none",
                "--report",
                "junit",
                "--report-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=1200,
            stdin=subprocess.DEVNULL,
        )
        tail = result.stdout[-6000:]
        assert result.returncode == 0, tail + (tmp_path / "server.log").read_text()[-3000:]
        generated = re.search(r"(\d+) generated", result.stdout)
        assert generated is not None, tail
        print(f"schemathesis: {generated.group(0)} cases on {db_url.split(':')[0]}")
        assert int(generated.group(1)) >= 1000, tail
    finally:
        server.terminate()
        server.wait(10)
