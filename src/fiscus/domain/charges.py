"""Charge models: a period's usage quantity → the parts a usage charge is billed as, and their amount.

Pure. A charge returns its *parts* (the tier breakdown): each part reads quantity × unit price, its
amount is that product rounded once to the minor unit (`money.round_minor`), and the charge's amount
is the sum of its settled parts. Each part becomes one document line, so every line satisfies
EN 16931's quantity × net price = line amount and the invoice shows the tiers.

Unit prices are exact decimals and may carry more digits than the currency's minor unit
(0.000125 EUR per API call); nothing is rounded before a part is settled.

Conventions (stated, tested):
* included free units come off the quantity before the model (tiers then start at zero);
* package: ceil(billable units / package size) packages at the package price;
* graduated: each tier's units at that tier's price, plus the flat fee of every tier reached;
* volume: every unit at the price of the tier the whole quantity falls in, plus that tier's flat fee;
* percentage: `rate` % of the summed amount property, plus a fixed fee per transaction; `min_amount`
  and `max_amount` bound the charge for the period (an adjustment part);
* a minimum commitment tops the charge up to `minimum` for the period (one more part).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from enum import StrEnum

from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.money import Currency, round_minor


class ChargeModel(StrEnum):
    PER_UNIT = "per_unit"
    PACKAGE = "package"
    GRADUATED = "graduated"
    VOLUME = "volume"
    PERCENTAGE = "percentage"


@dataclass(frozen=True, slots=True)
class Tier:
    """Units up to `up_to` (inclusive; None: no bound) at `unit_price`, plus `flat_fee` once."""

    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Charge:
    """A usage price's charge model and its properties."""

    model: ChargeModel
    unit_price: Decimal = Decimal(0)
    package_size: Decimal = Decimal(1)
    tiers: tuple[Tier, ...] = ()
    rate: Decimal = Decimal(0)
    """Percentage: the share in percent of the summed amount property."""
    fixed_fee: Decimal = Decimal(0)
    """Percentage: a fee per transaction (event)."""
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    free_units: Decimal = Decimal(0)
    minimum: Decimal | None = None
    """Minimum commitment for the period: the charge is topped up to it."""

    def __post_init__(self) -> None:
        check_charge(self)


def check_charge(charge: Charge) -> None:
    """Refuse a charge that cannot be billed (each problem names its field)."""
    for name in ("unit_price", "rate", "fixed_fee", "free_units"):
        if getattr(charge, name) < 0:
            raise InvalidFieldError(name, "must not be negative")
    for name in ("min_amount", "max_amount", "minimum"):
        value = getattr(charge, name)
        if value is not None and value < 0:
            raise InvalidFieldError(name, "must not be negative")
    if (
        charge.min_amount is not None
        and charge.max_amount is not None
        and charge.min_amount > charge.max_amount
    ):
        raise InvalidFieldError("max_amount", "must not be below min_amount")
    if charge.model is ChargeModel.PACKAGE and charge.package_size <= 0:
        raise InvalidFieldError("package_size", "must be positive")
    if charge.model in (ChargeModel.GRADUATED, ChargeModel.VOLUME):
        if not charge.tiers:
            raise InvalidFieldError("tiers", f"a {charge.model.value} charge needs at least one tier")
        previous = Decimal(0)
        for i, tier in enumerate(charge.tiers):
            if tier.unit_price < 0 or tier.flat_fee < 0:
                raise InvalidFieldError(f"tiers.{i}", "prices must not be negative")
            last = i == len(charge.tiers) - 1
            if last != (tier.up_to is None):
                raise InvalidFieldError(f"tiers.{i}.up_to", "only the last tier is unbounded, and it must be")
            if tier.up_to is not None:
                if tier.up_to <= previous:
                    raise InvalidFieldError(f"tiers.{i}.up_to", "tiers must ascend")
                previous = tier.up_to


@dataclass(frozen=True, slots=True)
class Part:
    """One line of a charge: `quantity` × `unit_price`, settled once. `label` names the tier."""

    label: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    tier: int | None = None


@dataclass(frozen=True, slots=True)
class ChargeResult:
    quantity: Decimal
    """The aggregated quantity before free units."""
    billable: Decimal
    """The quantity after free units."""
    parts: tuple[Part, ...] = field(default=())

    @property
    def amount(self) -> Decimal:
        return sum((p.amount for p in self.parts), Decimal(0))


def _part(label: str, quantity: Decimal, unit_price: Decimal, cur: Currency, tier: int | None = None) -> Part:
    return Part(label, quantity, unit_price, round_minor(quantity * unit_price, cur), tier)


def _bounds(tiers: Sequence[Tier], i: int) -> str:
    low = Decimal(0) if i == 0 else tiers[i - 1].up_to
    high = tiers[i].up_to
    return f"{low}–{high}" if high is not None else f"over {low}"


def compute_charge(charge: Charge, quantity: Decimal, cur: Currency, *, events: int = 0) -> ChargeResult:
    """The parts and amount of `charge` for a period whose aggregate is `quantity`.

    `events`: how many transactions the period had (the percentage model's fixed fee).
    """
    billable = max(quantity - charge.free_units, Decimal(0))
    parts: list[Part] = []
    if charge.free_units and quantity:
        parts.append(_part("included", min(quantity, charge.free_units), Decimal(0), cur))
    model = charge.model
    if model is ChargeModel.PER_UNIT:
        parts.append(_part("per unit", billable, charge.unit_price, cur))
    elif model is ChargeModel.PACKAGE:
        packages = (billable / charge.package_size).to_integral_value(rounding=ROUND_CEILING)
        parts.append(_part(f"packages of {charge.package_size}", packages, charge.unit_price, cur))
    elif model is ChargeModel.GRADUATED:
        low = Decimal(0)
        for i, tier in enumerate(charge.tiers):
            high = billable if tier.up_to is None else min(billable, tier.up_to)
            units = max(high - low, Decimal(0))
            if units > 0 or i == 0:  # a period without usage still shows its first tier, at zero
                label = f"tier {i + 1} ({_bounds(charge.tiers, i)})"
                parts.append(_part(label, units, tier.unit_price, cur, i + 1))
                if tier.flat_fee and units > 0:
                    parts.append(_part(f"tier {i + 1} flat fee", Decimal(1), tier.flat_fee, cur, i + 1))
            if tier.up_to is None or billable <= tier.up_to:
                break
            low = tier.up_to
    elif model is ChargeModel.VOLUME:
        i = next(k for k, tier in enumerate(charge.tiers) if tier.up_to is None or billable <= tier.up_to)
        tier = charge.tiers[i]
        parts.append(
            _part(f"tier {i + 1} ({_bounds(charge.tiers, i)})", billable, tier.unit_price, cur, i + 1)
        )
        if tier.flat_fee and billable > 0:
            parts.append(_part(f"tier {i + 1} flat fee", Decimal(1), tier.flat_fee, cur, i + 1))
    else:
        parts.append(_part(f"{charge.rate} % of amount", billable, charge.rate / 100, cur))
        if charge.fixed_fee and events:
            parts.append(_part("fee per transaction", Decimal(events), charge.fixed_fee, cur))
        subtotal = sum((p.amount for p in parts), Decimal(0))
        if charge.min_amount is not None and subtotal < charge.min_amount:
            parts.append(_part("minimum", Decimal(1), round_minor(charge.min_amount - subtotal, cur), cur))
        elif charge.max_amount is not None and subtotal > charge.max_amount:
            parts.append(_part("maximum", Decimal(-1), round_minor(subtotal - charge.max_amount, cur), cur))
    result = ChargeResult(quantity, billable, tuple(parts))
    if charge.minimum is not None and result.amount < charge.minimum:
        top_up = round_minor(charge.minimum - result.amount, cur)
        result = ChargeResult(
            quantity, billable, (*parts, _part("minimum commitment", Decimal(1), top_up, cur))
        )
    return result
