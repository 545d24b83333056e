"""Request and response shapes of the native API (`/api/v1`); the field types live in `fields`.

Money goes out as decimal strings with the currency's minor units (`"12.50"`, `"1500"` for JPY) and
comes in as decimal strings only: a JSON number is refused, because a float cannot hold every cent.
Unknown request fields are refused (422), so read-only fields (ids, numbers, totals, status,
organisation) can never be set by a client.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from fiscus.api.fields import (  # re-exported: routes import the field types from here too
    EMPTY_OR_TEXT,
    Email,
    ExternalId,
    Locale,
    Text,
    TimeZone,
    UnitAmount,
)
from fiscus.api.fields import (
    MAX_JSON_INTEGER as MAX_JSON_INTEGER,
)
from fiscus.api.fields import (
    NOT_BLANK as NOT_BLANK,
)
from fiscus.api.fields import (
    Amount as Amount,
)
from fiscus.api.fields import Country as Country
from fiscus.api.fields import Currency as Currency
from fiscus.api.fields import (
    Id as Id,
)
from fiscus.api.fields import (
    In as In,
)
from fiscus.api.fields import (
    Instant as Instant,
)
from fiscus.api.fields import MoneyOut as MoneyOut
from fiscus.api.fields import (
    Quantity as Quantity,
)
from fiscus.api.fields import (
    QueryInstant as QueryInstant,
)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


T = TypeVar("T")


class ListOut(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    url: str


class AddressIn(In):
    line1: str = Field("", max_length=200)
    line2: str = Field("", max_length=200)
    city: str = Field("", max_length=100)
    postal_code: str = Field("", max_length=20)


class AddressOut(Out):
    line1: str
    line2: str
    city: str
    postal_code: str
    country: str


VAT_ID_NOTE: Final = (
    "VAT or tax ID, checked offline for the customer's country (EU numbers by checksum and prefix, "
    "e.g. `BG175074752`; a number that does not check out is 422)"
)


class CustomerIn(In):
    name: Text = Field(min_length=1, max_length=200)
    email: Email
    country: Country
    currency: Currency | None = Field(None, description="omitted: the organisation's default currency")
    vat_id: Annotated[str, Field(pattern=NOT_BLANK)] | None = Field(
        None, max_length=32, description=VAT_ID_NOTE
    )
    locale: Locale | None = Field(None, description="omitted: the organisation's locale")
    timezone: TimeZone | None = Field(None, description="omitted: the organisation's time zone")
    address: AddressIn = AddressIn()
    external_id: ExternalId | None = Field(
        None, description="the customer's id in your system, unique (else 409); usage events may name it"
    )


class CustomerPatch(In):
    name: Text | None = Field(None, min_length=1, max_length=200)
    email: Email | None = None
    vat_id: str | None = Field(None, max_length=32, description=VAT_ID_NOTE + "; empty string: remove it")
    locale: Locale | None = None
    timezone: TimeZone | None = None
    address: AddressIn | None = None


class CustomerOut(Out):
    id: int
    object: Literal["customer"] = "customer"
    name: str
    email: str
    country: str
    currency: str
    vat_id: str | None
    locale: str
    timezone: str
    address: AddressOut
    default_payment_method_id: int | None
    external_id: str | None = None
    created_at: datetime
    updated_at: datetime


class ProductIn(In):
    code: Text = Field(min_length=1, max_length=64)
    name: Text = Field(min_length=1, max_length=200)
    slug: str = Field("", max_length=200, pattern=EMPTY_OR_TEXT, description="empty: made from `code`")
    comment: str = Field("", max_length=5000)
    slogan: str = Field("", max_length=1000)
    type: Text = Field("integration", min_length=1, max_length=32)
    detail: str = Field("", max_length=20000)
    icon: str = Field("", max_length=500)
    image: str = Field("", max_length=500)
    image_alt: str = Field("", max_length=500)
    disabled: bool = False
    extra: dict[str, Any] | list[Any] | None = None
    demo_enabled: bool = False
    demo_duration: str = Field("", max_length=32)
    tags: list[Annotated[str, Field(min_length=1, max_length=64, pattern=NOT_BLANK)]] = Field(
        default_factory=list, max_length=50
    )
    modules: list[Annotated[str, Field(min_length=1, max_length=64, pattern=NOT_BLANK)]] = Field(
        default_factory=list, max_length=50
    )
    visible: bool = True


class ProductPatch(In):
    """The fields to change; omitted ones stay."""

    name: Text | None = Field(None, min_length=1, max_length=200)
    detail: str | None = Field(None, max_length=20000)


class ProductOut(Out):
    id: int
    object: Literal["product"] = "product"
    code: str
    name: str
    slug: str
    comment: str
    slogan: str
    type: str
    detail: str
    icon: str
    image: str
    image_alt: str
    disabled: bool
    extra: Any
    demo_enabled: bool
    demo_duration: str
    tags: list[str]
    modules: list[str]
    visible: bool
    created_at: datetime


class VariantIn(In):
    code: Text = Field(min_length=1, max_length=64)
    name: Text = Field(min_length=1, max_length=200)
    limits: list[Annotated[str, Field(min_length=1, max_length=200, pattern=NOT_BLANK)]] = Field(
        default_factory=list, max_length=100
    )


class VariantOut(Out):
    id: int
    object: Literal["variant"] = "variant"
    product_id: int
    code: str
    name: str
    limits: list[str]
    created_at: datetime


Interval = Literal["day", "week", "month", "quarter", "year"]
TaxCategory = Literal["standard", "reduced", "zero", "exempt"]


class PriceIn(In):
    """A recurring price (`interval` set, billed every `interval_count` intervals) or a one-off price
    (no `interval`, and then `interval_count` is 1 or omitted)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["interval"], "properties": {"interval": {"type": "string"}}},
                {"properties": {"interval": {"type": "null"}, "interval_count": {"const": 1}}},
            ]
        }
    )

    currency: Currency
    unit_amount: UnitAmount
    interval: Interval | None = None
    interval_count: int = Field(1, ge=1, le=120)
    tax_inclusive: bool = False
    tax_category: TaxCategory = "standard"

    @model_validator(mode="after")
    def _one_off_has_no_count(self) -> PriceIn:
        if self.interval is None and self.interval_count != 1:
            raise ValueError("a one-off price (no interval) has no interval_count")
        return self


class PriceOut(Out):
    id: int
    object: Literal["price"] = "price"
    variant_id: int
    currency: str
    unit_amount: str
    interval: str | None
    interval_count: int
    tax_inclusive: bool
    tax_category: str
    active: bool
    created_at: datetime


class ItemIn(In):
    price_id: Id
    quantity: Quantity = Decimal(1)


class ItemOut(Out):
    price_id: int
    quantity: str


class SubscriptionIn(In):
    """A trial is given by `trial_days` or by `trial_end`, not both; `trial_end` must be after the start
    (`start_at`, or now when omitted); every item's price is recurring, in the customer's currency, and
    all share one interval (409 otherwise)."""

    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "required": ["trial_days", "trial_end"],
                "properties": {"trial_days": {"minimum": 1}, "trial_end": {"type": "string"}},
            }
        }
    )

    customer_id: Id
    items: list[ItemIn] = Field(min_length=1, max_length=50)
    start_at: Instant | None = Field(None, description="omitted: now")
    trial_days: int = Field(0, ge=0, le=730)
    trial_end: Instant | None = Field(None, description="after `start_at`; not with `trial_days`")
    billing_anchor: Instant | None = None
    billing: Literal["now", "next_run"] = Field("next_run", description='"now": bill at once, as Stripe does')

    @model_validator(mode="after")
    def _one_trial(self) -> SubscriptionIn:
        if self.trial_days and self.trial_end:
            raise ValueError("give trial_days or trial_end, not both")
        return self


class SubscriptionUpdate(In):
    items: list[ItemIn] | None = Field(None, min_length=1, max_length=50)
    cancel_at_period_end: bool | None = None


class CancelIn(In):
    at_period_end: bool = False


class ChangeIn(In):
    items: list[ItemIn] = Field(min_length=1, max_length=50)


class PauseCollectionIn(In):
    """Pause the automatic charges: invoices are still issued and numbered; the worker makes no charge
    or retry until `resumes_at` (omitted: until resumed). A `resumes_at` not in the future: 409."""

    resumes_at: Instant | None = Field(None, description="omitted: until resumed by hand")


class PauseCollectionOut(Out):
    paused_at: datetime
    resumes_at: datetime | None


class SubscriptionOut(Out):
    id: int
    object: Literal["subscription"] = "subscription"
    customer_id: int
    status: str
    currency: str
    interval: str
    interval_count: int
    billing_anchor: datetime
    start_at: datetime
    trial_end: datetime | None
    current_period_start: datetime | None
    current_period_end: datetime | None
    next_period_start: datetime
    cancel_at: datetime | None
    canceled_at: datetime | None
    ended_at: datetime | None
    payment_method_id: int | None
    items: list[ItemOut]
    created_at: datetime
    updated_at: datetime
    pause_collection: PauseCollectionOut | None = Field(
        None, description="set while automatic collection is paused (invoices are still issued)"
    )
    customer: CustomerOut | None = None


class OrderIn(In):
    customer_id: Id
    items: list[ItemIn] = Field(min_length=1, max_length=100)
    bill_now: bool = False


class OrderOut(Out):
    id: int
    object: Literal["order"] = "order"
    customer_id: int
    status: str
    currency: str
    items: list[ItemOut]
    document_ids: list[int]
    created_at: datetime
    billed_at: datetime | None


class TaxBreakdownOut(Out):
    treatment: str
    rate: str
    base: MoneyOut
    tax: MoneyOut
    note: str


class LineDiscountOut(Out):
    reason: str
    amount: MoneyOut
    coupon_id: int | None
    discount_id: int | None


class LineOut(Out):
    id: int
    position: int
    kind: str
    description: str
    product_id: int | None
    variant_id: int | None
    price_id: int | None
    subscription_period_id: int | None
    order_id: int | None
    period_start: datetime | None
    period_end: datetime | None
    quantity: str
    unit_price: str
    proration_ratio: str
    tax_inclusive: bool
    tax_treatment: str
    tax_rate: str
    amount: MoneyOut = Field(description="net of the line's discounts: quantity × unit price − discount")
    tax: MoneyOut
    discount: MoneyOut = Field(description="Σ `discounts` (issue 17), taken off before tax")
    discounts: list[LineDiscountOut]


class DocumentOut(Out):
    id: int
    object: Literal["document"] = "document"
    livemode: bool = Field(description="false for a test-mode document (marked TEST, own number series)")
    type: str
    status: str
    number: str | None
    series: str
    customer_id: int
    subscription_id: int | None
    currency: str
    subtotal: MoneyOut = Field(description="Σ line amounts, net of discounts")
    discount: MoneyOut = Field(description="Σ discounts on the lines, already out of `subtotal`")
    tax: MoneyOut
    total: MoneyOut
    amount_paid: MoneyOut
    amount_due: MoneyOut
    period_start: datetime | None
    period_end: datetime | None
    issue_date: date | None
    due_date: date | None
    issued_at: datetime | None
    created_at: datetime
    updated_at: datetime
    paid_at: datetime | None
    voided_at: datetime | None
    seller: dict[str, Any]
    buyer: dict[str, Any]
    notes: list[str]
    tax_breakdown: list[TaxBreakdownOut]
    order_ids: list[int]
    converted_from_id: int | None
    converted_to_id: int | None
    replaces_id: int | None = Field(
        description="The open proforma this proforma replaced when the customer entered a promotion code "
        "on its hosted page (it was voided and reissued under the next number with the discount)."
    )
    replaced_by_id: int | None = Field(
        description="For a proforma voided that way, the proforma that replaced it; otherwise null."
    )
    pdf_url: str | None
    hosted_url: str | None = Field(
        description="The document's hosted page (signed link; the same as the billing dialect's "
        "`transaction_url`): pay by card while due, the receipt once paid, the state once void or "
        "converted. Null for drafts and credit notes."
    )
    corrected_document_id: int | None
    reason: str | None
    credit_disposition: str | None
    amount_credited: MoneyOut
    amount_refunded: MoneyOut
    next_payment_attempt_at: datetime | None
    payment_attempt_count: int = Field(description="Card charges tried for this document (or its proforma)")
    last_payment_attempt_at: datetime | None
    last_payment_attempt_status: (
        Literal["pending", "unknown", "authorized", "succeeded", "failed", "canceled"] | None
    )
    lines: list[LineOut] | None = None
    customer: CustomerOut | None = None
    subscription: SubscriptionOut | None = None


class PreviewDiscountOut(Out):
    """A discount or promotional credit the previewed document would carry (issue 17)."""

    reason: str
    amount: MoneyOut
    coupon_id: int | None
    discount_id: int | None
    grant_id: int | None


class PreviewOut(Out):
    object: Literal["document_preview"] = "document_preview"
    subscription_id: int
    type: str | None
    currency: str | None
    period_start: datetime | None
    period_end: datetime | None
    subtotal: MoneyOut
    tax: MoneyOut
    total: MoneyOut
    lines: list[dict[str, Any]]
    tax_breakdown: list[TaxBreakdownOut]
    usage: dict[str, Any] | None = Field(
        None, description="the current period's usage, billed in arrears on a document of its own"
    )
    discount: MoneyOut = Field(description="Σ discounts and promotional credit, taken before tax")
    discounts: list[PreviewDiscountOut]
    prepaid_credit: MoneyOut = Field(description="paid wallet credit it would take after tax")
    amount_due: MoneyOut = Field(description="total less prepaid_credit")


class AuditEventOut(Out):
    id: int
    object: Literal["audit_event"] = "audit_event"
    action: str
    actor: str
    at: datetime
    before: Any
    after: Any


class BillingRunIn(In):
    at: Instant | None = None


class BillingRunOut(Out):
    id: int
    object: Literal["billing_run"] = "billing_run"
    status: str
    at: datetime
    expected: int
    subscriptions_billed: int
    orders_billed: int
    documents_created: int
    failures: int
    totals: dict[str, str]
    started_at: datetime
    finished_at: datetime | None
