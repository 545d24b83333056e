"""The test gateway as a separate process on a free loopback port, and helpers to give customers cards.

Cards are tokenised by talking to the gateway directly (as a customer's browser does through the hosted
card form), so Fiscus only ever sees tokens.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from fiscus.adapters.payments.gateway import GatewayProvider
from tests import forkserver
from tests.api_support import free_port

WEBHOOK_SECRET = "whsec_" + "dGVzdC1nYXRld2F5LXdlYmhvb2stc2VjcmV0LTAxMjM0NQ=="


class ProcessLike(Protocol):
    """What the tests do with a gateway's process: a `subprocess.Popen` or a `ForkedGateway`."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


@dataclass
class GatewayProcess:
    url: str
    db_path: Path
    process: ProcessLike
    log_path: Path

    def provider(self, timeout_seconds: float = 3.0) -> GatewayProvider:
        return GatewayProvider(self.url, webhook_secret=WEBHOOK_SECRET, timeout_seconds=timeout_seconds)

    def tokenise(self, number: str, exp_month: int = 12, exp_year: int = 2099, holder: str = "Test") -> str:
        body = {
            "card_number": number,
            "exp_month": exp_month,
            "exp_year": exp_year,
            "cvc": "123",
            "holder": holder,
        }
        r = httpx.post(
            f"{self.url}/v1/payment_methods", json=body, headers={"Idempotency-Key": os.urandom(8).hex()}
        )
        r.raise_for_status()
        return str(r.json()["token"])

    def ledger(self) -> dict[str, object]:
        return dict(httpx.get(f"{self.url}/v1/ledger").json())

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


def _wait_ready(url: str, process: ProcessLike, log_path: Path) -> None:
    deadline = time.monotonic() + 180  # a loaded machine (CI, several suites at once) starts it slowly
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited: {log_path.read_text()[-2000:]}")
        try:
            r = httpx.get(f"{url}/v1/health", timeout=1)
            if r.status_code == 200 and r.json().get("pid") == process.pid:
                return
            time.sleep(0.05)  # someone else holds the port; our process will exit and say why
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("gateway did not start")


class ForkedGateway:
    """The gateway's own process, forked from the tests' fork server (Fiscus, FastAPI and uvicorn already
    imported: ~2.9 s of CPU saved per gateway), behind the part of `subprocess.Popen` the tests use."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str]) -> None:
        self._process = forkserver.context().Process(
            target=forkserver.serve_gateway, args=(args, str(log_path), env), daemon=True
        )
        self._process.start()

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired("fiscus gateway", timeout or 0)
        return self._process.exitcode


@contextmanager
def gateway_process(
    tmp_path: Path,
    *,
    port: int | None = None,
    webhook_url: str | None = None,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[GatewayProcess]:
    """`fiscus gateway` in its own process, with its own ledger file; killed afterwards."""
    port = port or free_port()
    db_path = tmp_path / "gateway.db"
    log_path = tmp_path / f"gateway-{port}.log"
    args = ["gateway", "--port", str(port), "--db", str(db_path)]
    if webhook_url:
        args += ["--webhook-url", webhook_url, "--webhook-secret", WEBHOOK_SECRET]
    args += list(extra_args)
    log_path.touch()
    process = ForkedGateway(args, log_path, {**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log_path)
        yield GatewayProcess(url, db_path, process, log_path)
    finally:
        # Killed, not terminated: a graceful stop waits for any TIMEOUT-card answer still held (seconds
        # of idle teardown); the test has read the ledger it needs, and nothing else lives on.
        process.send_signal(signal.SIGKILL)
        process.wait(10)
