"""The shape every demo organisation's scenario has: its catalog, its customers, how they subscribe and
pay. A scenario is data; `fiscus.demo.simulation` replays it through the services."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Final

from fiscus.demo.metering import Metering, UsageCharge
from fiscus.domain.documents import DocumentType
from fiscus.domain.tax import TaxCategory
from fiscus.gateway import cards
from fiscus.services.catalog import ProductSpec
from fiscus.services.customers import CustomerSpec
from fiscus.services.organizations import OrganizationSpec

Items = tuple[tuple[int, int], ...]
"""(price id, quantity) pairs of a subscription or an order."""


@dataclass(frozen=True, slots=True)
class Offer:
    """A variant with its single price."""

    code: str
    name: str
    amount: str
    interval: str | None = None
    interval_count: int = 1
    limits: tuple[str, ...] = ()
    addon: bool = False
    tax_category: TaxCategory = TaxCategory.STANDARD
    usage: UsageCharge | None = None
    """A usage price (amount "0", billed in arrears): never drawn as a plan, add-on or order item, only
    added to metered subscriptions (`fiscus.demo.metering`)."""

    @property
    def cadence(self) -> tuple[str, int] | None:
        return (self.interval, self.interval_count) if self.interval else None


@dataclass(frozen=True, slots=True)
class Product:
    spec: ProductSpec
    offers: tuple[Offer, ...]


@dataclass(frozen=True, slots=True)
class Price:
    id: int
    product: str
    offer: Offer


@dataclass(slots=True)
class Catalog:
    prices: list[Price] = field(default_factory=list)

    def plans(self, cadence: tuple[str, int]) -> list[Price]:
        return [
            p
            for p in self.prices
            if p.offer.cadence == cadence and not p.offer.addon and Decimal(p.offer.amount) > 0
        ]

    def addons(self, cadence: tuple[str, int]) -> list[Price]:
        return [p for p in self.prices if p.offer.cadence == cadence and p.offer.addon and not p.offer.usage]

    def one_offs(self) -> list[Price]:
        return [p for p in self.prices if p.offer.cadence is None]


class Payer(StrEnum):
    """How a customer pays, which decides the card (a test card) they give the gateway."""

    CARD = "card"
    BANK = "bank"
    """No card: pays by bank transfer (recorded as paid) or leaves the document open for the hosted page."""
    SOFT_FIXED = "soft_fixed"
    """Insufficient funds until, after a couple of failures, they add a good card: a retry then succeeds."""
    SOFT = "soft"
    """Insufficient funds throughout: every retry fails, then the organisation's final action applies."""
    DO_NOT_HONOR = "do_not_honor"
    EXPIRED = "expired"
    TIMEOUT = "timeout"
    """A card whose charge succeeds at the gateway but whose answer is lost; the janitor settles it. They
    then switch to a good card, so only their first charge waits for the timeout."""


CARD_NUMBERS: Final = {
    Payer.CARD: cards.SUCCESS,
    Payer.SOFT_FIXED: cards.INSUFFICIENT_FUNDS,
    Payer.SOFT: cards.INSUFFICIENT_FUNDS,
    Payer.DO_NOT_HONOR: cards.DO_NOT_HONOR,
    Payer.EXPIRED: cards.EXPIRED_CARD,
    Payer.TIMEOUT: cards.TIMEOUT,
}
FIXED_AFTER_FAILURES = 2
"""A SOFT_FIXED customer adds a good card after this many failed charges."""


class Refund(StrEnum):
    PARTIAL = "partial"
    """A third of a recently paid invoice."""
    REST = "rest"
    """The rest of the invoice refunded partly before: any number of partial refunds up to the capture."""
    FULL = "full"


@dataclass(frozen=True, slots=True)
class Collection:
    """An organisation's payment settings and the payment events of its year."""

    capture_mode: str = "sale"
    retry_days: tuple[int, ...] = (1, 3, 5, 7)
    final_action: str = "leave_open"
    special: tuple[Payer, ...] = (Payer.SOFT_FIXED,)
    """Given to the customers who arrive earliest (after the heavy one), so their story plays out."""
    bank_percent: int = 30
    """Of the other customers, the share without a card."""
    refunds: tuple[tuple[int, Refund], ...] = ()
    """(day of the simulated year, kind)."""
    refund_reasons: tuple[str, str] = ("Goodwill credit for a service outage", "Refund of a cancelled order")
    """(partial, full or rest)."""
    partial_capture_day: int | None = None
    """From this day on, the next authorisation is captured only partly (authorize mode)."""


@dataclass(frozen=True, slots=True)
class Promotion:
    """A launch coupon (a percentage for some billed periods) and its promotion code, redeemed on every
    `every`-th new subscription of the year (issue 17)."""

    coupon: str
    percent_off: str
    periods: int
    code: str
    every: int = 3
    credit: str = "0"
    """Promotional credit (prepaid, in the organisation's currency) granted to every `every`-th new
    customer on arrival; the billing run takes it off their first documents before tax."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One demo organisation: what it sells, to whom, and how its year goes. Each lives in a module of
    its own under `fiscus.demo` exposing `scenario()`; `fiscus.demo.registry` lists them."""

    spec: OrganizationSpec
    products: tuple[Product, ...]
    customers: Callable[[random.Random], list[CustomerSpec]]
    cadences: tuple[tuple[str, int], ...]
    """Weighted (repeats count) choice of billing cadence for new subscriptions."""
    heavy_subscriptions: int
    pay_type: DocumentType
    paid_percent: int
    """Of the documents of customers without a card, the share paid by bank transfer."""
    pay_within_days: int
    collection: Collection = Collection()
    promotion: Promotion | None = None
    metering: Metering | None = None
    """Usage billed in arrears (issue 16): metrics, usage offers per plan, reported events."""
