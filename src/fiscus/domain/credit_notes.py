"""Credit notes: which lines, amounts and taxes a correction of an issued invoice carries.

Sign convention: a credit note (EN 16931 type 381) carries positive quantities and amounts; the
document type says it is a credit. So `total == subtotal + tax == Σ line amounts + Σ line taxes`
holds as on any other document, and reconcile's checks apply unchanged.

Each credit-note line credits one invoice line and is stored at that invoice line's position, so what
every line still has open is `invoice line − Σ earlier credit-note lines at the same position`. No
credit may exceed that, per line (net and tax separately) or in total.

Pure: settled invoice lines and earlier credits in, settled credit-note lines out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from fiscus.domain.documents import ComputedDocument, SettledLine, assemble_document, line_amount_minor
from fiscus.domain.errors import FieldConflictError, InvalidFieldError
from fiscus.domain.money import Currency, allocate, from_minor, round_minor, to_minor
from fiscus.domain.tax import TaxTreatment


class CreditMode(StrEnum):
    FULL = "full"
    LINES = "lines"
    AMOUNT = "amount"


class CreditDisposition(StrEnum):
    """What the credit does: lower what the customer owes, go back as a refund, or stay as a balance."""

    REDUCE_DUE = "reduce_due"
    REFUND = "refund"
    CUSTOMER_CREDIT = "customer_credit"


@dataclass(frozen=True, slots=True)
class CreditableLine:
    """An invoice line as settled, with what earlier credit notes already credited on it."""

    position: int
    line: SettledLine
    credited_amount_minor: int = 0
    credited_tax_minor: int = 0

    @property
    def open_amount_minor(self) -> int:
        return self.line.amount_minor - self.credited_amount_minor

    @property
    def open_tax_minor(self) -> int:
        return self.line.tax_minor - self.credited_tax_minor

    @property
    def open_gross_minor(self) -> int:
        return self.open_amount_minor + self.open_tax_minor

    @property
    def untouched(self) -> bool:
        return self.credited_amount_minor == 0 and self.credited_tax_minor == 0

    def discounted(self, cur: Currency) -> bool:
        """A discount came off the line (issue 17): it no longer reads quantity × unit price = amount,
        so a credit restates what was charged (1 × the net), never the price list."""
        src = self.line.source
        charged = self.line.amount_minor + (self.line.tax_minor if src.tax_inclusive else 0)
        return charged != line_amount_minor(src.quantity, src.unit_price, cur)


@dataclass(frozen=True, slots=True)
class LineSelection:
    """A line to credit by its invoice position; no quantity credits all that is still open on it."""

    position: int
    quantity: Decimal | None = None


@dataclass(frozen=True, slots=True)
class CreditRequest:
    mode: CreditMode
    lines: Sequence[LineSelection] = ()
    amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class CreditNote:
    """The credit note's figures, and for each of its lines the invoice position it credits."""

    computed: ComputedDocument
    positions: list[int]


def compute_credit_note(
    cur: Currency, invoice_lines: Sequence[CreditableLine], request: CreditRequest
) -> CreditNote:
    """Settle a credit note for `request` against what is still open on the invoice."""
    by_position = {c.position: c for c in invoice_lines}
    open_total = sum(c.open_gross_minor for c in invoice_lines)
    if open_total <= 0:
        raise FieldConflictError("mode", "the invoice is already fully credited")
    if request.mode is CreditMode.FULL:
        # every line with something open, a proration credit (negative) too: the note then mirrors
        # the invoice and its total is what the invoice still has open, not more
        parts = [_remainder(cur, c) for c in invoice_lines if c.open_gross_minor != 0]
    elif request.mode is CreditMode.LINES:
        parts = [p for p in _by_lines(cur, by_position, request.lines) if p[1].gross_minor > 0]
    else:
        parts = [
            p for p in _by_amount(cur, invoice_lines, request.amount, open_total) if p[1].gross_minor > 0
        ]
    if not parts:
        raise FieldConflictError("mode", "nothing to credit")
    parts.sort(key=lambda p: p[0])
    return CreditNote(_document(cur, [s for _pos, s in parts]), [pos for pos, _s in parts])


def _remainder(cur: Currency, c: CreditableLine) -> tuple[int, SettledLine]:
    """All that is open on a line: as invoiced when untouched, else one unit of the open amount."""
    if c.untouched and not c.discounted(cur):
        return c.position, c.line
    return c.position, _settled(cur, c, c.open_amount_minor, c.open_tax_minor)


def _settled(cur: Currency, c: CreditableLine, amount_minor: int, tax_minor: int) -> SettledLine:
    """A line crediting `amount_minor` net and `tax_minor` tax, printed as 1 × the net amount (a
    share of an amount has no meaningful quantity); a negative amount (what is left of a proration
    credit) as −1 × its size, since a price is never negative (EN 16931 BR-27, ADR 0006)."""
    source = replace(
        c.line.source,
        quantity=Decimal(1 if amount_minor >= 0 else -1),
        unit_price=from_minor(abs(amount_minor), cur),
        tax_inclusive=False,
        ratio=Fraction(1),
    )
    return SettledLine(source, amount_minor, tax_minor)


def _by_lines(
    cur: Currency, by_position: dict[int, CreditableLine], selections: Sequence[LineSelection]
) -> list[tuple[int, SettledLine]]:
    if not selections:
        raise InvalidFieldError("lines", "name at least one line to credit")
    seen: set[int] = set()
    out: list[tuple[int, SettledLine]] = []
    for i, sel in enumerate(selections):
        c = by_position.get(sel.position)
        if c is None:
            raise FieldConflictError(f"lines.{i}.position", f"the invoice has no line {sel.position}")
        if sel.position in seen:
            raise InvalidFieldError(f"lines.{i}.position", f"line {sel.position} is named twice")
        seen.add(sel.position)
        if c.line.amount_minor < 0:
            raise FieldConflictError(
                f"lines.{i}.position",
                f"line {sel.position} is itself a credit; only a full credit note gives it back",
            )
        if c.open_gross_minor <= 0:
            raise FieldConflictError(f"lines.{i}.position", f"line {sel.position} is already fully credited")
        if sel.quantity is None:
            out.append(_remainder(cur, c))
            continue
        out.append((c.position, _partial(cur, c, sel.quantity, f"lines.{i}.quantity")))
    return out


def _partial(cur: Currency, c: CreditableLine, quantity: Decimal, field: str) -> SettledLine:
    """`quantity` of the invoiced units: the amount rounded once from quantity × unit price,
    the tax the same share of the line's invoiced tax (so crediting every unit gives back exactly the
    invoiced tax, whatever the invoice's tax rounding was)."""
    src = c.line.source
    if quantity <= 0:
        raise InvalidFieldError(field, "must be greater than zero")
    if quantity > src.quantity:
        raise FieldConflictError(field, f"must not exceed the invoiced quantity {src.quantity}")
    share = Decimal(c.line.tax_minor) * quantity / src.quantity
    tax = to_minor(round_minor(share.scaleb(-cur.exponent), cur), cur)
    if c.discounted(cur):  # the same share of what was charged, stated as 1 × that amount
        net_share = Decimal(c.line.amount_minor) * quantity / src.quantity
        amount = to_minor(round_minor(net_share.scaleb(-cur.exponent), cur), cur)
        if amount > c.open_amount_minor or tax > c.open_tax_minor:
            raise FieldConflictError(field, f"crediting {quantity} would exceed what is still open")
        return _settled(cur, c, amount, tax)
    base = line_amount_minor(quantity, src.unit_price, cur)
    amount = base - tax if src.tax_inclusive else base
    if amount > c.open_amount_minor or tax > c.open_tax_minor:
        raise FieldConflictError(
            field,
            f"crediting {quantity} would exceed what is still open on line {c.position} "
            f"({from_minor(c.open_gross_minor, cur)} {cur.code})",
        )
    return SettledLine(replace(src, quantity=quantity), amount, tax)


def _by_amount(
    cur: Currency, invoice_lines: Sequence[CreditableLine], amount: Decimal | None, open_total: int
) -> list[tuple[int, SettledLine]]:
    """A gross amount split over the tax rates by their open gross, then per rate into tax (rounded
    once, gross × r/(1+r)) and net (the rest), each split over the rate's lines by what they have open."""
    if amount is None:
        raise InvalidFieldError("amount", "is required when mode is amount")
    if amount <= 0:
        raise InvalidFieldError("amount", "must be greater than zero")
    if round_minor(amount, cur) != amount:
        raise FieldConflictError("amount", f"has more decimals than {cur.code} allows ({cur.exponent})")
    gross = to_minor(amount, cur)
    if gross > open_total:
        raise FieldConflictError(
            "amount",
            f"{amount} {cur.code} exceeds what is still creditable "
            f"({from_minor(open_total, cur)} {cur.code})",
        )
    groups: dict[tuple[TaxTreatment, Decimal], list[CreditableLine]] = defaultdict(list)
    for c in invoice_lines:
        if c.open_gross_minor > 0:
            groups[(c.line.source.tax.treatment, c.line.source.tax.rate)].append(c)
    keys = list(groups)
    shares = allocate(gross, [sum(c.open_gross_minor for c in groups[k]) for k in keys])
    out: list[tuple[int, SettledLine]] = []
    for key, share in zip(keys, shares, strict=True):
        members = groups[key]
        net, tax = _split_rate(cur, key[1], share, members)
        nets = allocate(net, [c.open_amount_minor for c in members])
        taxes = allocate(tax, [c.open_tax_minor for c in members])
        out.extend((c.position, _settled(cur, c, n, x)) for c, n, x in zip(members, nets, taxes, strict=True))
    return out


def _split_rate(
    cur: Currency, rate: Decimal, gross: int, members: Sequence[CreditableLine]
) -> tuple[int, int]:
    open_net = sum(c.open_amount_minor for c in members)
    open_tax = sum(c.open_tax_minor for c in members)
    if gross == open_net + open_tax:
        return open_net, open_tax
    exact = Decimal(gross).scaleb(-cur.exponent) * rate / (1 + rate)
    tax = min(to_minor(round_minor(exact, cur), cur), open_tax)
    net = gross - tax
    if net > open_net:
        net = open_net
        tax = gross - net
    return net, tax


def _document(cur: Currency, settled: list[SettledLine]) -> ComputedDocument:
    return assemble_document(cur, settled)
