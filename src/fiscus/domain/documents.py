"""Proformas and invoices: how their lines, taxes and totals are computed, and how their state moves.

Computation is pure: lines in, settled lines and a per-rate tax breakdown out. Each line amount is
rounded once (`round_minor`); tax is rounded once per the organisation's `TaxRounding`; totals are
sums of those settled parts, so `total == subtotal + tax_total == Σ line amounts + Σ line taxes`
holds exactly by construction (and `fiscus reconcile` checks it on stored documents).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Final

from fiscus.domain.discounts import CoverLine, DiscountInput, SettledDiscount, settle_discounts
from fiscus.domain.errors import FieldConflictError, InvalidFieldError, InvalidStateError
from fiscus.domain.money import ROUNDING, Currency, allocate, multiply, round_minor, to_minor
from fiscus.domain.tax import LineTax, TaxRounding, TaxTreatment


class DocumentType(StrEnum):
    PROFORMA = "proforma"
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class DocumentStatus(StrEnum):
    """draft → open (issued) → paid | void | uncollectible; a proforma ends converted or void."""

    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"
    CONVERTED = "converted"


class DocumentAction(StrEnum):
    ISSUE = "issue"
    PAY = "pay"
    VOID = "void"
    MARK_UNCOLLECTIBLE = "mark_uncollectible"
    CONVERT = "convert"
    DISCARD = "discard"
    """A draft nobody will issue (its subscription was cancelled): void, never numbered."""


_S = DocumentStatus
_A = DocumentAction
TRANSITIONS: Final[dict[DocumentType, dict[tuple[DocumentStatus, DocumentAction], DocumentStatus]]] = {
    DocumentType.INVOICE: {
        (_S.DRAFT, _A.ISSUE): _S.OPEN,
        (_S.DRAFT, _A.DISCARD): _S.VOID,
        (_S.OPEN, _A.PAY): _S.PAID,
        (_S.OPEN, _A.VOID): _S.VOID,
        (_S.OPEN, _A.MARK_UNCOLLECTIBLE): _S.UNCOLLECTIBLE,
        (_S.UNCOLLECTIBLE, _A.PAY): _S.PAID,
        (_S.UNCOLLECTIBLE, _A.VOID): _S.VOID,
    },
    DocumentType.PROFORMA: {
        (_S.DRAFT, _A.ISSUE): _S.OPEN,
        (_S.DRAFT, _A.DISCARD): _S.VOID,
        (_S.OPEN, _A.CONVERT): _S.CONVERTED,
        (_S.OPEN, _A.VOID): _S.VOID,
    },
    DocumentType.CREDIT_NOTE: {
        (_S.DRAFT, _A.ISSUE): _S.OPEN,
    },
}
"""Every allowed edge of the state machine; anything else is refused."""


def transition(doc_type: DocumentType, status: DocumentStatus, action: DocumentAction) -> DocumentStatus:
    """The status after `action`, or InvalidStateError naming the current status."""
    target = TRANSITIONS[doc_type].get((status, action))
    if target is None:
        raise InvalidStateError(
            f"a {doc_type.value} in status '{status.value}' cannot {action.value.replace('_', ' ')}",
            status=status.value,
            action=action.value,
        )
    return target


class LineKind(StrEnum):
    SUBSCRIPTION = "subscription"
    ORDER = "order"
    PRORATION = "proration"
    USAGE = "usage"
    """A usage charge's part, billed in arrears (services/usage_billing.py)."""


QUANTITY_PLACES: Final = 10
"""Decimal places of a prorated quantity (ADR 0006): enough that quantity × price equals the exact
pro-rata amount to the minor unit except within 10⁻¹⁰ × quantity × price of a rounding tie."""


def prorated_quantity(quantity: Decimal, ratio: Fraction, *, credit: bool = False) -> Decimal:
    """Rounding boundary 0 (ADR 0006): the share `ratio` of `quantity` units as a decimal quantity,
    rounded once to `QUANTITY_PLACES` with the engine's rounding mode; negative for a credit.

    The period's share goes into the quantity, not the price, so every line reads
    quantity × non-negative unit price = amount, which EN 16931 (BR-27) and any reader can check.
    """
    if ratio == 1:  # a whole period: the quantity as given, exact (an order's 3.333333333333 stays so)
        return -quantity if credit else quantity
    exact = multiply(quantity, ratio)
    rounded = exact.quantize(Decimal(1).scaleb(-QUANTITY_PLACES), rounding=ROUNDING)
    rounded = rounded.quantize(Decimal(1)) if rounded == rounded.to_integral_value() else rounded.normalize()
    return -rounded if credit else rounded


@dataclass(frozen=True, slots=True)
class LineInput:
    """A line before settlement: its amount is quantity × unit price, rounded once.

    `ratio` records the share of a period the line covers (short first periods, proration); it is
    already part of `quantity` (see `prorated_quantity`) and is kept only to be printed, never multiplied.
    """

    description: str
    quantity: Decimal
    unit_price: Decimal
    tax: LineTax
    tax_inclusive: bool = False
    ratio: Fraction = Fraction(1)
    kind: LineKind = LineKind.SUBSCRIPTION
    product_id: int | None = None
    variant_id: int | None = None
    price_id: int | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    subscription_period_id: int | None = None
    order_id: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.quantity, Decimal) or not isinstance(self.unit_price, Decimal):
            raise TypeError("quantity and unit_price must be Decimal")


@dataclass(frozen=True, slots=True)
class SettledLine:
    """A line as printed: `amount_minor` is the net amount (after its discounts and, for a
    tax-inclusive price, its tax), `tax_minor` its share of tax, `discount_minor` the discounts'
    share on it (issue 17; taken off quantity × unit price before tax)."""

    source: LineInput
    amount_minor: int
    tax_minor: int
    discount_minor: int = 0

    @property
    def gross_minor(self) -> int:
        return self.amount_minor + self.tax_minor


@dataclass(frozen=True, slots=True)
class TaxBreakdownRow:
    treatment: TaxTreatment
    rate: Decimal
    base_minor: int
    tax_minor: int
    note: str


@dataclass(frozen=True, slots=True)
class ComputedDocument:
    currency: Currency
    lines: list[SettledLine]
    breakdown: list[TaxBreakdownRow]
    subtotal_minor: int
    tax_minor: int
    total_minor: int
    notes: list[str] = field(default_factory=list)
    discounts: list[SettledDiscount] = field(default_factory=list)

    @property
    def discount_minor(self) -> int:
        """Σ discounts: subtotal = Σ (quantity × price) − this, for tax-exclusive lines."""
        return sum(d.amount_minor for d in self.discounts)


MAX_QUANTITY: Final = Decimal(10) ** 9
"""Units on a line are below a billion (the API's bound on `quantity`)."""
MAX_UNIT_AMOUNT: Final = Decimal(10) ** 12
"""A unit price is below a trillion in its currency (the API's bound on `unit_amount`)."""
MAX_LINE_MINOR: Final = 10**15
"""A line's amount (quantity × unit price) is at most 10¹⁵ minor units, so the sums of a document's
lines, taxes and discounts stay far inside the signed 64-bit columns that store them: an overflow is
impossible by construction, not caught after the fact."""


def line_too_large(quantity: Decimal, unit_price: Decimal, cur: Currency) -> bool:
    """Whether quantity × unit price exceeds MAX_LINE_MINOR (checked before any rounding, so a huge
    product never reaches `quantize`)."""
    return abs(quantity * unit_price).scaleb(cur.exponent) > MAX_LINE_MINOR


def check_line_size(field: str, quantity: Decimal, unit_price: Decimal, cur: Currency) -> None:
    """Refuse a quantity whose line would exceed MAX_LINE_MINOR with the price it goes with: a 409
    naming the quantity (the stored price decides, not the request alone)."""
    if line_too_large(quantity, unit_price, cur):
        limit = Decimal(MAX_LINE_MINOR).scaleb(-cur.exponent)
        raise FieldConflictError(field, f"quantity × unit price must not exceed {limit:f} {cur.code}")


def check_money_size(field: str, amount: Decimal, cur: Currency) -> None:
    """An amount a request gives in a currency it names (a credit grant, a coupon's fixed amount) is
    below MAX_LINE_MINOR minor units, like a line: a 422 naming the field."""
    if abs(amount).scaleb(cur.exponent) >= MAX_LINE_MINOR:
        limit = Decimal(MAX_LINE_MINOR).scaleb(-cur.exponent)
        raise InvalidFieldError(field, f"must be less than {limit:f} {cur.code}")


def line_amount_minor(quantity: Decimal, unit_price: Decimal, cur: Currency) -> int:
    """Rounding boundary 1: the line amount, quantity × unit price, rounded once. Reconcile checks
    every stored line against it. Guarded: services refuse larger lines when they are written."""
    check_line_size("quantity", quantity, unit_price, cur)
    return to_minor(round_minor(quantity * unit_price, cur), cur)


def _tax_minor(base_minor: int, rate: Decimal, inclusive: bool, cur: Currency) -> int:
    """Rounding boundary 2: a tax amount, rounded once (exclusive: base × r; inclusive: gross × r/(1+r))."""
    base = Decimal(base_minor).scaleb(-cur.exponent)
    exact = base * rate / (1 + rate) if inclusive else base * rate
    return to_minor(round_minor(exact, cur), cur)


def compute_document(
    cur: Currency,
    inputs: Sequence[LineInput],
    rounding: TaxRounding,
    discounts: Sequence[DiscountInput] = (),
    prior: Sequence[SettledDiscount] = (),
) -> ComputedDocument:
    """Settle lines and taxes for one document in one currency; `discounts` (in stacking order) come
    off the line amounts before tax (`domain/discounts.py: settle_discounts`). `prior` are discounts
    already settled on these lines (a reissued proforma keeps its own to the minor unit): they stay as
    they are and the new ones settle on what they left."""
    for i, line in enumerate(inputs):
        if line.unit_price < 0:  # EN 16931 BR-27; a credit is a negative quantity (ADR 0006)
            raise InvalidFieldError(f"lines.{i}.unit_price", "must not be negative")
        if line.kind is LineKind.ORDER and line.quantity <= 0:
            raise InvalidFieldError(f"lines.{i}.quantity", "must be greater than zero")
        if line.kind is LineKind.SUBSCRIPTION and line.quantity < 0:
            raise InvalidFieldError(f"lines.{i}.quantity", "must not be negative")
    amounts = [line_amount_minor(line.quantity, line.unit_price, cur) for line in inputs]
    held = [sum(d.parts[i] for d in prior) for i in range(len(inputs))]
    settled_discounts = [
        *prior,
        *settle_discounts(
            cur,
            [
                CoverLine(a - h, line.product_id, line.price_id)
                for a, h, line in zip(amounts, held, inputs, strict=True)
            ],
            discounts,
        ),
    ]
    off = [sum(d.parts[i] for d in settled_discounts) for i in range(len(inputs))]
    amounts = [a - o for a, o in zip(amounts, off, strict=True)]
    taxes = [0] * len(inputs)
    if rounding is TaxRounding.LINE:
        for i, line in enumerate(inputs):
            taxes[i] = _tax_minor(amounts[i], line.tax.rate, line.tax_inclusive, cur)
    else:
        groups: dict[tuple[TaxTreatment, Decimal, bool], list[int]] = defaultdict(list)
        for i, line in enumerate(inputs):
            groups[(line.tax.treatment, line.tax.rate, line.tax_inclusive)].append(i)
        for (_treatment, rate, inclusive), members in groups.items():
            base = sum(amounts[i] for i in members)
            group_tax = _tax_minor(base, rate, inclusive, cur)
            for i, part in zip(members, allocate(group_tax, [amounts[i] for i in members]), strict=True):
                taxes[i] = part
    settled = []
    for line, amount, tax, d in zip(inputs, amounts, taxes, off, strict=True):
        net = amount - tax if line.tax_inclusive else amount
        settled.append(SettledLine(line, net, tax, d))
    doc = assemble_document(cur, settled)
    return replace(doc, discounts=[d for d in settled_discounts if d.amount_minor])


def assemble_document(cur: Currency, settled: list[SettledLine]) -> ComputedDocument:
    """A document from settled lines: the per-rate breakdown and the totals are sums, never rounded."""
    rows: dict[tuple[TaxTreatment, Decimal], list[SettledLine]] = defaultdict(list)
    for s in settled:
        rows[(s.source.tax.treatment, s.source.tax.rate)].append(s)
    breakdown = [
        TaxBreakdownRow(
            treatment=treatment,
            rate=rate,
            base_minor=sum(s.amount_minor for s in members),
            tax_minor=sum(s.tax_minor for s in members),
            note=members[0].source.tax.note,
        )
        for (treatment, rate), members in sorted(rows.items(), key=lambda kv: (-kv[0][1], kv[0][0].value))
    ]
    subtotal = sum(s.amount_minor for s in settled)
    tax_total = sum(s.tax_minor for s in settled)
    notes = sorted({row.note for row in breakdown if row.note})
    return ComputedDocument(cur, settled, breakdown, subtotal, tax_total, subtotal + tax_total, notes)


@functools.lru_cache(maxsize=4096)  # pure; a billing run asks for the same few prices' texts per line
def line_description(product: str, variant: str) -> str:
    """A price's line text, "Product — variant", without saying the product twice: the words the
    variant's name repeats from the end of the product's are dropped ("Eval Pro" + "Eval Pro, monthly"
    or "Pro, monthly" → "Eval Pro — monthly"), and a variant that only repeats it leaves the product."""
    product, variant = product.strip(), variant.strip()
    p_words, v_words = product.split(), variant.split()
    for n in range(min(len(p_words), len(v_words)), 0, -1):
        head = [w.rstrip(",;:") for w in v_words[:n]]
        if [w.casefold() for w in head] == [w.casefold() for w in p_words[-n:]]:
            variant = " ".join(v_words[n:]).lstrip(",;:-–— ").strip()
            break
    return f"{product} — {variant}" if variant else product
