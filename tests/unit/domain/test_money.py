from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.money import Money, allocate, currency, from_minor, round_minor, to_decimal, to_minor
from tests.examples import examples


@pytest.mark.parametrize(("code", "exponent"), [("JPY", 0), ("EUR", 2), ("KWD", 3), ("KZT", 2), ("USD", 2)])
def test_minor_units_come_from_iso_4217(code: str, exponent: int) -> None:
    assert currency(code).exponent == exponent


@pytest.mark.parametrize("code", ["XXX", "ABC", "eur", "EURO", ""])
def test_unknown_or_unbillable_currencies_are_refused(code: str) -> None:
    with pytest.raises(InvalidFieldError) as exc:
        currency(code)
    assert exc.value.field == "currency"


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        to_decimal(0.1)
    with pytest.raises(TypeError):
        Money(0.1, currency("EUR"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "code", "expected"),
    [
        ("2.345", "EUR", "2.35"),
        ("-2.345", "EUR", "-2.35"),
        ("2.5", "JPY", "3"),
        ("1.0005", "KWD", "1.001"),
        ("2.344999", "EUR", "2.34"),
        ("1234.565", "KZT", "1234.57"),
    ],
)
def test_rounding_is_half_up_on_the_minor_unit(amount: str, code: str, expected: str) -> None:
    assert round_minor(Decimal(amount), currency(code)) == Decimal(expected)


def test_unsettled_amount_cannot_become_minor_units() -> None:
    with pytest.raises(ValueError, match="not rounded"):
        to_minor(Decimal("1.234"), currency("EUR"))


@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from(["JPY", "EUR", "KWD", "KZT"]))
def test_minor_units_round_trip(minor: int, code: str) -> None:
    cur = currency(code)
    assert to_minor(from_minor(minor, cur), cur) == minor


def test_money_refuses_mixed_currencies() -> None:
    with pytest.raises(ValueError, match="currency mismatch"):
        _ = Money.of("1", "EUR") + Money.of("1", "USD")


@settings(max_examples=examples(300, 100))
@given(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=12).filter(lambda w: sum(w) > 0),
)
def test_allocation_sums_exactly_and_stays_within_one_unit_of_the_share(
    total: int, weights: list[int]
) -> None:
    parts = allocate(total, weights)
    assert sum(parts) == total
    for part, w in zip(parts, weights, strict=True):
        share = Fraction(total * w, sum(weights))
        assert abs(part - share) < 1


def test_allocation_with_negative_weights_still_sums() -> None:
    assert sum(allocate(210, [-1016, 2066])) == 210
    assert allocate(210, [-1016, 2066]) == [-203, 413]
