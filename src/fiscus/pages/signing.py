"""Signed values the payment page hands to the browser and gets back: the card form's `state` and the
`result` shown after a payment (Post/Redirect/Get).

Both are HMAC-SHA256 with keys derived from the payment-link secret and bound to one document id, so a
state or result issued for one invoice never verifies for another; a state also expires (by the
container's clock), so an old form cannot be replayed. A result carries only what Fiscus itself put
in it, so a crafted URL cannot make the page display a message of someone else's choosing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from datetime import datetime, timedelta
from typing import Any, Final

STATE_TTL: Final = timedelta(minutes=30)
MAX_TOKEN_CHARS: Final = 1000


def _key(secret: bytes, purpose: str) -> bytes:
    """A separate key per purpose, so a value signed for one use is never valid for another."""
    return hmac.new(secret, f"fiscus:pay-page:{purpose}".encode(), hashlib.sha256).digest()


def _mac(secret: bytes, purpose: str, document_id: int, payload: str) -> str:
    digest = hmac.new(_key(secret, purpose), f"{document_id}:{payload}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue_state(secret: bytes, document_id: int, now: datetime) -> str:
    """A fresh `state` for the card form of this document: expiry, nonce and MAC."""
    expires = int((now + STATE_TTL).timestamp())
    payload = f"{expires}.{secrets.token_urlsafe(16)}"
    return f"{payload}.{_mac(secret, 'state', document_id, payload)}"


def state_is_valid(secret: bytes, document_id: int, state: str, now: datetime) -> bool:
    """Whether `state` was issued for this document by this installation and has not expired."""
    if not state or len(state) > MAX_TOKEN_CHARS or not state.isascii():
        return False
    payload, _, mac = state.rpartition(".")
    expires, _, nonce = payload.partition(".")
    if not expires.isdigit() or not nonce or len(expires) > 12:
        return False
    if not hmac.compare_digest(_mac(secret, "state", document_id, payload), mac):
        return False
    return now.timestamp() <= int(expires)


def seal_result(secret: bytes, document_id: int, result: dict[str, Any]) -> str:
    """The outcome to show after the redirect, e.g. `{"a": attempt_id}` or `{"e": code, "m": message}`."""
    raw = json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode()
    payload = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"{payload}.{_mac(secret, 'result', document_id, payload)}"


def open_result(secret: bytes, document_id: int, sealed: str) -> dict[str, Any] | None:
    """The result sealed for this document, or None if it was not (tampered, another document's)."""
    if not sealed or len(sealed) > MAX_TOKEN_CHARS or not sealed.isascii():
        return None
    payload, _, mac = sealed.partition(".")
    if not hmac.compare_digest(_mac(secret, "result", document_id, payload), mac):
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    return value if isinstance(value, dict) else None
