"""Credit notes of an invoice carrying a proration credit (a negative quantity at a listed price)."""

from decimal import Decimal
from fractions import Fraction

import pytest

from fiscus.domain.credit_notes import (
    CreditableLine,
    CreditMode,
    CreditRequest,
    LineSelection,
    compute_credit_note,
)
from fiscus.domain.documents import (
    LineInput,
    LineKind,
    compute_document,
    line_amount_minor,
    prorated_quantity,
)
from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.money import currency
from fiscus.domain.tax import LineTax, TaxRounding, TaxTreatment

EUR = currency("EUR")
VAT = LineTax(TaxTreatment.STANDARD, Decimal("0.20"), "")
SHARE = Fraction(17, 31)


def _invoice() -> list[CreditableLine]:
    """30.50 × 2 for the month, 15.00 credited and 30.50 × 2 charged for 17 of 31 days."""
    lines = [
        LineInput("Pro", Decimal(2), Decimal("30.50"), VAT),
        LineInput(
            "Unused time on Basic",
            prorated_quantity(Decimal(1), SHARE, credit=True),
            Decimal(15),
            VAT,
            ratio=SHARE,
            kind=LineKind.PRORATION,
        ),
        LineInput(
            "Remaining time on Pro",
            prorated_quantity(Decimal(2), SHARE),
            Decimal("30.50"),
            VAT,
            ratio=SHARE,
            kind=LineKind.PRORATION,
        ),
    ]
    doc = compute_document(EUR, lines, TaxRounding.DOCUMENT)
    return [CreditableLine(i, s) for i, s in enumerate(doc.lines, start=1)]


def _recomputes(note_lines: list[tuple[Decimal, Decimal, int]]) -> None:
    for quantity, price, amount in note_lines:
        assert price >= 0  # EN 16931 BR-27
        assert line_amount_minor(quantity, price, EUR) == amount


def test_a_full_credit_mirrors_the_proration_credit_and_equals_the_invoice() -> None:
    invoice = _invoice()
    note = compute_credit_note(EUR, invoice, CreditRequest(CreditMode.FULL))
    assert note.positions == [1, 2, 3]
    assert note.computed.total_minor == sum(c.line.gross_minor for c in invoice)
    assert note.computed.lines[1].source.quantity < 0
    _recomputes([(s.source.quantity, s.source.unit_price, s.amount_minor) for s in note.computed.lines])


def test_part_of_a_prorated_line_credits_that_quantity_at_its_price() -> None:
    invoice = _invoice()
    note = compute_credit_note(
        EUR, invoice, CreditRequest(CreditMode.LINES, [LineSelection(3, Decimal("0.5"))])
    )
    [line] = note.computed.lines
    assert (line.source.quantity, line.source.unit_price, line.amount_minor) == (
        Decimal("0.5"),
        Decimal("30.50"),
        1525,
    )
    rest = [
        CreditableLine(c.position, c.line, line.amount_minor, line.tax_minor) if c.position == 3 else c
        for c in invoice
    ]
    full = compute_credit_note(EUR, rest, CreditRequest(CreditMode.FULL))
    _recomputes([(s.source.quantity, s.source.unit_price, s.amount_minor) for s in full.computed.lines])
    assert full.computed.total_minor + note.computed.total_minor == sum(c.line.gross_minor for c in invoice)


def test_a_proration_credit_cannot_be_credited_on_its_own() -> None:
    with pytest.raises(InvalidFieldError, match="itself a credit") as exc:
        compute_credit_note(EUR, _invoice(), CreditRequest(CreditMode.LINES, [LineSelection(2)]))
    assert exc.value.field == "lines.0.position"
