"""The pure payment rules: retry schedule, decline classes, settlement of provider snapshots, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.payments import (
    AttemptStatus,
    ChargeSnapshot,
    FinalAction,
    RetryPolicy,
    amount_due,
    attempt_status,
    check_capture,
    check_refund,
    is_hard_decline,
)

FIRST = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)


def test_retries_follow_the_schedule_from_the_first_failure() -> None:
    policy = RetryPolicy((1, 3, 5, 7))
    assert [policy.next_attempt_at(FIRST, n, "insufficient_funds") for n in range(1, 6)] == [
        FIRST + timedelta(days=1),
        FIRST + timedelta(days=3),
        FIRST + timedelta(days=5),
        FIRST + timedelta(days=7),
        None,
    ]


@pytest.mark.parametrize("code", ["expired_card", "do_not_honor", "stolen_card", "fraudulent"])
def test_hard_declines_are_never_retried(code: str) -> None:
    assert is_hard_decline(code)
    assert RetryPolicy().next_attempt_at(FIRST, 1, code) is None


@pytest.mark.parametrize("code", ["insufficient_funds", "processing_error", "not_processed", None])
def test_soft_failures_are_retried(code: str | None) -> None:
    assert not is_hard_decline(code)
    assert RetryPolicy().next_attempt_at(FIRST, 1, code) == FIRST + timedelta(days=1)


@pytest.mark.parametrize(
    ("days", "action", "field"),
    [
        ([3, 1], "leave_open", "retry_days"),
        ([0], "leave_open", "retry_days"),
        ([1, 1], "leave_open", "retry_days"),
        ([61], "leave_open", "retry_days"),
        (list(range(1, 10)), "leave_open", "retry_days"),
        (["1"], "leave_open", "retry_days"),
        ([True], "leave_open", "retry_days"),
        ([1], "explode", "retry_final_action"),
    ],
)
def test_bad_retry_settings_name_the_field(days: list[object], action: str, field: str) -> None:
    with pytest.raises(InvalidFieldError) as exc:
        RetryPolicy.parse(days, action)
    assert exc.value.field == field


def test_empty_schedule_means_no_retry() -> None:
    policy = RetryPolicy.parse([], "mark_uncollectible")
    assert policy.final_action is FinalAction.MARK_UNCOLLECTIBLE
    assert policy.next_attempt_at(FIRST, 1, "insufficient_funds") is None


def _snap(status: str, amount: int = 1000, captured: int = 0, refunded: int = 0) -> ChargeSnapshot:
    return ChargeSnapshot("ch_1", status, amount, captured, refunded)


@pytest.mark.parametrize(
    ("snapshot", "expected"),
    [
        (_snap("succeeded", captured=1000), AttemptStatus.SUCCEEDED),
        (_snap("authorized"), AttemptStatus.AUTHORIZED),
        (_snap("succeeded", captured=400), AttemptStatus.SUCCEEDED),
        (_snap("declined"), AttemptStatus.FAILED),
        (_snap("failed"), AttemptStatus.FAILED),
        (_snap("voided"), AttemptStatus.CANCELED),
    ],
)
def test_provider_status_settles_the_attempt(snapshot: ChargeSnapshot, expected: AttemptStatus) -> None:
    assert attempt_status(snapshot) is expected


def test_capture_defaults_to_all_and_never_exceeds_the_authorisation() -> None:
    assert check_capture(None, 1000) == 1000
    assert check_capture(1, 1000) == 1
    for bad in (0, -1, 1001):
        with pytest.raises(InvalidFieldError):
            check_capture(bad, 1000)


@given(captured=st.integers(0, 10**9), refunded=st.integers(0, 10**9), amount=st.integers(-10, 2 * 10**9))
def test_refund_limit(captured: int, refunded: int, amount: int) -> None:
    refundable = max(0, captured - refunded)
    if 0 < amount <= refundable:
        check_refund(amount, refundable)
    else:
        with pytest.raises(InvalidFieldError):
            check_refund(amount, refundable)


@given(
    total=st.integers(0, 10**9),
    paid=st.integers(0, 10**9),
    refund_share=st.fractions(0, 1),
    credited=st.integers(0, 10**9),
)
def test_a_refund_with_its_credit_note_leaves_the_amount_due_unchanged(
    total: int, paid: int, refund_share: object, credited: int
) -> None:
    refunded = int(paid * refund_share)  # type: ignore[operator]
    before = amount_due(total, paid, 0, credited)
    after = amount_due(total, paid, refunded, credited + refunded)
    assert after == before
    assert amount_due(total, paid, 0, credited) >= 0
