"""Request and response shapes of coupons, promotion codes and discounts (issue 17), strict like the
rest of `/api/v1`: money as decimal strings, unknown fields refused, every bound stated."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from fiscus.api.fields import (
    Amount,
    Currency,
    Id,
    In,
    Instant,
    MoneyOut,
    Text,
    amount_in_currency,
    currencies_by_exponent,
    minor_unit_pattern,
)
from fiscus.api.schemas import Out

CodeText = Annotated[str, Field(pattern=r"^\s*[A-Za-z0-9][A-Za-z0-9_-]{1,63}\s*$", examples=["LAUNCH20"])]
PERCENT = r"^(?![0.]*$)(100(\.0{1,4})?|[0-9]{1,2}(\.[0-9]{1,4})?)$"
"""A percentage above 0 and at most 100, with at most four decimals."""
Limit = Annotated[int, Field(ge=1, le=1_000_000_000)]


_ONE_KIND: dict[str, Any] = {
    "oneOf": [
        {
            "required": ["percent_off"],
            "properties": {"percent_off": {"type": "string"}, "amounts_off": {"maxProperties": 0}},
        },
        {
            "required": ["amounts_off"],
            "properties": {"percent_off": {"type": "null"}, "amounts_off": {"minProperties": 1}},
        },
    ]
}
"""Exactly one of `percent_off` and a non-empty `amounts_off`, as `CouponIn._one_kind` checks."""
_WHOLE_MINOR_UNITS: dict[str, Any] = {
    code: {"type": "string", "pattern": minor_unit_pattern(exponent)}
    for exponent, codes in currencies_by_exponent().items()
    for code in codes
}
_PERIODS_WITH_REPEATING: dict[str, Any] = {
    "oneOf": [
        {
            "required": ["duration", "duration_periods"],
            "properties": {"duration": {"const": "repeating"}, "duration_periods": {"type": "integer"}},
        },
        {
            "properties": {
                "duration": {"enum": ["once", "forever"]},
                "duration_periods": {"type": "null"},
            }
        },
    ]
}


class CouponIn(In):
    """A percentage (`percent_off`) or fixed amounts per currency (`amounts_off`), not both; a
    `repeating` coupon lasts `duration_periods` billed documents."""

    model_config = ConfigDict(json_schema_extra={"allOf": [_ONE_KIND, _PERIODS_WITH_REPEATING]})

    name: Text = Field(max_length=200)
    percent_off: (
        Annotated[str, Field(pattern=r"^(?![0.]*$)(100(\.0{1,4})?|[0-9]{1,2}(\.[0-9]{1,4})?)$")] | None
    ) = None
    amounts_off: dict[Currency, Amount] = Field(
        default_factory=dict,
        max_length=50,
        description="each amount whole in its currency's minor units",
        json_schema_extra={"properties": _WHOLE_MINOR_UNITS},
    )
    duration: Literal["once", "repeating", "forever"] = "once"
    duration_periods: int | None = Field(None, ge=1, le=1200)
    product_ids: list[Id] = Field(default_factory=list, max_length=100)
    price_ids: list[Id] = Field(default_factory=list, max_length=100)
    metric_ids: list[Id] = Field(
        default_factory=list, max_length=100, description="usage metrics: the usage prices charging them"
    )
    redeem_by: Instant | None = None
    max_redemptions: Limit | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CouponIn:
        if (self.percent_off is None) == (not self.amounts_off):
            raise ValueError("give exactly one of percent_off and amounts_off")
        if self.percent_off is not None and Decimal(self.percent_off) == 0:
            raise ValueError("percent_off must be greater than 0")
        if (self.duration == "repeating") != (self.duration_periods is not None):
            raise ValueError("duration_periods goes with (and only with) a repeating coupon")
        return self


class CouponOut(Out):
    id: int
    object: Literal["coupon"] = "coupon"
    name: str
    percent_off: str | None
    amounts_off: dict[str, MoneyOut]
    duration: str
    duration_periods: int | None
    product_ids: list[int]
    price_ids: list[int]
    metric_ids: list[int]
    redeem_by: datetime | None
    max_redemptions: int | None
    times_redeemed: int
    valid: bool
    created_at: datetime


_MINIMUM_PAIRS: list[Any] = [
    {
        "required": ["minimum_amount", "minimum_currency"],
        "properties": {
            "minimum_amount": {"type": "string", "pattern": minor_unit_pattern(exponent)},
            "minimum_currency": {"enum": codes},
        },
    }
    for exponent, codes in currencies_by_exponent().items()
]
"""Both minimum fields, the amount whole in the currency's minor units (one branch per exponent)."""
_NO_MINIMUM: dict[str, Any] = {
    "properties": {"minimum_amount": {"type": "null"}, "minimum_currency": {"type": "null"}}
}


class PromotionCodeIn(In):
    """A customer-facing code (case-insensitive, stored upper-case) for a coupon; `minimum_amount` and
    `minimum_currency` go together."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [*_MINIMUM_PAIRS, _NO_MINIMUM]})

    coupon_id: Id
    code: CodeText
    expires_at: Instant | None = None
    max_redemptions: Limit | None = None
    first_purchase_only: bool = False
    minimum_amount: Amount | None = None
    minimum_currency: Currency | None = None
    customer_id: Id | None = None

    @model_validator(mode="after")
    def _minimum_pair(self) -> PromotionCodeIn:
        if (self.minimum_amount is None) != (self.minimum_currency is None):
            raise ValueError("give minimum_amount and minimum_currency together")
        return self


class PromotionCodeOut(Out):
    id: int
    object: Literal["promotion_code"] = "promotion_code"
    code: str
    coupon_id: int
    active: bool
    expires_at: datetime | None
    max_redemptions: int | None
    times_redeemed: int
    first_purchase_only: bool
    minimum_amount: MoneyOut | None
    minimum_currency: str | None
    customer_id: int | None
    created_at: datetime


class RedeemIn(In):
    """A promotion code (as the customer typed it) or a coupon id, not both."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["promotion_code"],
                    "properties": {"promotion_code": {"type": "string"}, "coupon": {"type": "null"}},
                },
                {
                    "required": ["coupon"],
                    "properties": {"promotion_code": {"type": "null"}, "coupon": {"type": "integer"}},
                },
            ]
        }
    )

    promotion_code: CodeText | None = None
    coupon: Id | None = None

    @model_validator(mode="after")
    def _one(self) -> RedeemIn:
        if (self.promotion_code is None) == (self.coupon is None):
            raise ValueError("give exactly one of promotion_code and coupon")
        return self


class DiscountOut(Out):
    id: int
    object: Literal["discount"] = "discount"
    coupon_id: int
    promotion_code_id: int | None
    customer_id: int
    subscription_id: int | None
    periods_applied: int
    status: str
    created_at: datetime
    ended_at: datetime | None


class DiscountSettingsIn(In):
    stacking: Literal["sequential", "none"]


class DiscountSettingsOut(Out):
    object: Literal["discount_settings"] = "discount_settings"
    stacking: str


class CreditGrantIn(In):
    """Promotional credit (no payment; taxed as a discount when the billing run uses it); `amount` and
    `low_balance` are whole in the currency's minor units."""

    model_config = ConfigDict(
        json_schema_extra=amount_in_currency("currency", "amount", "low_balance", nullable=("low_balance",))
    )

    currency: Currency
    amount: Amount
    expires_at: Instant | None = None
    priority: int = Field(0, ge=0, le=100, description="lower is used first")
    product_ids: list[Id] = Field(default_factory=list, max_length=100, description="empty: every product")
    reason: Text = Field("Promotional credit", max_length=200)
    low_balance: Amount | None = Field(None, description="a `credits.low_balance` event when crossed")


class LedgerEntryOut(Out):
    id: int
    grant_id: int
    kind: str
    amount: MoneyOut
    document_id: int | None
    created_at: datetime


class WalletOut(Out):
    id: int
    object: Literal["wallet"] = "wallet"
    customer_id: int
    currency: str
    balance: MoneyOut
    low_balance: MoneyOut | None
    ledger: list[LedgerEntryOut]


class TopupIn(In):
    """Bought credit: a top-up invoice of `amount` (tax included) in the customer's currency; once it
    is paid, the wallet holds `amount` of paid credit (ADR 0009); `amount` is whole in the currency's
    minor units."""

    model_config = ConfigDict(json_schema_extra=amount_in_currency("currency", "amount"))

    currency: Currency
    amount: Amount


class TopupOut(Out):
    id: int
    object: Literal["credit_topup"] = "credit_topup"
    customer_id: int
    document_id: int
    amount: MoneyOut
    currency: str
    grant_id: int | None = Field(description="the paid credit it granted; null until the invoice is paid")
    created_at: datetime
    credited_at: datetime | None
