"""Signed values a web surface hands to the browser and gets back: a one-time form `state`, a `result`
shown after a Post/Redirect/Get, a CSRF token.

Each is HMAC-SHA256 with a key derived from the installation's secret for one namespace and purpose
(`pay-page` state, `pay-page` result, `csrf` token...), and bound to one subject (a document id, a
session), so a value signed for one use or one subject never verifies for another. A state expires (by
the caller's clock, never the wall clock), so an old form cannot be replayed. A sealed result carries
only what Fiscus itself put in it, so a crafted URL cannot make a page display a message of someone
else's choosing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

STATE_TTL: Final = timedelta(minutes=30)
MAX_TOKEN_CHARS: Final = 1000


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class Signer:
    """Signs and checks values for one namespace (one surface or helper) with keys derived from `secret`."""

    secret: bytes
    namespace: str

    def _key(self, purpose: str) -> bytes:
        """A separate key per purpose, so a value signed for one use is never valid for another."""
        return hmac.new(self.secret, f"fiscus:{self.namespace}:{purpose}".encode(), hashlib.sha256).digest()

    def mac(self, purpose: str, subject: int | str, payload: str) -> str:
        """The MAC of `payload` for `purpose`, bound to `subject`."""
        return _b64(hmac.new(self._key(purpose), f"{subject}:{payload}".encode(), hashlib.sha256).digest())

    def issue_state(self, subject: int | str, now: datetime, ttl: timedelta = STATE_TTL) -> str:
        """A fresh one-time value for a form about `subject`: expiry, nonce and MAC."""
        expires = int((now + ttl).timestamp())
        payload = f"{expires}.{secrets.token_urlsafe(16)}"
        return f"{payload}.{self.mac('state', subject, payload)}"

    def state_is_valid(self, subject: int | str, state: str, now: datetime) -> bool:
        """Whether `state` was issued for `subject` by this installation and has not expired."""
        if not state or len(state) > MAX_TOKEN_CHARS or not state.isascii():
            return False
        payload, _, mac = state.rpartition(".")
        expires, _, nonce = payload.partition(".")
        if not expires.isdigit() or not nonce or len(expires) > 12:
            return False
        if not hmac.compare_digest(self.mac("state", subject, payload), mac):
            return False
        return now.timestamp() <= int(expires)

    def seal(self, subject: int | str, value: dict[str, Any]) -> str:
        """`value` as JSON, readable by the browser but not alterable: payload and MAC."""
        raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        payload = _b64(raw)
        return f"{payload}.{self.mac('result', subject, payload)}"

    def open(self, subject: int | str, sealed: str) -> dict[str, Any] | None:
        """The value sealed for `subject`, or None if it was not (tampered, another subject's)."""
        if not sealed or len(sealed) > MAX_TOKEN_CHARS or not sealed.isascii():
            return None
        payload, _, mac = sealed.partition(".")
        if not hmac.compare_digest(self.mac("result", subject, payload), mac):
            return None
        try:
            value = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (binascii.Error, ValueError):
            return None
        return value if isinstance(value, dict) else None
