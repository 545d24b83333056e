"""Summaries and descriptions of the native operations for `/docs` and `/redoc`, in one table.

A route's own docstring, when it has one, stays its description (it sits next to the code it
describes); this table gives every operation a summary a reader can scan and fills the descriptions
of routes without a docstring. tests/api/test_openapi_contract.py fails on an operation without both.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI

LIST = "Newest first, cursor-paginated (`limit`, `starting_after`, `ending_before`, `has_more`)."
ORG = "Organisation API keys only (a customer token gets 403)."

DOCS: Final[dict[str, tuple[str, str]]] = {
    "POST /api/v1/customers": (
        "Create a customer",
        "A buyer with its country, currency, locale, time zone and optional VAT ID (checked offline). "
        "Currency, locale and time zone default to the organisation's. " + ORG,
    ),
    "GET /api/v1/customers": ("List customers", LIST + " " + ORG),
    "GET /api/v1/customers/{customer_id}": (
        "Get a customer",
        "One customer; a customer token may read only its own customer.",
    ),
    "POST /api/v1/customers/{customer_id}": (
        "Update a customer",
        "Change the fields given; the others stay. Issued documents keep the buyer they were issued to. "
        + ORG,
    ),
    "POST /api/v1/products": ("Create a product", "A catalog product; `code` is unique. " + ORG),
    "GET /api/v1/products": ("List products", LIST + " " + ORG),
    "GET /api/v1/products/{product_id}": ("Get a product", ORG),
    "POST /api/v1/products/{product_id}": ("Update a product", ""),
    "POST /api/v1/products/{product_id}/variants": (
        "Create a variant",
        "A variant (plan) of the product; `code` is unique within the product. " + ORG,
    ),
    "GET /api/v1/variants": ("List variants", LIST + " Filter by `product_id`. " + ORG),
    "GET /api/v1/variants/{variant_id}": ("Get a variant", ORG),
    "POST /api/v1/variants/{variant_id}/prices": (
        "Create a price",
        "A recurring price (`interval` × `interval_count`) or a one-off price (no interval) of the "
        "variant, as a decimal string in the currency's minor units. " + ORG,
    ),
    "GET /api/v1/prices": ("List prices", LIST + " Filter by `variant_id`. " + ORG),
    "GET /api/v1/prices/{price_id}": ("Get a price", ORG),
    "POST /api/v1/subscriptions": (
        "Create a subscription",
        "Bill recurring prices to a customer in advance, from `start_at` (default now) or from the end "
        "of a trial. Unknown customer or price: 404; a price that does not fit (one-off, another "
        "currency, another interval): 409. " + ORG,
    ),
    "GET /api/v1/subscriptions": ("List subscriptions", LIST + " Filter by `customer_id`. " + ORG),
    "GET /api/v1/subscriptions/{subscription_id}": ("Get a subscription", ORG),
    "POST /api/v1/subscriptions/{subscription_id}": ("Change a subscription", ""),
    "POST /api/v1/subscriptions/{subscription_id}/cancel": (
        "Cancel a subscription",
        "Now (the unused time is credited on the next document) or at the end of the current period "
        "(`at_period_end`). " + ORG,
    ),
    "POST /api/v1/subscriptions/{subscription_id}/pause_collection": (
        "Pause a subscription's collection",
        "",
    ),
    "POST /api/v1/subscriptions/{subscription_id}/resume_collection": (
        "Resume a subscription's collection",
        "",
    ),
    "POST /api/v1/subscriptions/{subscription_id}/preview_change": ("Preview a subscription change", ""),
    "GET /api/v1/subscriptions/{subscription_id}/upcoming_document": ("Preview the next document", ""),
    "POST /api/v1/orders": ("Create an order", ""),
    "GET /api/v1/orders": ("List orders", LIST + " Filter by `customer_id`. " + ORG),
    "GET /api/v1/orders/{order_id}": ("Get an order", ORG),
    "GET /api/v1/documents": ("List documents", ""),
    "GET /api/v1/documents/{document_id}": (
        "Get a document",
        "A proforma, invoice or credit note with its lines; `expand[]` adds the customer and the "
        "subscription. A customer token may read its own customer's documents only.",
    ),
    "POST /api/v1/documents/{document_id}/issue": ("Issue a draft", ""),
    "POST /api/v1/documents/{document_id}/void": (
        "Void a document",
        "An open document that will not be paid keeps its number and is void from now on. " + ORG,
    ),
    "POST /api/v1/documents/{document_id}/mark_uncollectible": (
        "Mark a document uncollectible",
        "An open invoice written off as bad debt; it can still be paid later. " + ORG,
    ),
    "POST /api/v1/documents/{document_id}/mark_paid": ("Mark a document paid", ""),
    "POST /api/v1/documents/{document_id}/convert": ("Convert a proforma", ""),
    "POST /api/v1/documents/{document_id}/resend": ("Resend a document's email", ""),
    "GET /api/v1/documents/{document_id}/audit_events": (
        "List a document's audit events",
        "Who changed what and when, oldest first, with the values before and after. " + ORG,
    ),
    "POST /api/v1/documents/{document_id}/credit_notes": ("Credit an invoice", ""),
    "GET /api/v1/documents/{document_id}/credit_notes": ("List an invoice's credit notes", ""),
    "GET /api/v1/documents/{document_id}/pdf": ("Download a document's PDF", ""),
    "POST /api/v1/billing_runs": ("Start a billing run", ""),
    "GET /api/v1/billing_runs": ("List billing runs", LIST + " " + ORG),
    "GET /api/v1/billing_runs/{run_id}": (
        "Get a billing run",
        "Its status and progress: what was expected, billed and created, failures and totals. " + ORG,
    ),
    "POST /api/v1/webhook_endpoints": ("Register a webhook endpoint", ""),
    "GET /api/v1/webhook_endpoints": ("List webhook endpoints", LIST + " " + ORG),
    "GET /api/v1/webhook_endpoints/{endpoint_id}": (
        "Get a webhook endpoint",
        "The endpoint without its secret (shown only at creation and rotation). " + ORG,
    ),
    "POST /api/v1/webhook_endpoints/{endpoint_id}": (
        "Update a webhook endpoint",
        "Change the URL, event types, description or enabled flag; the others stay. " + ORG,
    ),
    "DELETE /api/v1/webhook_endpoints/{endpoint_id}": ("Delete a webhook endpoint", ""),
    "POST /api/v1/webhook_endpoints/{endpoint_id}/rotate_secret": ("Rotate a webhook secret", ""),
    "GET /api/v1/webhook_endpoints/{endpoint_id}/deliveries": ("List an endpoint's deliveries", ""),
    "GET /api/v1/webhook_deliveries/{delivery_id}": (
        "Get a webhook delivery",
        "One delivery of an event to an endpoint: status, attempts, last response. " + ORG,
    ),
    "POST /api/v1/webhook_deliveries/{delivery_id}/redeliver": ("Redeliver a webhook", ""),
    "POST /api/v1/customers/{customer_id}/payment_methods": ("Add a payment method", ""),
    "GET /api/v1/customers/{customer_id}/payment_methods": ("List a customer's payment methods", ""),
    "GET /api/v1/payment_methods/{payment_method_id}": (
        "Get a payment method",
        "A card: network, brand, last four digits, expiry, status. A customer token sees its own only.",
    ),
    "DELETE /api/v1/payment_methods/{payment_method_id}": ("Detach a payment method", ""),
    "POST /api/v1/customers/{customer_id}/default_payment_method": ("Set the default payment method", ""),
    "POST /api/v1/subscriptions/{subscription_id}/payment_method": (
        "Set a subscription's payment method",
        "",
    ),
    "POST /api/v1/documents/{document_id}/payments": ("Charge a document", ""),
    "GET /api/v1/documents/{document_id}/payments": ("List a document's payments", ""),
    "GET /api/v1/payments": ("List payments", ""),
    "GET /api/v1/payments/{payment_id}": (
        "Get a payment",
        "One attempt to collect a document: status, amounts authorised, captured and refunded, the card "
        "and the provider's error if it failed. A customer token sees its own only.",
    ),
    "POST /api/v1/payments/{payment_id}/capture": ("Capture a payment", ""),
    "POST /api/v1/payments/{payment_id}/void": ("Void a payment", ""),
    "POST /api/v1/documents/{document_id}/refunds": ("Refund a document", ""),
    "GET /api/v1/documents/{document_id}/refunds": ("List a document's refunds", ""),
    "GET /api/v1/payment_settings": ("Get the payment settings", ""),
    "PATCH /api/v1/payment_settings": ("Change the payment settings", ""),
    "POST /api/v1/payment_settings": ("Change the payment settings (POST)", ""),
    "GET /api/v1/organization/logo": (
        "Download the organisation's logo",
        "The logo printed on the organisation's documents, as uploaded (404 when there is none).",
    ),
    "GET /api/v1/organizations": (
        "List organisations",
        "Every organisation of this installation; for the installation's admin credential only (403 else).",
    ),
    "GET /healthz": ("Liveness", "200 while the process serves requests; touches nothing else."),
    "GET /readyz": (
        "Readiness",
        "200 when the database is reachable and migrated to the newest revision, else 503.",
    ),
}


def apply(app: FastAPI) -> None:
    """Give each operation in the table its summary, and its description where the route has none
    (a docstring), as the document is built."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                entry = DOCS.get(f"{method.upper()} {path}")
                if entry is None:
                    continue
                summary, description = entry
                operation["summary"] = summary
                if description and not operation.get("description"):
                    operation["description"] = description
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
