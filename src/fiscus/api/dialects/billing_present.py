"""Seed 000's invoice object (the integrations marketplace's DRF serializer), rendered from Fiscus's
documents and payments: the field mapping is in docs/dialects/billing.md."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Connection

from fiscus.api.dialects.common import HostedLink, billed_period, line_period
from fiscus.api.presenters import pdf_path
from fiscus.domain.documents import DocumentStatus
from fiscus.domain.money import Currency, from_minor
from fiscus.queries.documents import DocumentView, LineView
from fiscus.queries.payments import document_payments
from fiscus.queries.scope import Scope

STATUS: Final[Mapping[DocumentStatus, str]] = {
    DocumentStatus.DRAFT: "draft",
    DocumentStatus.OPEN: "waiting",
    DocumentStatus.PAID: "paid",
    DocumentStatus.VOID: "canceled",
    DocumentStatus.UNCOLLECTIBLE: "failed",
    DocumentStatus.CONVERTED: "converted",
}
"""The engine's document status → the dialect's invoice status (the document shows "waiting")."""

TIMESTAMP: Final = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, slots=True)
class PaymentError:
    """A failed payment attempt on an invoice, as the dialect prints it in `errors`."""

    id: int
    code: str
    description: str
    created_at: datetime
    invoice: int


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    """What payments know about one document, in the dialect's terms. The defaults are a document nobody
    tried to charge: no card, nothing captured or refunded, no failed attempt (a draft has no hosted page
    either). `card` 0 is "no card" (ids start at 1)."""

    card: int = 0
    captured_minor: int = 0
    refunded_minor: int = 0
    captured_at: datetime | None = None
    errors: tuple[PaymentError, ...] = ()
    transaction_url: str = ""


def payment_facts(
    conn: Connection, scope: Scope, docs: Sequence[DocumentView], hosted_link: HostedLink, base_url: str
) -> dict[int, PaymentFacts]:
    """The payment fields of a page of documents in two queries (`fiscus.queries.payments`):

    * `card`: the payment method (card) of the last attempt, by id;
    * `captured_amount` / `captured_at`: every capture received for the document (payments recorded
      outside Fiscus included) and when the last one settled;
    * `refund_amount`: what was refunded of it;
    * `errors`: the failed attempts, oldest first (`description` is the provider's message);
    * `transaction_url`: the signed hosted page of every issued document (`fiscus.api.links`): the card
      form while it is due, the receipt once paid, its state once void or converted. A draft has no
      hosted page (it was never sent): its link is its PDF preview (`pdf_path`, the same credential)."""
    found = document_payments(conn, scope, [doc.id for doc in docs])
    out: dict[int, PaymentFacts] = {}
    for doc in docs:
        url = hosted_link(doc) or f"{base_url}{pdf_path(doc.id)}"
        paid = found.get(doc.id)
        if paid is None:
            out[doc.id] = PaymentFacts(transaction_url=url)
            continue
        out[doc.id] = PaymentFacts(
            card=paid.payment_method_id or 0,
            captured_minor=paid.captured_minor,
            refunded_minor=paid.refunded_minor,
            captured_at=paid.last_captured_at,
            errors=tuple(
                PaymentError(f.attempt_id, f.code, f.message, f.created_at, f.document_id)
                for f in paid.failures
            ),
            transaction_url=url,
        )
    return out


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime(TIMESTAMP)


def _money(minor: int, cur: Currency) -> str:
    return str(from_minor(minor, cur))


def _unit_price(value: Decimal, cur: Currency) -> str:
    """The stored unit price, exact: at least the currency's minor digits, more when the price has them
    (a price may be finer than the minor unit; only line amounts are rounded)."""
    exact = value.normalize()
    exponent = exact.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -cur.exponent:
        exact = exact.quantize(cur.quantum)
    return format(exact, "f")


def _count_and_price(line: LineView, cur: Currency) -> tuple[int, str]:
    """`count` is an integer in the seed document (a positive small integer field), so a whole positive
    quantity is shown as it is, at the unit price; any other quantity (a prorated share of a period, a
    proration credit's negative share, a fractional order quantity) is one item priced at what the line
    charges (the gross for a tax-inclusive price, as `price` is then gross): count × price = the line
    either way (docs/dialects/billing.md)."""
    quantity = line.quantity
    # a discounted line (issue 17) is one item at what it charges net of its discounts
    if quantity > 0 and quantity == quantity.to_integral_value() and not line.allowances:
        return int(quantity), _unit_price(line.unit_price, cur)
    charged = line.amount_minor + (line.tax_minor if line.tax_inclusive else 0)
    return 1, _money(charged, cur)


def _integration(line: LineView) -> dict[str, Any] | None:
    if line.product is None:
        return None
    row = line.product.row
    return {
        "id": line.product.id,
        "code": row["code"],
        "name": row["name"],
        "slug": row["slug"],
        "comment": row["comment"],
        "slogan": row["slogan"],
        "type": row["type"],
        "detail": row["detail"],
        "icon": row["icon"],
        "image": row["image"],
        "image_alt": row["image_alt"],
        "disabled": row["disabled"],
        "extra": row["extra"],
        "demo_enabled": row["demo_enabled"],
        "demo_duration": row["demo_duration"],
        "tags": list(row["tags"]),
        "modules": list(row["modules"]),
        "visable": row["visible"],
    }


def _item(doc: DocumentView, line: LineView) -> dict[str, Any]:
    variant = line.variant
    count, price = _count_and_price(line, doc.currency)
    start, end = line_period(doc, line)
    return {
        "id": line.id,
        "integration": _integration(line),
        "variant": None
        if variant is None
        else {"id": variant.id, "name": variant.name, "code": variant.code, "limits": list(variant.limits)},
        "invoice": doc.id,
        "type": None if line.product is None else line.product.row["type"],
        "start_at": _timestamp(start),
        "end_at": _timestamp(end),
        "count": count,
        "price": price,
        "amount": _money(line.amount_minor, doc.currency),
        # an order line bills no subscription period: 0 (ids start at 1)
        "integration_period": line.subscription_period_id or 0,
    }


def present(doc: DocumentView, facts: PaymentFacts) -> dict[str, Any]:
    """One invoice object, fields in the document's order."""
    cur = doc.currency
    start, end = billed_period(doc)
    return {
        "id": doc.id,
        "tenant": doc.customer_id,
        "card": facts.card,
        "currency": cur.code,
        "status": STATUS[doc.status],
        "total": _money(doc.total_minor, cur),
        "captured_amount": _money(facts.captured_minor, cur),
        "refund_amount": _money(facts.refunded_minor, cur),
        # nothing captured ("0.00"): the document's issue instant, so the field always has a value
        "captured_at": _timestamp(facts.captured_at or doc.created_at),
        "start_at": _timestamp(start),
        "end_at": _timestamp(end),
        "items": [_item(doc, line) for line in doc.lines],
        "errors": [
            {
                "id": e.id,
                "code": e.code,
                "description": e.description,
                "created_at": _timestamp(e.created_at),
                "invoice": e.invoice,
            }
            for e in facts.errors
        ],
        "transaction_url": facts.transaction_url,
        "created_at": _timestamp(doc.created_at),
    }
