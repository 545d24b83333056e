"""Coupons, promotion codes and how a discount settles on a document's lines (issue 17).

A coupon says how much (a percentage, or a fixed amount per currency), for how long (once, N billing
periods, forever) and on what (all lines, or listed products or prices). A promotion code is a
customer-facing name for a coupon with rules of its own. Whether a coupon or code may be redeemed is
decided here, and a refusal always carries a named `Refusal`, never a bare "no".

Settlement (ADR 0002): a discount is applied before tax. Its amount is rounded once (a percentage of
the covered lines' remaining amount; a fixed amount capped at it) and allocated over the covered lines
by largest remainder (`money.allocate`), so every line, and therefore every VAT rate's taxable base and
tax, carries its exact share. Stacked discounts apply in their stated order, each to what the earlier
ones left. Pure: the caller passes the instant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Final

from fiscus.domain.errors import FieldConflictError, InvalidFieldError
from fiscus.domain.money import Currency, allocate, round_minor, to_minor


class Duration(StrEnum):
    """How many billed documents a redeemed coupon reduces."""

    ONCE = "once"
    REPEATING = "repeating"
    FOREVER = "forever"


class Stacking(StrEnum):
    """Whether a customer or subscription may hold several discounts (an organisation setting)."""

    SEQUENTIAL = "sequential"  # all apply, in the order they were redeemed, each on what is left
    NONE = "none"  # one discount at a time: a second redemption is refused


class Refusal(StrEnum):
    """Why a coupon or promotion code does not apply: the RFC 9457 problem names it."""

    COUPON_INACTIVE = "coupon_inactive"
    COUPON_EXPIRED = "coupon_expired"
    COUPON_MAX_REDEMPTIONS = "coupon_max_redemptions"
    CODE_INACTIVE = "code_inactive"
    CODE_EXPIRED = "code_expired"
    CODE_MAX_REDEMPTIONS = "code_max_redemptions"
    WRONG_CUSTOMER = "wrong_customer"
    NOT_FIRST_PURCHASE = "not_first_purchase"
    BELOW_MINIMUM = "below_minimum_amount"
    CURRENCY_NOT_COVERED = "currency_not_covered"
    NOTHING_COVERED = "nothing_covered"
    ALREADY_REDEEMED = "already_redeemed"
    STACKING_NOT_ALLOWED = "stacking_not_allowed"
    NOT_ALLOWED = "not_allowed_by_organization"  # customers may not enter codes (portal, hosted page)
    DOCUMENT_FINAL = "document_final"  # an issued invoice never changes
    DOCUMENT_CLOSED = "document_closed"  # paid, void, converted, credited or a payment in flight


REFUSAL_TEXT: Final = {
    Refusal.COUPON_INACTIVE: "the coupon has been deactivated",
    Refusal.COUPON_EXPIRED: "the coupon's redeem-by date has passed",
    Refusal.COUPON_MAX_REDEMPTIONS: "the coupon has reached its maximum number of redemptions",
    Refusal.CODE_INACTIVE: "the promotion code has been deactivated",
    Refusal.CODE_EXPIRED: "the promotion code has expired",
    Refusal.CODE_MAX_REDEMPTIONS: "the promotion code has reached its maximum number of redemptions",
    Refusal.WRONG_CUSTOMER: "the promotion code is restricted to another customer",
    Refusal.NOT_FIRST_PURCHASE: "the promotion code is for a customer's first purchase only",
    Refusal.BELOW_MINIMUM: "the amount is below the promotion code's minimum",
    Refusal.CURRENCY_NOT_COVERED: "the coupon has no amount in this currency",
    Refusal.NOTHING_COVERED: "the coupon applies to none of the subscription's products or prices",
    Refusal.ALREADY_REDEEMED: "this coupon is already applied here",
    Refusal.STACKING_NOT_ALLOWED: "the organisation allows one discount at a time and one is active",
    Refusal.NOT_ALLOWED: "the organisation does not let customers enter promotion codes",
    Refusal.DOCUMENT_FINAL: "an issued invoice cannot change; the code can apply to a later document",
    Refusal.DOCUMENT_CLOSED: "the document is paid, void or converted, or a payment is under way",
}


class DiscountRefusedError(FieldConflictError):
    """A well-formed coupon or code that does not apply here (409); `reason` names why."""

    code = "discount_not_applicable"
    title = "The discount does not apply"

    def __init__(self, field_name: str, reason: Refusal) -> None:
        super().__init__(field_name, REFUSAL_TEXT[reason])
        self.reason = reason
        self.data["reason"] = reason.value


CODE_PATTERN: Final = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,63}$")


def normalize_code(code: str, field_name: str = "code") -> str:
    """A promotion code's canonical (upper-case) form: codes are case-insensitive."""
    canonical = code.strip().upper()
    if not CODE_PATTERN.match(canonical):
        raise InvalidFieldError(
            field_name, "must be 2 to 64 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return canonical


@dataclass(frozen=True, slots=True)
class Coupon:
    """The terms of a discount. Exactly one of `percent_off` (0 < p ≤ 100) and `amounts_off` (minor
    units per currency code) is set; empty `product_ids`, `price_ids` and `metric_ids` mean every line.
    A usage metric in scope covers the usage prices charging it: the caller resolves those into
    `price_ids` when it loads the coupon (a line knows its price, not its metric)."""

    id: int
    name: str
    duration: Duration
    percent_off: Decimal | None = None
    amounts_off: Mapping[str, int] = field(default_factory=dict)
    duration_periods: int | None = None
    product_ids: frozenset[int] = frozenset()
    price_ids: frozenset[int] = frozenset()
    metric_ids: frozenset[int] = frozenset()
    redeem_by: datetime | None = None
    max_redemptions: int | None = None
    times_redeemed: int = 0
    active: bool = True

    def __post_init__(self) -> None:
        check_terms(self.percent_off, self.amounts_off, self.duration, self.duration_periods)

    @property
    def periods(self) -> int | None:
        """How many documents it reduces; None: every one."""
        if self.duration is Duration.ONCE:
            return 1
        return self.duration_periods if self.duration is Duration.REPEATING else None

    def covers(self, product_id: int | None, price_id: int | None) -> bool:
        if not self.product_ids and not self.price_ids and not self.metric_ids:
            return True
        return (product_id is not None and product_id in self.product_ids) or (
            price_id is not None and price_id in self.price_ids
        )


def check_terms(
    percent_off: Decimal | None,
    amounts_off: Mapping[str, int],
    duration: Duration,
    duration_periods: int | None,
) -> None:
    """The shape rules of a coupon's terms, each failure naming its field."""
    if (percent_off is None) == (not amounts_off):
        raise InvalidFieldError("percent_off", "give exactly one of percent_off and amounts_off")
    if percent_off is not None and not (Decimal(0) < percent_off <= Decimal(100)):
        raise InvalidFieldError("percent_off", "must be greater than 0 and at most 100")
    for code, minor in amounts_off.items():
        if minor <= 0:
            raise InvalidFieldError(f"amounts_off.{code}", "must be greater than zero")
    if duration is Duration.REPEATING:
        if duration_periods is None or duration_periods < 1:
            raise InvalidFieldError("duration_periods", "a repeating coupon needs duration_periods ≥ 1")
    elif duration_periods is not None:
        raise InvalidFieldError("duration_periods", "only a repeating coupon has duration_periods")


@dataclass(frozen=True, slots=True)
class PromotionCode:
    """A customer-facing code for a coupon, with restrictions of its own."""

    id: int
    code: str
    coupon: Coupon
    active: bool = True
    expires_at: datetime | None = None
    max_redemptions: int | None = None
    times_redeemed: int = 0
    first_purchase_only: bool = False
    minimum_amount_minor: int | None = None
    minimum_currency: str | None = None
    customer_id: int | None = None


@dataclass(frozen=True, slots=True)
class Redeemer:
    """Who redeems, on what: what the rules need to know about the target."""

    customer_id: int
    currency: Currency
    amount_minor: int  # what one period (or the order) comes to before discounts, for minimum_amount
    has_purchased: bool  # an invoice was issued to this customer before
    covered: bool  # at least one of the target's lines is covered by the coupon
    active_coupon_ids: frozenset[int] = frozenset()  # discounts already in force on the target
    stacking: Stacking = Stacking.SEQUENTIAL


def coupon_refusal(coupon: Coupon, who: Redeemer, at: datetime) -> Refusal | None:
    """Why `coupon` cannot be redeemed by `who` at `at`, or None when it can."""
    if not coupon.active:
        return Refusal.COUPON_INACTIVE
    if coupon.redeem_by is not None and at >= coupon.redeem_by:
        return Refusal.COUPON_EXPIRED
    if coupon.max_redemptions is not None and coupon.times_redeemed >= coupon.max_redemptions:
        return Refusal.COUPON_MAX_REDEMPTIONS
    if coupon.percent_off is None and who.currency.code not in coupon.amounts_off:
        return Refusal.CURRENCY_NOT_COVERED
    if not who.covered:
        return Refusal.NOTHING_COVERED
    if coupon.id in who.active_coupon_ids:
        return Refusal.ALREADY_REDEEMED
    if who.stacking is Stacking.NONE and who.active_coupon_ids:
        return Refusal.STACKING_NOT_ALLOWED
    return None


def code_refusal(code: PromotionCode, who: Redeemer, at: datetime) -> Refusal | None:
    """Why a promotion code cannot be redeemed: its own rules first, then its coupon's."""
    if not code.active:
        return Refusal.CODE_INACTIVE
    if code.expires_at is not None and at >= code.expires_at:
        return Refusal.CODE_EXPIRED
    if code.max_redemptions is not None and code.times_redeemed >= code.max_redemptions:
        return Refusal.CODE_MAX_REDEMPTIONS
    if code.customer_id is not None and code.customer_id != who.customer_id:
        return Refusal.WRONG_CUSTOMER
    if code.first_purchase_only and who.has_purchased:
        return Refusal.NOT_FIRST_PURCHASE
    if code.minimum_amount_minor is not None and (
        code.minimum_currency != who.currency.code or who.amount_minor < code.minimum_amount_minor
    ):
        return Refusal.BELOW_MINIMUM
    return coupon_refusal(code.coupon, who, at)


# --- settlement --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiscountInput:
    """A discount in force on a document: the coupon's terms and the text that says why."""

    coupon: Coupon
    reason: str
    discount_id: int | None = None  # the attached discount it comes from (None: a preview)
    grant_id: int | None = None  # a promotional credit taken as a discount (ADR 0009); no coupon then


@dataclass(frozen=True, slots=True)
class CoverLine:
    """What settlement needs of a line: its amount before discounts and what it sells."""

    amount_minor: int
    product_id: int | None
    price_id: int | None


@dataclass(frozen=True, slots=True)
class SettledDiscount:
    """A discount's exact amount and its share on each line (`parts[i]` for line i, 0 if uncovered),
    with the reason a document prints and where it came from (the attached discount, its coupon)."""

    reason: str
    amount_minor: int
    parts: list[int]
    discount_id: int | None = None
    coupon_id: int | None = None
    grant_id: int | None = None


def settle_discounts(
    cur: Currency, lines: Sequence[CoverLine], discounts: Sequence[DiscountInput]
) -> list[SettledDiscount]:
    """Each discount's amount and its split over the lines it covers, in order, each on what the
    earlier ones left. A credit line (negative amount) is never discounted, and no line goes below 0."""
    remaining = [line.amount_minor for line in lines]
    settled: list[SettledDiscount] = []
    for d in discounts:
        covered = [
            i
            for i, line in enumerate(lines)
            if remaining[i] > 0 and d.coupon.covers(line.product_id, line.price_id)
        ]
        base = sum(remaining[i] for i in covered)
        amount = discount_amount(d.coupon, cur, base)
        parts = [0] * len(lines)
        if amount:
            for i, part in zip(covered, allocate(amount, [remaining[i] for i in covered]), strict=True):
                parts[i] = part
                remaining[i] -= part
        coupon_id = None if d.grant_id is not None else d.coupon.id
        settled.append(SettledDiscount(d.reason, amount, parts, d.discount_id, coupon_id, d.grant_id))
    return settled


def discount_amount(coupon: Coupon, cur: Currency, base_minor: int) -> int:
    """The discount on `base_minor`, rounded once and never more than the base."""
    if base_minor <= 0:
        return 0
    if coupon.percent_off is not None:
        exact = Decimal(base_minor).scaleb(-cur.exponent) * coupon.percent_off / 100
        return min(base_minor, to_minor(round_minor(exact, cur), cur))
    return min(base_minor, coupon.amounts_off.get(cur.code, 0))


def credit_input(
    grant_id: int, code: str, remaining_minor: int, product_ids: frozenset[int], reason: str
) -> DiscountInput:
    """A promotional credit grant as a fixed-amount discount of at most what is left of it: taxed as a
    discount (ADR 0009), so it comes off the lines before tax like a coupon."""
    terms = Coupon(0, reason, Duration.ONCE, amounts_off={code: remaining_minor}, product_ids=product_ids)
    return DiscountInput(terms, reason, None, grant_id)


def coupon_label(coupon: Coupon, cur: Currency | None = None) -> str:
    """The allowance reason printed on documents (EN 16931 BT-97/BT-139)."""
    if coupon.percent_off is not None:
        pct = coupon.percent_off.normalize()
        return f"{coupon.name} ({pct:f} % off)"
    return f"{coupon.name}"
