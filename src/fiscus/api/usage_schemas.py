"""Request and response shapes of usage billing: events, billable metrics, current usage."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ModelWrapValidatorHandler, model_validator

from fiscus.api.fields import (
    NOT_BLANK,
    Currency,
    ExternalId,
    Id,
    In,
    Instant,
    MoneyOut,
    _no_nul,
    _whole_numbers,
)
from fiscus.api.usage_fast import fast_events

PropertyValue = Annotated[str, Field(max_length=200)] | int | bool | None
Aggregation = Literal["count", "sum", "max", "min", "unique_count", "latest", "weighted_sum"]
PropertyName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]


class EventIn(In):
    """One usage event. `transaction_id` is unique per organisation forever: sending it again is a
    no-op. Decimal values go as strings (`"1.5"`); a JSON number with a fraction is refused. The
    customer is named by exactly one of `customer_id` and `external_customer_id` (its `external_id`); an
    external id no customer has yet is refused (409), or kept and counted once that customer is created
    when the usage settings allow it (`accept_unknown_customers`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["customer_id"],
                    "properties": {
                        "customer_id": {"type": "integer"},
                        "external_customer_id": {"type": "null"},
                    },
                },
                {
                    "required": ["external_customer_id"],
                    "properties": {
                        "external_customer_id": {"type": "string"},
                        "customer_id": {"type": "null"},
                    },
                },
            ]
        }
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        """Only ever validated inside `EventsIn`, whose validator already walked the whole batch."""
        return data

    transaction_id: Annotated[str, Field(min_length=1, max_length=128)]
    customer_id: Id | None = None
    external_customer_id: ExternalId | None = None
    code: Annotated[str, Field(min_length=1, max_length=64)]
    timestamp: Instant
    properties: Annotated[dict[Annotated[str, Field(max_length=64)], PropertyValue], Field(max_length=32)] = (
        Field(default_factory=dict)
    )

    @model_validator(mode="after")
    def _one_customer(self) -> EventIn:
        if (self.customer_id is None) == (self.external_customer_id is None):
            raise ValueError("exactly one of customer_id and external_customer_id")
        return self


class EventsIn(In):
    events: Annotated[list[EventIn], Field(min_length=1, max_length=1000)]

    @model_validator(mode="wrap")
    @classmethod
    def _refuse_nul(cls, data: Any, handler: ModelWrapValidatorHandler[EventsIn]) -> EventsIn:
        """A well-formed batch skips pydantic (api/usage_fast.py); anything else is validated in full,
        the NUL and whole-number walk of `In` done once here for the whole batch."""
        fast = fast_events(data)
        if fast is None:
            return handler(_whole_numbers(_no_nul(data)))
        return cls.model_construct(
            events=[
                EventIn.model_construct(
                    transaction_id=e.transaction_id,
                    customer_id=e.customer_id,
                    code=e.code,
                    timestamp=at,
                    properties=e.properties,
                )
                for e, at in fast
            ]
        )


class EventsOut(BaseModel):
    object: Literal["event_batch"] = "event_batch"
    received: int


class _MetricBase(In):
    code: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.\-]{0,63}$")]
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=NOT_BLANK)]
    filters: dict[
        PropertyName,
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=200, pattern=NOT_BLANK)]],
            Field(min_length=1, max_length=50),
        ],
    ] = Field(
        default_factory=dict,
        json_schema_extra={"additionalProperties": False},  # a key off the pattern is refused, as served
    )
    group_by: PropertyName | None = None
    rounding: Literal["none", "round", "ceil", "floor"] = "none"
    precision: Annotated[int, Field(ge=0, le=12)] = 0


class CountMetricIn(_MetricBase):
    """Counts the events that match: no property to aggregate."""

    aggregation: Literal["count"]
    field: None = Field(None, description="a count metric takes no field")


class FieldMetricIn(_MetricBase):
    """Aggregates one property of the events that match: `field` is required."""

    aggregation: Literal["sum", "max", "min", "unique_count", "latest", "weighted_sum"]
    field: PropertyName = Field(description="the event property aggregated")


MetricIn = Annotated[CountMetricIn | FieldMetricIn, Field(discriminator="aggregation")]
"""A billable metric: by `aggregation`, a count (no `field`) or an aggregate of the property `field`."""


class MetricPatch(In):
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=NOT_BLANK)]


class MetricOut(BaseModel):
    id: int
    object: Literal["billable_metric"] = "billable_metric"
    code: str
    name: str
    aggregation: Aggregation
    field: str | None
    filters: dict[str, list[str]]
    group_by: str | None
    rounding: str
    precision: int
    created_at: str


class UsageGroupOut(BaseModel):
    price_id: int
    metric_code: str
    group: str
    quantity: str
    events: int
    amount: MoneyOut
    tiers: list[dict[str, str | int | bool | None]]


class DocumentUsageOut(UsageGroupOut):
    object: Literal["usage_line"] = "usage_line"
    period_start: str
    period_end: str


class UsageOut(BaseModel):
    object: Literal["usage"] = "usage"
    customer_id: int
    subscription_id: int
    currency: str
    period_start: str
    period_end: str
    amount: MoneyOut
    charges: list[UsageGroupOut]


class CurrencyAmountOut(BaseModel):
    currency: str
    amount: MoneyOut


class CustomerUsageOut(BaseModel):
    """A customer's current usage across its subscriptions with usage prices."""

    object: Literal["customer_usage"] = "customer_usage"
    customer_id: int
    amounts: list[CurrencyAmountOut]
    subscriptions: list[UsageOut]


class UsageSettingsIn(In):
    late_days: Annotated[int, Field(ge=0, le=366)] | None = None
    grace_hours: Annotated[int, Field(ge=0, le=720)] | None = None
    late_policy: Literal["invoice", "credit_note"] | None = None
    accept_unknown_customers: bool | None = Field(
        None, description="keep events naming an `external_customer_id` no customer has yet"
    )


class UsageSettingsOut(BaseModel):
    object: Literal["usage_settings"] = "usage_settings"
    late_days: int
    grace_hours: int
    late_policy: Literal["invoice", "credit_note"]
    accept_unknown_customers: bool


class TierIn(In):
    up_to: Annotated[str, Field(pattern=r"^[0-9]{1,18}(\.[0-9]{1,12})?$")] | None
    unit_price: Annotated[str, Field(pattern=r"^[0-9]{1,18}(\.[0-9]{1,12})?$")] = "0"
    flat_fee: Annotated[str, Field(pattern=r"^[0-9]{1,18}(\.[0-9]{1,12})?$")] = "0"


DecimalText = Annotated[str, Field(pattern=r"^[0-9]{1,18}(\.[0-9]{1,12})?$", examples=["0.000125"])]


class ChargeIn(In):
    """The charge model's properties (decimal strings); only those of the model are used."""

    unit_price: DecimalText | None = None
    package_size: DecimalText | None = None
    tiers: Annotated[list[TierIn], Field(max_length=50)] | None = None
    rate: DecimalText | None = None
    fixed_fee: DecimalText | None = None
    min_amount: DecimalText | None = None
    max_amount: DecimalText | None = None
    free_units: DecimalText | None = None
    minimum: DecimalText | None = None


class UsagePriceIn(In):
    """A recurring price billed in arrears on a billable metric. Rules across properties (422 naming the
    property): `graduated` and `volume` need `tiers`, ascending by `up_to`, only the last one unbounded
    (`up_to: null`); `package` needs a `package_size` above zero; `min_amount` at most `max_amount`."""

    currency: Currency
    interval: Literal["day", "week", "month", "quarter", "year"]
    interval_count: Annotated[int, Field(ge=1, le=120)] = 1
    tax_inclusive: bool = False
    tax_category: Literal["standard", "reduced", "zero", "exempt"] = "standard"
    metric_id: Id
    charge_model: Literal["per_unit", "package", "graduated", "volume", "percentage"]
    properties: ChargeIn


class UsagePriceOut(BaseModel):
    object: Literal["usage_price"] = "usage_price"
    price_id: int
    metric_id: int
    charge_model: str
    properties: dict[str, Any]


def _positive_decimal() -> str:
    """A decimal above zero with at most 18 significant integer digits and 12 decimals, as the service
    checks it (the first non-zero decimal at each of the 12 places spelled out: no look-ahead)."""
    fractions = "|".join(f"0{{{k}}}[1-9][0-9]{{0,{11 - k}}}" for k in range(12))
    return rf"^(0*[1-9][0-9]{{0,17}}(\.[0-9]{{1,12}})?|0+\.({fractions}))$"


PositiveDecimal = Annotated[str, Field(pattern=_positive_decimal(), examples=["100.00"])]


class AmountThresholdIn(In):
    """Reached when the period's net usage amount (of `price_id`, or of all the subscription's usage
    prices) is at least `value`, in the subscription's currency (no more decimals than it has: else 409)."""

    kind: Literal["amount"]
    value: PositiveDecimal
    price_id: Id | None = None


class QuantityThresholdIn(In):
    """Reached when the period's quantity of the usage price `price_id` (its metric's aggregate, all
    groups) is at least `value`."""

    kind: Literal["quantity"]
    value: PositiveDecimal
    price_id: Id


ThresholdIn = Annotated[AmountThresholdIn | QuantityThresholdIn, Field(discriminator="kind")]
"""A usage threshold; `price_id` must be a usage price of the subscription (else 409)."""


class ThresholdOut(BaseModel):
    id: int
    object: Literal["usage_threshold"] = "usage_threshold"
    subscription_id: int
    price_id: int | None
    kind: Literal["amount", "quantity"]
    value: str
    created_at: str
