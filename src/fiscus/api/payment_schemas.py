"""The native API's payment bodies: payment methods, charges, captures, refunds, collection settings and
the provider's webhook answer (the shapes `api/payment_presenters.py` fills)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, Strict

from fiscus.api.fields import Text
from fiscus.api.schemas import Amount, Id, In, MoneyOut, Out

RetryFinalAction = Literal["leave_open", "mark_uncollectible", "cancel_subscription"]


class PaymentMethodIn(In):
    token: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="the payment provider's token for the card; the card number goes to the provider only",
    )
    holder: str = Field("", max_length=200)
    make_default: Annotated[bool, Strict()] = True


class PaymentMethodOut(Out):
    id: int
    object: Literal["payment_method"] = "payment_method"
    customer_id: int
    type: str
    network: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    fingerprint: str | None
    holder: str
    status: str
    is_default: bool
    created_at: datetime
    updated_at: datetime


class DefaultPaymentMethodIn(In):
    payment_method_id: Id


class SubscriptionPaymentMethodIn(In):
    payment_method_id: Id | None = Field(description="null: charge the customer's default method again")


class ChargeIn(In):
    payment_method_id: Id | None = Field(
        None, description="omitted: the subscription's method, else the customer's default"
    )


class CaptureIn(In):
    amount: Annotated[Amount | None, Field(description="omitted: everything authorised")] = None


class RefundIn(In):
    amount: Annotated[Amount | None, Field(description="omitted: everything captured and not refunded")] = (
        None
    )
    reason: Text = Field(min_length=1, max_length=1000)


class CardOut(Out):
    brand: str | None
    last4: str | None


class PaymentErrorOut(Out):
    code: str
    message: str


class PaymentOut(Out):
    id: int
    object: Literal["payment"] = "payment"
    document_id: int
    paid_document_id: int | None
    customer_id: int
    status: str
    amount: MoneyOut
    currency: str
    payment_method_id: int | None
    card: CardOut | None
    error: PaymentErrorOut | None
    hard_decline: bool
    trigger: str
    capture_mode: str
    provider: str
    provider_charge_id: str | None
    authorized_amount: MoneyOut
    captured_amount: MoneyOut
    captured_at: datetime | None
    refunded_amount: MoneyOut
    created_at: datetime
    settled_at: datetime | None


class RefundOut(Out):
    id: int
    object: Literal["refund"] = "refund"
    document_id: int
    payment_id: int
    amount: MoneyOut
    currency: str
    status: str
    reason: str
    credit_note_id: int | None
    error_message: str | None
    created_at: datetime
    settled_at: datetime | None


class PaymentSettingsIn(In):
    auto_collect: Annotated[bool, Strict()] | None = None
    capture_mode: Literal["sale", "authorize"] | None = None
    retry_days: list[Annotated[int, Strict(), Field(ge=1, le=60)]] | None = Field(
        None, max_length=8, description="days after the first failed charge to retry, strictly increasing"
    )
    retry_final_action: RetryFinalAction | None = None


class PaymentSettingsOut(Out):
    object: Literal["payment_settings"] = "payment_settings"
    auto_collect: bool
    capture_mode: str
    retry_days: list[int]
    retry_final_action: str


class InboundWebhookOut(Out):
    received: bool
    duplicate: bool
