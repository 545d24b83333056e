"""Schema-driven fuzzing (schemathesis) of the OpenAPI document against a real `fiscus serve` process
on each database.

Checks: no 5xx; every status, content type, header and body as documented; schema-violating requests
refused; schema-valid requests accepted (or refused only for state: 401/403/404/409/429); no
"schema validation mismatch" warning; and no runtime error (each is reported with its operation and
message, from schemathesis' JSON run report, never folded into a generic failure). Created ids are
reused through the links schemathesis infers.

`make test` runs the lean leg: the examples, fuzzing and stateful phases with few examples per
operation (≥ 1,500 cases per database, each database with a seed of its own, so the two legs together
send ≥ 3,000 different cases; the CI budget). `make fuzz` adds the coverage phase (every boundary and
negative value of every schema) and raises the examples (≥ 5,000 cases per database)."""

from __future__ import annotations

import json
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
EXAMPLES = int(os.environ.get("FISCUS_FUZZ_EXAMPLES", "14"))
MIN_CASES = int(os.environ.get("FISCUS_FUZZ_MIN_CASES", "1500"))
SEEDS = {"sqlite": "20261123", "postgresql": "20261124"}
"""A seed per database: the two legs explore different cases."""
PHASES = os.environ.get("FISCUS_FUZZ_PHASES", "examples,fuzzing,stateful")
PHASE_TIME = re.compile(r"((?:Examples|Coverage|Fuzzing|Stateful) \(in [0-9.]+s\))")
ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
    "response_schema_conformance,negative_data_rejection,positive_data_acceptance"
)


def test_schemathesis_finds_nothing(db: Database, db_url: str, clock: FixedClock, tmp_path: Path) -> None:
    worlds = build_world(db, clock)
    with gateway_process(tmp_path) as gateway:
        _fuzz(worlds[0].key, db_url, tmp_path, gateway.url)


def _serve(db_url: str, tmp_path: Path, gateway_url: str) -> tuple[subprocess.Popen[bytes], str]:
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
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # a loaded machine (CI, several suites at once) starts it slowly
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                # Build the document once before schemathesis fetches it with its own short timeout.
                httpx.get(f"{base}/openapi.json", timeout=120).raise_for_status()
                return server, base
        except httpx.HTTPError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("fiscus serve did not become ready: " + _server_log(tmp_path))


def _fuzz(key: str, db_url: str, tmp_path: Path, gateway_url: str) -> None:
    server, base = _serve(db_url, tmp_path, gateway_url)
    report_path = tmp_path / "schemathesis.json"
    started = time.monotonic()
    try:
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "--config-file",
                str(CONFIG),
                "run",
                f"{base}/openapi.json",
                "-H",
                f"Authorization: Bearer {key}",
                "--checks",
                CHECKS,
                "--phases",
                PHASES,
                "--max-examples",
                str(EXAMPLES),
                "--seed",
                SEEDS[db_url.split(":")[0].split("+")[0]],
                "--no-color",
                "--workers",
                "2",
                "--suppress-health-check",
                "all",
                "--request-timeout",
                "20",
                "--generation-database",
                "none",
                "--generation-allow-x00",
                "false",
                "--report",
                "json",
                "--report-json-path",
                str(report_path),
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.api.fuzz_hooks", "PYTHONPATH": str(ROOT)},
        )
    finally:
        server.terminate()
        server.wait(10)
    elapsed = time.monotonic() - started
    findings = _findings(result.stdout)
    assert report_path.exists(), findings + result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    # Runtime errors (a request the client could not send, a schema it could not generate from, a
    # connection the server dropped) come first, each with its operation and message.
    assert report["errors"] == [], json.dumps(report["errors"], indent=1)[:6000] + _server_log(tmp_path)
    assert report["failures"] == [], findings + _server_log(tmp_path)
    assert report["warnings"]["validation_mismatch"] == [], findings
    assert result.returncode == 0, findings + result.stderr[-3000:]
    generated = int(report["test_cases"]["generated"])
    phases = ", ".join(PHASE_TIME.findall(result.stdout))
    print(f"schemathesis: {generated} cases on {db_url.split(':')[0]} in {elapsed:.0f} s ({phases})")
    assert generated >= MIN_CASES, findings


def _findings(stdout: str) -> str:
    """The report's failures, errors and warnings sections (the progress lines before them are noise)."""
    for marker in ("= FAILURES =", "= ERRORS =", "= WARNINGS ="):
        at = stdout.find(marker)
        if at >= 0:
            return stdout[max(0, stdout.rfind("\n", 0, at)) :][:20000]
    return stdout[-8000:]


def _server_log(tmp_path: Path) -> str:
    return "\n--- server log (tail) ---\n" + (tmp_path / "server.log").read_text()[-4000:]
