"""Charge models: each part settles once, the amount is their sum, tiers are priced as stated."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fiscus.domain.charges import Charge, ChargeModel, Tier, compute_charge
from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.money import currency, round_minor

EUR = currency("EUR")
D = Decimal
TIERS = (Tier(D(100), D("0.05")), Tier(D(1000), D("0.03"), D("2")), Tier(None, D("0.0125")))
quantities = st.decimals(min_value=0, max_value=100_000, places=3, allow_nan=False, allow_infinity=False)


def _exact_graduated(q: Decimal) -> Decimal:
    return (
        min(q, D(100)) * D("0.05")
        + max(min(q, D(1000)) - 100, D(0)) * D("0.03")
        + (D(2) if q > 100 else D(0))
        + max(q - 1000, D(0)) * D("0.0125")
    )


@given(q=quantities)
def test_graduated_parts_are_settled_once_and_sum_to_the_amount(q: Decimal) -> None:
    result = compute_charge(Charge(ChargeModel.GRADUATED, tiers=TIERS), q, EUR)
    assert all(p.amount == round_minor(p.quantity * p.unit_price, EUR) for p in result.parts)
    assert result.amount == sum((p.amount for p in result.parts), D(0))
    assert (
        sum((p.quantity for p in result.parts if p.label.startswith("tier") and "flat" not in p.label), D(0))
        == q
    )
    assert abs(result.amount - _exact_graduated(q)) <= D("0.005") * len(result.parts)


@given(q=quantities)
def test_volume_prices_every_unit_at_the_tier_reached(q: Decimal) -> None:
    result = compute_charge(Charge(ChargeModel.VOLUME, tiers=TIERS), q, EUR)
    price = D("0.05") if q <= 100 else D("0.03") if q <= 1000 else D("0.0125")
    fee = D(2) if 100 < q <= 1000 else D(0)
    assert result.amount == round_minor(q * price, EUR) + fee


@given(q=quantities, free=st.integers(0, 500))
def test_package_rounds_up_after_free_units(q: Decimal, free: int) -> None:
    result = compute_charge(
        Charge(ChargeModel.PACKAGE, unit_price=D("4.99"), package_size=D(100), free_units=D(free)), q, EUR
    )
    packages = (max(q - free, D(0)) / 100).to_integral_value(rounding=ROUND_CEILING)
    assert result.amount == packages * D("4.99")
    assert result.billable == max(q - free, D(0))


def test_per_unit_with_more_digits_than_the_minor_unit() -> None:
    result = compute_charge(Charge(ChargeModel.PER_UNIT, unit_price=D("0.000125")), D(123_457), EUR)
    assert result.amount == D("15.43")  # 15.432125 rounded once, half-up


def test_percentage_fee_min_and_max() -> None:
    charge = Charge(
        ChargeModel.PERCENTAGE, rate=D("2.9"), fixed_fee=D("0.30"), min_amount=D(5), max_amount=D(50)
    )
    assert compute_charge(charge, D(1000), EUR, events=10).amount == D("32.00")  # 29 + 3
    assert compute_charge(charge, D(10), EUR, events=1).amount == D(5)  # 0.59 topped up to the minimum
    capped = compute_charge(charge, D(10_000), EUR, events=10)
    assert capped.amount == D(50)
    assert capped.parts[-1].quantity == -1


def test_minimum_commitment_tops_up() -> None:
    charge = Charge(ChargeModel.PER_UNIT, unit_price=D("0.10"), minimum=D(20))
    assert compute_charge(charge, D(50), EUR).amount == D(20)
    assert compute_charge(charge, D(500), EUR).amount == D(50)


def test_zero_usage_still_states_the_first_tier() -> None:
    result = compute_charge(Charge(ChargeModel.GRADUATED, tiers=TIERS), D(0), EUR)
    assert [(p.tier, p.quantity, p.amount) for p in result.parts] == [(1, D(0), D("0.00"))]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model": ChargeModel.GRADUATED},
        {"model": ChargeModel.GRADUATED, "tiers": (Tier(D(10), D(1)),)},
        {"model": ChargeModel.VOLUME, "tiers": (Tier(D(10), D(1)), Tier(D(5), D(1)), Tier(None, D(1)))},
        {"model": ChargeModel.PACKAGE, "package_size": D(0)},
        {"model": ChargeModel.PER_UNIT, "unit_price": D(-1)},
        {"model": ChargeModel.PERCENTAGE, "min_amount": D(5), "max_amount": D(1)},
    ],
)
def test_bad_charges_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidFieldError):
        Charge(**kwargs)  # type: ignore[arg-type]
