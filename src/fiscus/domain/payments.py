"""Payments: the rules for charging a document, retrying a failed charge, capturing and refunding.

Pure: no I/O and no clock. The provider port (`PaymentProvider`) is what a real processor's adapter
implements; its answers are plain values (`ChargeSnapshot`), so settling an attempt is the same rule
whether the answer came back on the call, from a later lookup by idempotency key, or in a webhook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Protocol

from fiscus.domain.errors import InvalidFieldError


class AttemptStatus(StrEnum):
    """pending (written, call not answered) → succeeded | authorized | failed | unknown;
    unknown → any settled status (by lookup or webhook); authorized → succeeded (captured) | canceled."""

    PENDING = "pending"
    UNKNOWN = "unknown"
    AUTHORIZED = "authorized"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


UNSETTLED: Final = frozenset({AttemptStatus.PENDING, AttemptStatus.UNKNOWN})
IN_FLIGHT: Final = UNSETTLED | {AttemptStatus.AUTHORIZED}


class CaptureMode(StrEnum):
    SALE = "sale"
    AUTHORIZE = "authorize"


class FinalAction(StrEnum):
    """What happens to an invoice (and its subscription) after the last retry failed."""

    LEAVE_OPEN = "leave_open"
    MARK_UNCOLLECTIBLE = "mark_uncollectible"
    CANCEL_SUBSCRIPTION = "cancel_subscription"


class Trigger(StrEnum):
    AUTOMATIC = "automatic"
    RETRY = "retry"
    HOSTED_PAGE = "hosted_page"
    API = "api"
    MANUAL = "manual"


HARD_DECLINES: Final = frozenset(
    {
        "expired_card",
        "do_not_honor",
        "stolen_card",
        "lost_card",
        "pickup_card",
        "fraudulent",
        "incorrect_number",
        "invalid_account",
        "card_not_supported",
        "currency_not_supported",
        "restricted_card",
        "revocation_of_authorization",
    }
)
"""Declines that the same card will give again: never retried automatically. Everything else
(insufficient funds, processing errors, a charge that never reached the provider) is soft."""


def is_hard_decline(code: str | None) -> bool:
    return code in HARD_DECLINES


MAX_RETRIES: Final = 8
MAX_RETRY_DAY: Final = 60


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Dunning: retry `days[i]` days after the first failed attempt (e.g. +1, +3, +5, +7), never after a
    hard decline; after the last one, `final_action`."""

    days: tuple[int, ...] = (1, 3, 5, 7)
    final_action: FinalAction = FinalAction.LEAVE_OPEN

    @staticmethod
    def parse(days: Sequence[object], final_action: str) -> RetryPolicy:
        if not isinstance(days, Sequence) or isinstance(days, str) or len(days) > MAX_RETRIES:
            raise InvalidFieldError("retry_days", f"must be a list of at most {MAX_RETRIES} day offsets")
        clean: list[int] = []
        for day in days:
            if not isinstance(day, int) or isinstance(day, bool) or not 1 <= day <= MAX_RETRY_DAY:
                raise InvalidFieldError(
                    "retry_days", f"each offset must be a whole day from 1 to {MAX_RETRY_DAY}"
                )
            if clean and day <= clean[-1]:
                raise InvalidFieldError("retry_days", "offsets must be strictly increasing")
            clean.append(day)
        try:
            action = FinalAction(final_action)
        except ValueError:
            raise InvalidFieldError(
                "retry_final_action", "must be one of leave_open, mark_uncollectible, cancel_subscription"
            ) from None
        return RetryPolicy(tuple(clean), action)

    def next_attempt_at(
        self, first_failure_at: datetime, failures: int, last_code: str | None
    ) -> datetime | None:
        """When to try again after `failures` failed automatic attempts (the first failure included),
        or None when the schedule is exhausted or the decline is hard."""
        if is_hard_decline(last_code) or failures < 1 or failures > len(self.days):
            return None
        return first_failure_at + timedelta(days=self.days[failures - 1])


@dataclass(frozen=True, slots=True)
class RefundLine:
    """One refund of a charge as the provider lists it; `reference` is the idempotency key it was made
    with, which is how Fiscus knows its own refunds from ones made in the provider's dashboard."""

    refund_id: str
    amount_minor: int
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class ChargeSnapshot:
    """A provider's view of one charge at one moment: amounts only grow, so applying an older
    snapshot after a newer one changes nothing (webhooks may come in any order)."""

    charge_id: str
    status: str  # succeeded | authorized | declined | failed | voided
    amount_minor: int
    captured_minor: int
    refunded_minor: int
    decline_code: str | None = None
    message: str | None = None
    reference: str | None = None
    refunds: tuple[RefundLine, ...] | None = None
    """Each refund, oldest first, when the provider lists them (None: only the total is known)."""


def attempt_status(snapshot: ChargeSnapshot) -> AttemptStatus:
    """The attempt status a provider's charge status settles into."""
    if snapshot.status in ("declined", "failed"):
        return AttemptStatus.FAILED
    if snapshot.status == "voided":
        return AttemptStatus.CANCELED
    if snapshot.status == "authorized" and snapshot.captured_minor == 0:
        return AttemptStatus.AUTHORIZED
    return AttemptStatus.SUCCEEDED


@dataclass(frozen=True, slots=True)
class RefundSnapshot:
    refund_id: str
    charge: ChargeSnapshot


@dataclass(frozen=True, slots=True)
class CardDetails:
    """What the provider tells about a tokenised card: never the number."""

    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str


@dataclass(frozen=True, slots=True)
class InboundEvent:
    event_id: str
    type: str
    charge: ChargeSnapshot


@dataclass(frozen=True, slots=True)
class ProviderLedger:
    """Every charge the provider holds, for reconciliation: id → snapshot."""

    charges: Mapping[str, ChargeSnapshot]


class ProviderError(Exception):
    """The provider answered and refused (e.g. an amount over what is refundable): nothing happened."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class OutcomeUnknown(Exception):
    """The call may or may not have reached the provider (a timeout, a dropped connection): settle it
    later by looking it up with the same idempotency key."""


class ProviderUnreachable(Exception):
    """The call was never sent (connection refused): nothing happened, safe to try again."""


class PaymentProvider(Protocol):
    """The port every processor adapter implements. Every money-moving call carries an idempotency
    key: the same key twice never moves money twice."""

    name: str

    def describe_card(self, token: str) -> CardDetails: ...

    def charge(
        self, *, token: str, amount_minor: int, currency: str, capture: bool, reference: str, key: str
    ) -> ChargeSnapshot: ...

    def capture(self, *, charge_id: str, amount_minor: int | None, key: str) -> ChargeSnapshot: ...

    def void(self, *, charge_id: str, key: str) -> ChargeSnapshot: ...

    def refund(self, *, charge_id: str, amount_minor: int, key: str) -> RefundSnapshot: ...

    def find_charge(self, key: str) -> ChargeSnapshot | None: ...

    def get_charge(self, charge_id: str) -> ChargeSnapshot: ...

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> InboundEvent: ...

    def ledger(self) -> ProviderLedger: ...


def check_capture(amount_minor: int | None, authorized_minor: int) -> int:
    """The amount to capture from an authorisation: all of it by default, never more."""
    if amount_minor is None:
        return authorized_minor
    if amount_minor <= 0:
        raise InvalidFieldError("amount", "must be greater than zero")
    if amount_minor > authorized_minor:
        raise InvalidFieldError("amount", "exceeds the authorised amount")
    return amount_minor


def check_refund(amount_minor: int, refundable_minor: int) -> None:
    """A refund is positive and at most what was captured and not yet refunded."""
    if amount_minor <= 0:
        raise InvalidFieldError("amount", "must be greater than zero")
    if amount_minor > refundable_minor:
        raise InvalidFieldError("amount", "exceeds the amount captured and not yet refunded")


def amount_due(total_minor: int, paid_minor: int, refunded_minor: int, credited_minor: int) -> int:
    """What the customer still owes: the total less money kept (captures net of refunds) and credits
    that reduce what is due. Refunds go with a credit note of the same amount, so they cancel out."""
    return max(0, total_minor - (paid_minor - refunded_minor) - credited_minor)
