"""The OpenAPI side of the billing dialect (seed 000): response models and parameters, as the
document shows them. Only documentation: the handlers render bytes themselves (`billing_present`)."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, Field, WithJsonSchema

PAGE_SIZE: Final = 20
MAX_PAGE_SIZE: Final = 100


_TIMESTAMP_SCHEMA: Final = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
    "examples": ["2023-11-07T05:31:56Z"],
}
_MONEY_SCHEMA: Final = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["4990.00"]}

Timestamp = Annotated[str, WithJsonSchema(_TIMESTAMP_SCHEMA)]
DecimalString = Annotated[str, WithJsonSchema(_MONEY_SCHEMA)]
Link = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "format": "uri", "examples": ["http://api.example.org/accounts/?page=4"]}
    ),
]
Count = Annotated[
    int,
    WithJsonSchema(
        {
            "type": "integer",
            "minimum": 1,
            "description": "The quantity when it is a whole positive number; 1 for a prorated, credit or "
            "fractional line, whose `price` is then the line's amount.",
        }
    ),
]


class BillingIntegration(BaseModel):
    id: int
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
    extra: Annotated[Any, Field(description="The product's stored JSON, or null.")]
    demo_enabled: bool
    demo_duration: str
    tags: list[str]
    modules: list[str]
    visable: Annotated[bool, Field(description="The product's `visible` flag, in the document's spelling.")]


class BillingVariant(BaseModel):
    id: int
    name: str
    code: str
    limits: list[str]


class BillingInvoiceItem(BaseModel):
    id: int
    integration: BillingIntegration | None
    variant: BillingVariant | None
    invoice: int
    type: str | None
    start_at: Timestamp | None
    end_at: Timestamp | None
    count: Count
    price: Annotated[
        DecimalString,
        Field(
            description="Unit price, exact (may be finer than the minor unit); the line's amount when "
            "`count` is 1 for another quantity."
        ),
    ]
    amount: Annotated[DecimalString, Field(description="Line net amount in the currency's minor units.")]
    integration_period: int | None


class BillingInvoiceError(BaseModel):
    id: int
    code: str
    description: str
    created_at: Timestamp
    invoice: int


class BillingInvoice(BaseModel):
    id: int
    tenant: Annotated[int, Field(description="The customer's id.")]
    card: Annotated[
        int | None,
        Field(description="The payment method (card) the last payment attempt charged; null before any."),
    ]
    currency: Annotated[str, Field(pattern="^[A-Z]{3}$", examples=["KZT"])]
    status: Literal["draft", "waiting", "paid", "canceled", "failed", "converted"]
    total: DecimalString
    captured_amount: Annotated[
        DecimalString, Field(description="Money received for the invoice (captures, and payments recorded).")
    ]
    refund_amount: Annotated[DecimalString, Field(description="Money refunded of it.")]
    captured_at: Annotated[Timestamp | None, Field(description="When the last capture settled.")]
    start_at: Timestamp | None
    end_at: Timestamp | None
    items: list[BillingInvoiceItem]
    errors: Annotated[list[BillingInvoiceError], Field(description="Failed payment attempts, oldest first.")]
    transaction_url: Annotated[
        str | None,
        Field(
            description="The hosted payment page (signed link) of an invoice that can be paid or is paid; "
            "null for drafts, canceled and converted ones, and when payments are not configured."
        ),
    ]
    created_at: Timestamp


class BillingInvoicePage(BaseModel):
    count: int
    next: Link | None
    previous: Link | None
    results: list[BillingInvoice]


class BillingDetail(BaseModel):
    detail: str


def error_response(description: str) -> dict[str, Any]:
    return {"model": BillingDetail, "description": description}


AUTH_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: error_response('Missing or bad credentials (`WWW-Authenticate: Bearer realm="api"`).'),
    406: error_response("No acceptable media type in Accept (only application/json is rendered)."),
    429: {
        **error_response(
            'Rate limited: `{"detail": "Request was throttled. Expected available in N seconds."}`.'
        ),
        "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}},
    },
}
PAGE_PARAMETERS: Final = [
    {
        "name": "page",
        "in": "query",
        "required": False,
        "description": (
            "A page number within the paginated result set: an integer from 1, or `last`. Not validated "
            "up front, as in DRF: empty or absent is page 1, a repeated parameter counts by its last "
            'value, anything else outside the pages is 404 `{"detail": "Invalid page."}`.'
        ),
        "schema": {"examples": [1, 2, "last"]},
    },
    {
        "name": "pageSize",
        "in": "query",
        "required": False,
        "description": (
            f"Number of results to return per page: an integer, default {PAGE_SIZE}, capped at "
            f"{MAX_PAGE_SIZE}. Never refused, as in DRF: a value that is not a positive integer gives "
            "the default."
        ),
        "schema": {"examples": [PAGE_SIZE, MAX_PAGE_SIZE]},
    },
]
