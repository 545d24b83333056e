"""The hosted payment page's signed values, bound to one document: the card form's `state` and the
`result` shown after a payment (Post/Redirect/Get). Keys come from the payment-link secret, in the
`pay-page` namespace of `fiscus.web.signing`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from fiscus.web.signing import Signer

NAMESPACE: Final = "pay-page"


def issue_state(secret: bytes, document_id: int, now: datetime) -> str:
    """A fresh `state` for the card form of this document: expiry, nonce and MAC."""
    return Signer(secret, NAMESPACE).issue_state(document_id, now)


def state_is_valid(secret: bytes, document_id: int, state: str, now: datetime) -> bool:
    """Whether `state` was issued for this document by this installation and has not expired."""
    return Signer(secret, NAMESPACE).state_is_valid(document_id, state, now)


def seal_result(secret: bytes, document_id: int, result: dict[str, Any]) -> str:
    """The outcome to show after the redirect, e.g. `{"a": attempt_id}` or `{"e": code, "m": message}`."""
    return Signer(secret, NAMESPACE).seal(document_id, result)


def open_result(secret: bytes, document_id: int, sealed: str) -> dict[str, Any] | None:
    """The result sealed for this document, or None if it was not (tampered, another document's)."""
    return Signer(secret, NAMESPACE).open(document_id, sealed)
