"""Exact money: ISO 4217 currencies, one rounding rule, largest-remainder splitting.

Policy (ADR 0001 and 0002): amounts are `Decimal`, never float. A unit price may carry more digits
than the currency's minor unit; an amount becomes *settled* only by `round_minor`, the single place
where rounding happens (half-up, away from zero on ties). Totals are sums of settled parts and are
never rounded again. Splitting a settled amount uses `allocate`, which keeps the sum exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
from functools import cache
from typing import Final

import iso4217

from fiscus.domain.errors import InvalidFieldError

ROUNDING: Final = ROUND_HALF_UP
"""The one rounding mode of the engine: half-up on the currency's minor unit."""


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency with its minor-unit exponent taken from the ISO list (`iso4217`)."""

    code: str
    exponent: int

    @property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.exponent)

    def __str__(self) -> str:
        return self.code


@cache
def currency(code: str, field: str = "currency") -> Currency:
    """Look up a currency by code; unknown codes and funds without minor units are refused."""
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha() or not code.isupper():
        raise InvalidFieldError(field, f"'{code}' is not an ISO 4217 currency code (three capital letters)")
    try:
        entry = iso4217.Currency(code)
    except ValueError:
        raise InvalidFieldError(field, f"unknown currency '{code}'") from None
    exponent = entry.exponent
    if exponent is None:
        raise InvalidFieldError(field, f"currency '{code}' has no minor unit and cannot be billed")
    return Currency(code, int(exponent))


def to_decimal(value: object, field: str = "amount") -> Decimal:
    """Accept Decimal, int or a decimal string; refuse floats, which cannot hold cents exactly."""
    if isinstance(value, (bool, float)):
        raise TypeError(f"{field}: money must not be a float or bool, got {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidFieldError(field, f"'{value}' is not a decimal number") from None
    else:
        raise TypeError(f"{field}: expected Decimal, int or str, got {type(value).__name__}")
    if not result.is_finite():
        raise InvalidFieldError(field, "must be a finite number")
    return result


def round_minor(amount: Decimal, cur: Currency) -> Decimal:
    """Round to the currency's minor unit with the engine's rounding mode. The only rounding entry point."""
    return amount.quantize(cur.quantum, rounding=ROUNDING)


def to_minor(amount: Decimal, cur: Currency) -> int:
    """Integer minor units of a settled amount; an unsettled amount is a bug and raises."""
    scaled = amount.scaleb(cur.exponent)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} {cur.code} is not rounded to the minor unit")
    return int(scaled)


def from_minor(minor: int, cur: Currency) -> Decimal:
    """The settled amount of an integer count of minor units, with the currency's scale."""
    return Decimal(minor).scaleb(-cur.exponent).quantize(cur.quantum)


def multiply(amount: Decimal, ratio: Fraction) -> Decimal:
    """Exact product of a decimal and a fraction, to be settled by `round_minor` by the caller."""
    numerator = amount * Decimal(ratio.numerator)
    quotient = numerator / Decimal(ratio.denominator)
    return quotient


@dataclass(frozen=True, slots=True)
class Money:
    """A settled or unsettled amount in one currency. Arithmetic across currencies raises."""

    amount: Decimal
    currency: Currency

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError(f"Money amount must be Decimal, got {type(self.amount).__name__}")

    @classmethod
    def of(cls, value: object, code: str) -> Money:
        return cls(to_decimal(value), currency(code))

    @classmethod
    def zero(cls, cur: Currency) -> Money:
        return cls(Decimal(0).quantize(cur.quantum), cur)

    @classmethod
    def from_minor(cls, minor: int, cur: Currency) -> Money:
        return cls(from_minor(minor, cur), cur)

    def _check(self, other: Money) -> None:
        if self.currency != other.currency:
            raise ValueError(f"currency mismatch: {self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def round_minor(self) -> Money:
        return Money(round_minor(self.amount, self.currency), self.currency)

    def to_minor(self) -> int:
        return to_minor(self.amount, self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency.code}"


def allocate(total_minor: int, weights: Sequence[int | Decimal | Fraction]) -> list[int]:
    """Split integer minor units in proportion to weights so that the parts sum exactly to the total.

    Largest-remainder method: each part gets the floor of its exact share, and the units left over go
    to the largest remainders (ties to the earlier part). Weights may be negative (credit lines) as
    long as they do not sum to zero; all-zero weights split evenly.
    """
    if not weights:
        if total_minor != 0:
            raise ValueError("cannot allocate a non-zero amount over no parts")
        return []
    if all(type(w) is int for w in weights) and sum(weights) != 0:
        return _allocate_ints(total_minor, weights)  # type: ignore[arg-type]
    exact = [Fraction(w) for w in weights]
    weight_sum = sum(exact, Fraction(0))
    if weight_sum == 0:
        if any(exact):
            if total_minor != 0:
                raise ValueError("cannot allocate a non-zero amount over weights that sum to zero")
            return [0] * len(exact)
        exact = [Fraction(1)] * len(exact)
        weight_sum = Fraction(len(exact))
    shares = [total_minor * w / weight_sum for w in exact]
    parts = [math.floor(s) for s in shares]
    leftover = total_minor - sum(parts)
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in order[:leftover]:
        parts[i] += 1
    return parts


def _allocate_ints(total_minor: int, weights: Sequence[int]) -> list[int]:
    """`allocate` for integer weights (minor units: the billing run's case) in integer arithmetic: the
    same parts, without a Fraction per weight. A share's floor is `total·w // W`; its remainder, in
    units of 1/|W|, orders the leftover units exactly as the fractional parts do."""
    weight_sum = sum(weights)
    sign = 1 if weight_sum > 0 else -1
    parts: list[int] = []
    keys: list[tuple[int, int]] = []
    for i, w in enumerate(weights):
        part, rest = divmod(total_minor * w, weight_sum)
        parts.append(part)
        keys.append((-rest * sign, i))
    leftover = total_minor - sum(parts)
    for _key, i in sorted(keys)[:leftover]:
        parts[i] += 1
    return parts
