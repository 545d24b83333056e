"""Native API presenters: engine rows and document views → JSON-ready dicts (schemas.py documents
their shape). Money is printed with the currency's minor units, never through float."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import msgspec
from fastapi import Response

from fiscus.domain.documents import DocumentStatus
from fiscus.domain.money import Currency, currency
from fiscus.queries.documents import DocumentView, Stamp
from fiscus.queries.payments import DocumentPayments

_encoder = msgspec.json.Encoder(decimal_format="string")


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(payload), status_code=status, media_type="application/json")


def money(minor: int, cur: Currency) -> str:
    """Integer minor units as a decimal string with the currency's scale, by integer arithmetic
    (the same text as `str(from_minor(minor, cur))`, which the tests check, without Decimal work)."""
    if cur.exponent == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**cur.exponent)
    return f"{sign}{whole}.{fraction:0{cur.exponent}d}"


def customer(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "customer",
        "name": row["name"],
        "email": row["email"],
        "country": row["country"],
        "currency": row["currency"],
        "vat_id": row["vat_id"],
        "locale": row["locale"],
        "timezone": row["timezone"],
        "address": {
            "line1": row["address_line1"],
            "line2": row["address_line2"],
            "city": row["city"],
            "postal_code": row["postal_code"],
            "country": row["country"],
        },
        "default_payment_method_id": row["default_payment_method_id"],
        "external_id": row.get("external_id"),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


PRODUCT_FIELDS = (
    "code",
    "name",
    "slug",
    "comment",
    "slogan",
    "type",
    "detail",
    "icon",
    "image",
    "image_alt",
    "disabled",
    "extra",
    "demo_enabled",
    "demo_duration",
    "tags",
    "modules",
    "visible",
    "created_at",
)


def product(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "object": "product", **{k: row[k] for k in PRODUCT_FIELDS}}


def variant(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "variant",
        "product_id": row["product_id"],
        "code": row["code"],
        "name": row["name"],
        "limits": list(row["limits"]),
        "created_at": row["created_at"],
    }


def price(row: dict[str, Any]) -> dict[str, Any]:
    cur = currency(row["currency"])
    amount = row["unit_amount"]
    shown = amount if -int(amount.as_tuple().exponent) > cur.exponent else amount.quantize(cur.quantum)
    return {
        "id": row["id"],
        "object": "price",
        "variant_id": row["variant_id"],
        "currency": row["currency"],
        "unit_amount": str(shown),
        "interval": row["interval"],
        "interval_count": row["interval_count"],
        "tax_inclusive": row["tax_inclusive"],
        "tax_category": row["tax_category"],
        "active": row["active"],
        "created_at": row["created_at"],
    }


SUBSCRIPTION_FIELDS = (
    "customer_id",
    "status",
    "currency",
    "interval",
    "interval_count",
    "billing_anchor",
    "start_at",
    "trial_end",
    "current_period_start",
    "current_period_end",
    "next_period_start",
    "cancel_at",
    "canceled_at",
    "ended_at",
    "payment_method_id",
    "created_at",
    "updated_at",
)


def subscription(row: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "subscription",
        **{k: row[k] for k in SUBSCRIPTION_FIELDS},
        "items": items,
    }


def order(row: dict[str, Any], items: list[dict[str, Any]], document_ids: list[int]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "order",
        "customer_id": row["customer_id"],
        "status": row["status"],
        "currency": row["currency"],
        "items": items,
        "document_ids": document_ids,
        "created_at": row["created_at"],
        "billed_at": row["billed_at"],
    }


def pdf_path(document_id: int) -> str:
    """Where a document's PDF is served (routes/files.py), for every presenter that links to it."""
    return f"/api/v1/documents/{document_id}/pdf"


def document(
    doc: DocumentView, payments: DocumentPayments | None, *, lines: bool, hosted_url: str | None = None
) -> dict[str, Any]:
    """The native document; `payments` is its payment history (None: nobody tried to charge it) and
    `hosted_url` its hosted page (`fiscus.api.links`; None for drafts and credit notes)."""
    cur = doc.currency
    history = payments or DocumentPayments(doc.id)
    out: dict[str, Any] = {
        "id": doc.id,
        "object": "document",
        "livemode": doc.livemode,
        "type": doc.type.value,
        "status": doc.status.value,
        "number": doc.number,
        "series": doc.series,
        "customer_id": doc.customer_id,
        "subscription_id": doc.subscription_id,
        "currency": cur.code,
        "subtotal": money(doc.subtotal_minor, cur),
        "discount": money(doc.discount_minor, cur),
        "tax": money(doc.tax_minor, cur),
        "total": money(doc.total_minor, cur),
        "amount_paid": money(doc.amount_paid_minor, cur),
        "amount_due": money(doc.amount_due_minor, cur),
        "period_start": doc.period_start,
        "period_end": doc.period_end,
        "issue_date": doc.issue_date,
        "due_date": doc.due_date,
        "issued_at": doc.issued_at,
        "created_at": doc.created_at,
        "updated_at": doc.updated_at,
        "paid_at": doc.paid_at,
        "voided_at": doc.voided_at,
        "seller": doc.seller,
        "buyer": doc.buyer,
        "notes": doc.notes,
        "tax_breakdown": [
            {
                "treatment": x.treatment,
                "rate": str(x.rate),
                "base": money(x.base_minor, cur),
                "tax": money(x.tax_minor, cur),
                "note": x.note,
            }
            for x in doc.taxes
        ],
        "order_ids": doc.order_ids,
        "converted_from_id": doc.converted_from_id,
        "converted_to_id": doc.converted_to_id,
        "replaces_id": doc.replaces_id,
        "replaced_by_id": doc.replaced_by_id,
        "pdf_url": None if doc.status is DocumentStatus.DRAFT else pdf_path(doc.id),
        "hosted_url": hosted_url,
        "corrected_document_id": doc.corrected_document_id,
        "reason": doc.reason,
        "credit_disposition": doc.credit_disposition,
        "amount_credited": money(doc.amount_credited_minor, cur),
        "amount_refunded": money(doc.amount_refunded_minor, cur),
        "next_payment_attempt_at": doc.next_payment_attempt_at,
        "payment_attempt_count": history.attempt_count,
        "last_payment_attempt_at": history.last_attempt_at,
        "last_payment_attempt_status": history.last_attempt_status and history.last_attempt_status.value,
    }
    if lines:
        out["lines"] = [
            {
                "id": ln.id,
                "position": ln.position,
                "kind": ln.kind,
                "description": ln.description,
                "product_id": ln.product_id,
                "variant_id": ln.variant.id if ln.variant else None,
                "price_id": ln.price_id,
                "subscription_period_id": ln.subscription_period_id,
                "order_id": ln.order_id,
                "period_start": ln.period_start,
                "period_end": ln.period_end,
                "quantity": str(ln.quantity),
                "unit_price": str(ln.unit_price),
                "proration_ratio": str(ln.ratio),
                "tax_inclusive": ln.tax_inclusive,
                "tax_treatment": ln.tax_treatment,
                "tax_rate": str(ln.tax_rate),
                "amount": money(ln.amount_minor, cur),
                "tax": money(ln.tax_minor, cur),
                "discount": money(ln.discount_minor, cur),
                "discounts": [
                    {
                        "reason": a.reason,
                        "amount": money(a.amount_minor, cur),
                        "coupon_id": a.coupon_id,
                        "discount_id": a.discount_id,
                    }
                    for a in ln.allowances
                ],
            }
            for ln in doc.lines
        ]
    return out


def billing_run(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "status",
        "at",
        "expected",
        "subscriptions_billed",
        "orders_billed",
        "documents_created",
        "failures",
        "totals",
        "started_at",
        "finished_at",
    )
    return {"id": row["id"], "object": "billing_run", **{k: row[k] for k in keys}}


class RenderedCache:
    """Rendered JSON of documents, keyed by (id, stamp, variant), least recently used out.

    Safe because a document's figures never change once written and every state change moves its
    stamp (see `Stamp`); a stale entry can only be missed, never served. One per process.
    """

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[int, Stamp, str], bytes] = OrderedDict()

    def get(self, key: tuple[int, Stamp, str]) -> bytes | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: tuple[int, Stamp, str], value: bytes) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


def encode(payload: Any) -> bytes:
    return _encoder.encode(payload)


def list_bytes(items: list[bytes], has_more: bool, url: str) -> Response:
    """A list envelope around already-encoded items (same JSON as `json_response(envelope(...))`)."""
    body = b"".join(
        (
            b'{"object":"list","data":[',
            b",".join(items),
            b'],"has_more":',
            b"true" if has_more else b"false",
            b',"url":',
            _encoder.encode(url),
            b"}",
        )
    )
    return Response(body, media_type="application/json")


Renderer = Callable[[list[int]], list[tuple[int, Stamp, bytes]]]
"""Renders the given document ids: (id, updated_at, encoded JSON) for each one still visible."""


def cached_items(
    cache: RenderedCache, stamps: list[tuple[int, Stamp]], variant: str, render: Renderer
) -> list[bytes]:
    """The encoded documents of a page in page order, rendering (and caching) only those not cached
    at their current `updated_at`. `variant` names the presenter and whatever else shapes its output
    (e.g. the public base URL), so two presentations never share an entry."""
    found = {doc_id: cache.get((doc_id, stamp, variant)) for doc_id, stamp in stamps}
    missing = [doc_id for doc_id, body in found.items() if body is None]
    if missing:
        for doc_id, stamp, body in render(missing):
            cache.put((doc_id, stamp, variant), body)
            found[doc_id] = body
    return [body for body in found.values() if body is not None]
