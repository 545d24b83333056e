"""One signed HTTP attempt to a webhook endpoint, Standard Webhooks style.

Each attempt re-runs the SSRF check (DNS may have changed since the endpoint was saved) and connects
to the address that check vetted, keeping the original Host header and TLS SNI (certificates are still
verified against the host name). Keep-alive is off so that a connection opened for one host name is
never reused for another name on the same address.

Redirects are not followed: a 3xx is a failed attempt, and its `Location` is recorded, never called
(following it would bypass the SSRF check). Timeouts: 5 s to connect; the response headers must arrive
within 10 s of the start, and the body (of which only the first 2 KB is kept) is read until the 10 s
deadline, checked between reads, so one slow read can overrun it by at most the read timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

import httpx
from standardwebhooks import Webhook

from fiscus.adapters.webhooks import ssrf
from fiscus.domain.clock import Clock, SystemClock
from fiscus.domain.errors import InvalidFieldError

USER_AGENT: Final = "Fiscus-Webhooks/0.1"
CONNECT_TIMEOUT: Final = 5.0
TOTAL_TIMEOUT: Final = 10.0
BODY_KEPT: Final = 2048


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one attempt produced: a status code or an error text, never both missing."""

    status_code: int | None
    error: str | None
    duration_ms: int
    response_body: str | None
    blocked: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300

    @property
    def outcome(self) -> str:
        """The label counted in metrics: success, http_error, redirect, blocked or network_error."""
        if self.ok:
            return "success"
        if self.blocked:
            return "blocked"
        if self.status_code is not None:
            return "redirect" if 300 <= self.status_code < 400 else "http_error"
        return "network_error"


def event_body(event_type: str, created_at: datetime, payload: Any) -> str:
    """The delivered JSON, compact, so the signed bytes are exactly the bytes sent."""
    stamp = created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {"type": event_type, "timestamp": stamp, "data": payload}, separators=(",", ":"), ensure_ascii=False
    )


def sign(secrets: Sequence[str], msg_id: str, timestamp: datetime, body: str) -> str:
    """The `webhook-signature` value: one `v1,…` signature per secret, space-separated, so receivers
    holding either the old or the new secret verify during a rotation."""
    return " ".join(Webhook(secret).sign(msg_id, timestamp, body) for secret in secrets)


class WebhookSender:
    """Sends signed webhook requests. `clock` stamps `webhook-timestamp`; receivers reject stamps more
    than 5 minutes from their own time, so it is the wall clock unless a test says otherwise."""

    def __init__(
        self,
        *,
        client: httpx.Client | None = None,
        clock: Clock | None = None,
        resolver: ssrf.Resolver = ssrf.system_resolver,
    ) -> None:
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT),
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._clock = clock or SystemClock()
        self._resolver = resolver

    def __enter__(self) -> WebhookSender:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def send(
        self, url: str, *, msg_id: str, body: str, secrets: Sequence[str], allow_private: bool
    ) -> SendResult:
        """One attempt; never raises for anything the destination does."""
        started = time.monotonic()
        try:
            address = ssrf.check_url(url, allow_private=allow_private, resolver=self._resolver)
        except ssrf.BlockedDestination as exc:
            return SendResult(None, f"blocked: {exc.message}", _ms(started), None, blocked=True)
        except InvalidFieldError as exc:
            return SendResult(None, exc.message, _ms(started), None)
        original = httpx.URL(url)
        pinned = original.copy_with(host=address)
        timestamp = self._clock.now().astimezone(UTC)
        headers = {
            "host": original.netloc.decode("ascii"),
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": sign(secrets, msg_id, timestamp, body),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        extensions = {"sni_hostname": original.raw_host.decode("ascii")} if original.scheme == "https" else {}
        request = self._client.build_request(
            "POST", pinned, content=body.encode(), headers=headers, extensions=extensions
        )
        try:
            response = self._client.send(request, stream=True)
            try:
                kept = _read_some(response, started + TOTAL_TIMEOUT)
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            return SendResult(None, f"timeout: {type(exc).__name__} {exc}".strip(), _ms(started), None)
        except httpx.HTTPError as exc:
            return SendResult(None, f"{type(exc).__name__}: {exc}", _ms(started), None)
        text = kept.decode("utf-8", errors="replace")
        status = response.status_code
        if 300 <= status < 400:
            location = response.headers.get("location", "")[:500]
            return SendResult(status, f"redirect to {location!r} not followed", _ms(started), text)
        return SendResult(status, None, _ms(started), text)


def _read_some(response: httpx.Response, deadline: float) -> bytes:
    kept = b""
    for chunk in response.iter_bytes():
        kept += chunk
        if len(kept) >= BODY_KEPT or time.monotonic() > deadline:
            break
    return kept[:BODY_KEPT]


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
