"""Card numbers: normalisation, Luhn, brand detection and the deterministic test cards.

The test cards let Fiscus's payment code be exercised against every outcome a real processor can
produce (approval, soft and hard declines, processing errors, slow and lost responses) without
randomness, so tests and demos are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SUCCESS = "4242424242424242"
"""Approved."""
INSUFFICIENT_FUNDS = "4000000000009995"
"""Declined `insufficient_funds`: a soft decline, a later retry may succeed."""
EXPIRED_CARD = "4000000000000069"
"""Declined `expired_card` whatever expiry date is given: a hard decline."""
DO_NOT_HONOR = "4000000000000002"
"""Declined `do_not_honor`: a hard decline."""
PROCESSING_ERROR = "4000000000000119"
"""Status `failed`, code `processing_error`: the processor broke, retrying is safe."""
TIMEOUT = "4000000000003220"
"""Approved and recorded, but the response only comes after `timeout_seconds`: an unknown outcome."""
SLOW = "4000000000000077"
"""Approved after `slow_seconds`: a slow but successful processor."""

Delay = Literal["none", "slow", "timeout"]
Result = Literal["approved", "declined", "failed"]


@dataclass(frozen=True)
class Scenario:
    """What the gateway does when a card is charged."""

    result: Result
    decline_code: str | None
    message: str
    soft: bool = False
    delay: Delay = "none"


APPROVED = Scenario("approved", None, "Approved")
EXPIRED = Scenario("declined", "expired_card", "The card has expired")

SCENARIOS: dict[str, Scenario] = {
    SUCCESS: APPROVED,
    INSUFFICIENT_FUNDS: Scenario("declined", "insufficient_funds", "Insufficient funds", soft=True),
    EXPIRED_CARD: EXPIRED,
    DO_NOT_HONOR: Scenario("declined", "do_not_honor", "The card issuer declined the charge"),
    PROCESSING_ERROR: Scenario(
        "failed", "processing_error", "An error occurred while processing the card", soft=True
    ),
    TIMEOUT: Scenario("approved", None, "Approved", delay="timeout"),
    SLOW: Scenario("approved", None, "Approved", delay="slow"),
}
"""Test card → scenario. Any other valid number is approved."""


def normalise_number(raw: str) -> str:
    """Strip the spaces and dashes people type; raise ValueError (without echoing the number)."""
    number = raw.replace(" ", "").replace("-", "")
    if not number.isascii() or not number.isdigit() or not 12 <= len(number) <= 19:
        raise ValueError("card_number must be 12 to 19 digits")
    if not luhn_valid(number):
        raise ValueError("card_number fails the Luhn check")
    return number


def luhn_valid(number: str) -> bool:
    """The mod-10 check every card number carries, catching typos before a charge is attempted."""
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def brand_of(number: str) -> str:
    """The brand from the issuer identification number (IIN) prefix."""
    if number.startswith("4"):
        return "visa"
    if 51 <= int(number[:2]) <= 55 or 2221 <= int(number[:4]) <= 2720:
        return "mastercard"
    if number[:2] in ("34", "37"):
        return "amex"
    return "unknown"
