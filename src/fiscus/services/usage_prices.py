"""Usage-based prices: a recurring price billed in arrears on a billable metric with a charge model.

The price row keeps what every price has (variant, currency, interval, tax); `usage_prices` adds the
metric and the charge. Like every price it is immutable once created, so a billed period never drifts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Connection, insert, select

from fiscus.adapters.db import tables_usage as tu
from fiscus.domain.charges import Charge, ChargeModel, Tier
from fiscus.domain.errors import InvalidFieldError, NotFoundError
from fiscus.services import validation as v
from fiscus.services.usage_metrics import get_metric

DECIMALS: Final = (
    "unit_price",
    "package_size",
    "rate",
    "fixed_fee",
    "min_amount",
    "max_amount",
    "free_units",
    "minimum",
)


@dataclass(frozen=True, slots=True)
class UsageSpec:
    metric_id: int
    charge_model: str
    properties: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class UsagePrice:
    price_id: int
    metric_id: int
    charge: Charge
    properties: dict[str, Any]


def _decimal(field: str, value: Any) -> Decimal:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidFieldError(field, "a decimal string")
    return v.decimal(field, value, minimum=Decimal(0))


def charge_of(model: str, properties: Mapping[str, Any], where: str = "usage.properties") -> Charge:
    """The domain charge the stored (or requested) properties describe; each problem names its field."""
    try:
        charge_model = ChargeModel(model)
    except ValueError:
        raise InvalidFieldError(
            "usage.charge_model", f"one of {', '.join(m.value for m in ChargeModel)}"
        ) from None
    unknown = set(properties) - {*DECIMALS, "tiers"}
    if unknown:
        raise InvalidFieldError(f"{where}.{sorted(unknown)[0]}", "not a property of a usage charge")
    kwargs: dict[str, Any] = {}
    for name in DECIMALS:
        if properties.get(name) is not None:
            kwargs[name] = _decimal(f"{where}.{name}", properties[name])
    tiers_in = properties.get("tiers") or []
    if not isinstance(tiers_in, list):
        raise InvalidFieldError(f"{where}.tiers", "a list of tiers")
    tiers = []
    for i, tier in enumerate(tiers_in):
        if not isinstance(tier, dict) or set(tier) - {"up_to", "unit_price", "flat_fee"}:
            raise InvalidFieldError(f"{where}.tiers.{i}", "{up_to, unit_price, flat_fee}")
        up_to = tier.get("up_to")
        tiers.append(
            Tier(
                None if up_to is None else _decimal(f"{where}.tiers.{i}.up_to", up_to),
                _decimal(f"{where}.tiers.{i}.unit_price", tier.get("unit_price", "0")),
                _decimal(f"{where}.tiers.{i}.flat_fee", tier.get("flat_fee", "0")),
            )
        )
    try:
        return Charge(charge_model, tiers=tuple(tiers), **kwargs)
    except InvalidFieldError as exc:
        raise InvalidFieldError(f"{where}.{exc.field}", exc.problems[0].message) from None


def canonical(charge: Charge) -> dict[str, Any]:
    """The properties as stored and shown: decimal strings, only what the model uses."""
    out: dict[str, Any] = {}
    for name in DECIMALS:
        value = getattr(charge, name)
        if value is not None and (value != 0 or name in ("unit_price",)):
            out[name] = str(value)
    if charge.tiers:
        out["tiers"] = [
            {
                "up_to": None if t.up_to is None else str(t.up_to),
                "unit_price": str(t.unit_price),
                "flat_fee": str(t.flat_fee),
            }
            for t in charge.tiers
        ]
    if charge.model is not ChargeModel.PACKAGE:
        out.pop("package_size", None)
    return out


def attach_usage(
    conn: Connection, org_id: int, price_id: int, spec: UsageSpec, *, recurring: bool, unit_amount: Decimal
) -> None:
    """Make a just-created price usage-based (called inside the price's own transaction)."""
    if not recurring:
        raise InvalidFieldError("interval", "a usage price is recurring: its usage is billed for each period")
    if unit_amount != 0:
        raise InvalidFieldError("unit_amount", 'a usage price\'s amount comes from its charge: send "0"')
    get_metric(conn, org_id, spec.metric_id)
    charge = charge_of(spec.charge_model, spec.properties)
    conn.execute(
        insert(tu.usage_prices).values(
            price_id=price_id,
            organization_id=org_id,
            metric_id=spec.metric_id,
            charge_model=charge.model.value,
            properties=canonical(charge),
        )
    )


def load_usage_prices(conn: Connection, price_ids: Iterable[int]) -> dict[int, UsagePrice]:
    wanted = sorted(set(price_ids))
    if not wanted:
        return {}
    u = tu.usage_prices.c
    return {
        r.price_id: UsagePrice(
            r.price_id, r.metric_id, charge_of(r.charge_model, r.properties), dict(r.properties)
        )
        for r in conn.execute(
            select(u.price_id, u.metric_id, u.charge_model, u.properties).where(u.price_id.in_(wanted))
        )
    }


def usage_price_ids(conn: Connection, price_ids: Iterable[int]) -> set[int]:
    """Which of these prices are usage-based (billed in arrears, never in the advance document)."""
    wanted = sorted(set(price_ids))
    if not wanted:
        return set()
    u = tu.usage_prices.c
    return set(conn.execute(select(u.price_id).where(u.price_id.in_(wanted))).scalars())


def get_usage_price(conn: Connection, org_id: int, price_id: int) -> UsagePrice:
    u = tu.usage_prices.c
    row = conn.execute(
        select(u.price_id, u.metric_id, u.charge_model, u.properties).where(
            u.price_id == price_id, u.organization_id == org_id
        )
    ).one_or_none()
    if row is None:
        raise NotFoundError("usage_price", price_id)
    return UsagePrice(
        row.price_id, row.metric_id, charge_of(row.charge_model, row.properties), dict(row.properties)
    )
