"""The email port's pure rules: the dunning policy's step emails, message ids, backoff, locales."""

from __future__ import annotations

import itertools

import pytest

from fiscus.domain.email import (
    BACKOFF,
    DunningPolicy,
    EmailKind,
    StepEmail,
    email_locale,
    message_id,
    message_key,
    retry_delay,
)
from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.payments import FinalAction

PF, FN, NONE = StepEmail.PAYMENT_FAILED, StepEmail.FINAL_NOTICE, StepEmail.NONE


def test_default_policy_sends_the_final_notice_before_the_last_retry() -> None:
    policy = DunningPolicy.parse([1, 3, 5, 7], "mark_uncollectible", None)
    assert policy.steps == (PF, PF, PF, FN, PF)
    assert policy.retry.final_action is FinalAction.MARK_UNCOLLECTIBLE
    assert [policy.email_after(n, retrying=n <= 4) for n in range(1, 6)] == [
        EmailKind.PAYMENT_FAILED,
        EmailKind.PAYMENT_FAILED,
        EmailKind.PAYMENT_FAILED,
        EmailKind.FINAL_NOTICE,
        EmailKind.PAYMENT_FAILED,
    ]
    # A hard decline ends the schedule: no "last try on ..." promise, a plain failure email.
    assert policy.email_after(4, retrying=False) is EmailKind.PAYMENT_FAILED
    assert DunningPolicy.parse([], "leave_open", None).steps == (PF,)


def test_steps_can_be_silenced_and_are_validated() -> None:
    policy = DunningPolicy.parse([2], "leave_open", ["none", "payment_failed"])
    assert policy.email_after(1, retrying=True) is None
    assert policy.as_dict() == {
        "retry_days": [2],
        "final_action": "leave_open",
        "emails": ["none", "payment_failed"],
    }
    with pytest.raises(InvalidFieldError) as wrong_length:
        DunningPolicy.parse([1, 3], "leave_open", ["payment_failed"])
    assert wrong_length.value.field == "dunning.emails"
    with pytest.raises(InvalidFieldError) as unknown:
        DunningPolicy.parse([1], "leave_open", ["payment_failed", "shout"])
    assert unknown.value.field == "dunning.emails.1"
    with pytest.raises(InvalidFieldError):
        DunningPolicy.parse([1], "leave_open", ["payment_failed", "final_notice"])  # no retry after it


def test_message_ids_are_stable_per_key_and_recipient() -> None:
    key = message_key(EmailKind.INVOICE_ISSUED, "document", 42)
    assert key == "invoice_issued:document:42"
    one = message_id(key, 1, "A@example.com", "fiscus.test")
    assert one == message_id(key, 1, "a@example.com", "fiscus.test")
    assert one != message_id(key, 1, "b@example.com", "fiscus.test")
    assert one != message_id(key, 2, "a@example.com", "fiscus.test")
    assert one.startswith("<invoice.issued.document.42.")
    assert one.endswith("@fiscus.test>")


def test_backoff_grows_then_gives_up() -> None:
    delays = [retry_delay(n) for n in range(1, len(BACKOFF) + 2)]
    assert delays[:-1] == list(BACKOFF)
    assert delays[-1] is None
    assert all(a < b for a, b in itertools.pairwise(BACKOFF))


def test_locales() -> None:
    assert [email_locale(x) for x in ("bg-BG", "ru", "kk_KZ", "de", None)] == ["bg", "ru", "kk", "en", "en"]
