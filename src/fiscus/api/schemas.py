"""Request and response shapes of the native API (`/api/v1`).

Money goes out as decimal strings with the currency's minor units (`"12.50"`, `"1500"` for JPY) and
comes in as decimal strings only: a JSON number is refused, because a float cannot hold every cent.
Unknown request fields are refused (422), so read-only fields (ids, numbers, totals, status,
organisation) can never be set by a client.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
    model_validator,
)

from fiscus.api.errors import FieldValueError

DECIMAL_PATTERN = r"^-?\d{1,18}(\.\d{1,12})?$"


def _decimal_string(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError('must be a decimal string such as "12.50" (JSON numbers lose cents)')
    if isinstance(value, int):
        return Decimal(value)
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"'{value}' is not a decimal number") from None
    if not parsed.is_finite():
        raise ValueError("must be finite")
    return parsed


def _no_float_amount(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError('amounts must be decimal strings such as "12.50"; JSON numbers are refused')
    return _decimal_string(value)


def _bounded(value: Decimal) -> Decimal:
    if abs(value) >= Decimal(10) ** 18:
        raise ValueError("is too large")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -12:
        raise ValueError("has more than 12 decimal places")
    return value


Amount = Annotated[
    Decimal,
    BeforeValidator(_no_float_amount),
    AfterValidator(_bounded),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["12.50"]}),
]
"""Money in: a decimal string only."""

Quantity = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    AfterValidator(_bounded),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "pattern": DECIMAL_PATTERN}, {"type": "integer"}], "examples": ["1", 3]}
    ),
]
MoneyOut = Annotated[str, Field(pattern=DECIMAL_PATTERN, examples=["12.50"])]
Currency = Annotated[str, Field(pattern="^[A-Z]{3}$", examples=["EUR"])]
Country = Annotated[str, Field(pattern="^[A-Za-z]{2}$", examples=["BG"])]
Id = Annotated[int, Field(ge=1, le=2**62)]
Instant = Annotated[AwareDatetime, Strict(), Field(examples=["2026-12-01T00:00:00Z"])]
"""An instant in: an RFC 3339 string with an offset; numbers and naive times are refused."""


def _not_a_number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            float(value)  # float-ok: only detects numeric strings, which must not pass as timestamps
        except ValueError:
            return value
    raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-12-01T00:00:00Z")


QueryInstant = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]


def _no_nul(value: Any, at: tuple[str | int, ...] = ()) -> Any:
    """NUL characters are refused everywhere: PostgreSQL cannot store them in text. The error names
    the field (`FieldValueError.loc`, which the problem's pointer carries)."""
    if isinstance(value, str) and "\x00" in value:
        raise FieldValueError("must not contain NUL characters", at)
    if isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key, at)
            _no_nul(item, (*at, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _no_nul(item, (*at, index))
    return value


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        return _no_nul(data)


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


class CustomerIn(In):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=254)
    country: Country
    currency: Currency | None = None
    vat_id: str | None = Field(None, max_length=32)
    locale: str | None = Field(None, max_length=16)
    timezone: str | None = Field(None, max_length=64)
    address: AddressIn = AddressIn()


class CustomerPatch(In):
    name: str | None = Field(None, min_length=1, max_length=200)
    email: str | None = Field(None, min_length=3, max_length=254)
    vat_id: str | None = Field(None, max_length=32)
    locale: str | None = Field(None, max_length=16)
    timezone: str | None = Field(None, max_length=64)
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
    created_at: datetime
    updated_at: datetime


class ProductIn(In):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    slug: str = Field("", max_length=200)
    comment: str = Field("", max_length=5000)
    slogan: str = Field("", max_length=1000)
    type: str = Field("integration", min_length=1, max_length=32)
    detail: str = Field("", max_length=20000)
    icon: str = Field("", max_length=500)
    image: str = Field("", max_length=500)
    image_alt: str = Field("", max_length=500)
    disabled: bool = False
    extra: dict[str, Any] | list[Any] | None = None
    demo_enabled: bool = False
    demo_duration: str = Field("", max_length=32)
    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=50
    )
    modules: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=50
    )
    visible: bool = True


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
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    limits: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
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
    currency: Currency
    unit_amount: Amount
    interval: Interval | None = None
    interval_count: int = Field(1, ge=1, le=120)
    tax_inclusive: bool = False
    tax_category: TaxCategory = "standard"


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
    customer_id: Id
    items: list[ItemIn] = Field(min_length=1, max_length=50)
    start_at: Instant | None = None
    trial_days: int = Field(0, ge=0, le=730)
    trial_end: Instant | None = None
    billing_anchor: Instant | None = None
    billing: Literal["now", "next_run"] = Field("next_run", description='"now": bill at once, as Stripe does')


class SubscriptionUpdate(In):
    items: list[ItemIn] | None = Field(None, min_length=1, max_length=50)
    cancel_at_period_end: bool | None = None


class CancelIn(In):
    at_period_end: bool = False


class ChangeIn(In):
    items: list[ItemIn] = Field(min_length=1, max_length=50)


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
    amount: MoneyOut
    tax: MoneyOut


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
    subtotal: MoneyOut
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
