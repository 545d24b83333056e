"""The test payment gateway as the demo uses it: `fiscus gateway` started as its own process (reached
only over real HTTP), the provider Fiscus charges through (one card's answers deliberately lost), and
the customers' browsers tokenising cards straight at the gateway."""

from __future__ import annotations

import base64
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import httpx

from fiscus.adapters.payments.gateway import GatewayProvider
from fiscus.domain.payments import ChargeSnapshot

GATEWAY_HOLD_SECONDS: Final = 2.0
"""How long the demo's gateway holds the answer to the timeout test card (`--timeout-seconds`)."""
IMPATIENT_TIMEOUT_SECONDS: Final = 1.0
"""The client timeout for that card's charge: shorter than the hold, so the answer is lost."""


class DemoProvider(GatewayProvider):
    """The gateway adapter the demo charges through. The timeout test card's charges go through a
    client that gives up before the gateway answers, so the attempt's outcome is unknown until the
    janitor asks; every other call waits as long as production would."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self._impatient = GatewayProvider(base_url, timeout_seconds=IMPATIENT_TIMEOUT_SECONDS)
        self.impatient_tokens: set[str] = set()

    def charge(
        self, *, token: str, amount_minor: int, currency: str, capture: bool, reference: str, key: str
    ) -> ChargeSnapshot:
        if token in self.impatient_tokens:
            return self._impatient.charge(
                token=token,
                amount_minor=amount_minor,
                currency=currency,
                capture=capture,
                reference=reference,
                key=key,
            )
        return super().charge(
            token=token,
            amount_minor=amount_minor,
            currency=currency,
            capture=capture,
            reference=reference,
            key=key,
        )

    def close(self) -> None:
        self._impatient.close()
        super().close()


class Payments:
    """The demo's side of the gateway: customers' cards tokenised as their browser would (straight at
    the gateway, so Fiscus only ever sees tokens), and the provider Fiscus charges through."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.provider = DemoProvider(url)
        self._client = httpx.Client(base_url=url, timeout=10.0)

    def tokenise(self, number: str, exp_month: int, exp_year: int, holder: str) -> str:
        body = {
            "card_number": number,
            "exp_month": exp_month,
            "exp_year": exp_year,
            "cvc": "123",
            "holder": holder,
        }
        response = self._client.post(
            "/v1/payment_methods",
            json=body,
            headers={"Idempotency-Key": f"demo_pm_{secrets.token_urlsafe(12)}"},
        )
        response.raise_for_status()
        return str(response.json()["token"])

    def close(self) -> None:
        self._client.close()
        self.provider.close()


def free_port(preferred: int | None = None) -> int:
    """`preferred` if nothing listens there on the loopback interface, else a free one."""
    for candidate in (preferred, 0) if preferred else (0,):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free port")


def new_webhook_secret() -> str:
    """A standard-webhooks secret for the gateway to sign its events with and Fiscus to check them."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def reset_gateway_ledger(path: Path) -> bool:
    """Remove the gateway's ledger (SQLite file with its WAL), so a fresh Fiscus database starts with a
    fresh gateway and the two ledgers match one to one. Returns whether there was one."""
    existed = path.exists()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return existed


class GatewayProcess:
    """`fiscus gateway` as its own process: its own ledger file, reached only over real HTTP. Started on
    construction; `wait_ready` before use, `stop` (or leave the `with` block) to end it. Its output goes
    to `log_path` (default: next to the ledger, `.log`)."""

    def __init__(
        self,
        ledger: Path,
        port: int,
        *,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        log_path: Path | None = None,
    ) -> None:
        ledger.parent.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "fiscus.cli", "gateway", "--port", str(port), "--db", str(ledger)]
        args += ["--timeout-seconds", str(GATEWAY_HOLD_SECONDS)]
        if webhook_url and webhook_secret:
            args += ["--webhook-url", webhook_url, "--webhook-secret", webhook_secret]
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path or ledger.with_suffix(".log")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def wait_ready(self, timeout: float = 90.0) -> str:
        """Block until it answers (generously: a loaded machine starts Python slowly); returns its URL."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the gateway exited ({self.process.returncode}); see {self.log_path}")
            try:
                r = httpx.get(f"{self.url}/v1/health", timeout=1.0)
                if r.status_code == 200 and r.json().get("pid") == self.process.pid:
                    return self.url
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the gateway did not start within {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@contextmanager
def gateway_process(
    ledger: Path,
    port: int,
    *,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    log_path: Path | None = None,
) -> Iterator[str]:
    """A ready gateway process for the duration of the block; yields its URL."""
    with GatewayProcess(
        ledger, port, webhook_url=webhook_url, webhook_secret=webhook_secret, log_path=log_path
    ) as gateway:
        yield gateway.wait_ready()


class WorkerProcess:
    """`fiscus worker` as its own process beside the demo's server, as production runs it: billing runs,
    collection with retries, rendering, webhook delivery and the janitor. It inherits the environment
    (database, gateway URL and secret) and the terminal, so its progress lines show; leaving the `with`
    block stops it (SIGTERM: it finishes its cycle; killed if it has not within 10 s)."""

    def __init__(self, interval: float) -> None:
        args = [sys.executable, "-m", "fiscus.cli", "worker", "--interval", str(interval)]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
