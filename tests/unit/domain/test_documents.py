"""Document computation laws: every figure is a sum of parts rounded once, in every currency."""

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiscus.domain.documents import (
    QUANTITY_PLACES,
    TRANSITIONS,
    DocumentAction,
    DocumentStatus,
    DocumentType,
    LineInput,
    LineKind,
    compute_document,
    prorated_quantity,
    transition,
)
from fiscus.domain.errors import InvalidFieldError, InvalidStateError
from fiscus.domain.money import currency, from_minor, round_minor, to_minor
from fiscus.domain.tax import LineTax, TaxRounding, TaxTreatment
from tests.examples import examples

RATES = [
    Decimal("0"),
    Decimal("0.05"),
    Decimal("0.09"),
    Decimal("0.12"),
    Decimal("0.19"),
    Decimal("0.20"),
    Decimal("0.21"),
    Decimal("0.077"),
]

lines_strategy = st.lists(
    st.tuples(
        st.decimals(min_value=Decimal("0.001"), max_value=Decimal("1000"), places=3),
        st.decimals(min_value=Decimal("0"), max_value=Decimal("100000"), places=6),
        st.sampled_from(RATES),
        st.booleans(),
        st.fractions(min_value=Fraction(1, 1000), max_value=Fraction(1)),
        st.booleans(),
    ),
    min_size=1,
    max_size=15,
)


def _inputs(raw: list[tuple[Decimal, Decimal, Decimal, bool, Fraction, bool]]) -> list[LineInput]:
    """Lines as the billing run makes them: the period's share folded into a (credit: negative)
    quantity, the unit price as listed (ADR 0006)."""
    return [
        LineInput(
            description=f"line {i}",
            quantity=prorated_quantity(q, ratio, credit=credit),
            unit_price=p,
            tax=LineTax(TaxTreatment.STANDARD if r else TaxTreatment.ZERO, r, ""),
            tax_inclusive=inc,
            ratio=ratio,
            kind=LineKind.PRORATION,
        )
        for i, (q, p, r, inc, ratio, credit) in enumerate(raw)
    ]


@settings(max_examples=examples(400, 100), deadline=None)
@given(lines_strategy, st.sampled_from(["JPY", "EUR", "KWD", "KZT"]), st.sampled_from(list(TaxRounding)))
def test_total_is_the_sum_of_rounded_parts(raw: list, code: str, rounding: TaxRounding) -> None:  # type: ignore[type-arg]
    cur = currency(code)
    doc = compute_document(cur, _inputs(raw), rounding)
    assert doc.total_minor == doc.subtotal_minor + doc.tax_minor
    assert doc.subtotal_minor == sum(line.amount_minor for line in doc.lines)
    assert doc.tax_minor == sum(line.tax_minor for line in doc.lines)
    assert sum(r.base_minor for r in doc.breakdown) == doc.subtotal_minor
    assert sum(r.tax_minor for r in doc.breakdown) == doc.tax_minor
    for line, (q, p, _r, _inc, ratio, credit) in zip(doc.lines, raw, strict=True):
        quantity = line.source.quantity
        assert (quantity < 0) == (credit and quantity != 0)
        exact = q * Decimal(ratio.numerator) / Decimal(ratio.denominator)
        assert abs(abs(quantity) - exact) <= Decimal("0.5").scaleb(-QUANTITY_PLACES)
        priced = line.gross_minor if line.source.tax_inclusive else line.amount_minor
        assert priced == to_minor(round_minor(quantity * p, cur), cur)  # printed quantity × printed price


@settings(max_examples=examples(300, 100), deadline=None)
@given(lines_strategy, st.sampled_from(["JPY", "EUR", "KWD", "KZT"]))
def test_document_rounding_taxes_each_rate_once(raw: list, code: str) -> None:  # type: ignore[type-arg]
    """EN 16931 BR-S-09: a rate's tax equals its base times the rate, rounded (exclusive prices)."""
    cur = currency(code)
    exclusive = [(q, p, r, False, ratio, credit) for q, p, r, _inc, ratio, credit in raw]
    doc = compute_document(cur, _inputs(exclusive), TaxRounding.DOCUMENT)
    for row in doc.breakdown:
        expected = round_minor(from_minor(row.base_minor, cur) * row.rate, cur)
        assert from_minor(row.tax_minor, cur) == expected


def test_worked_example_eur_line_rounding() -> None:
    raw = [
        (Decimal(3), Decimal("9.99"), Decimal("0.20"), False, Fraction(1), False),
        (Decimal(1), Decimal("0.015"), Decimal("0.20"), False, Fraction(1), False),
    ]
    line = compute_document(currency("EUR"), _inputs(raw), TaxRounding.LINE)
    doc = compute_document(currency("EUR"), _inputs(raw), TaxRounding.DOCUMENT)
    assert [x.amount_minor for x in line.lines] == [2997, 2]
    assert [x.tax_minor for x in line.lines] == [599, 0]  # 5.994 → 5.99, 0.004 → 0.00
    assert doc.tax_minor == 600  # 29.99 × 0.20 = 5.998 → 6.00 once for the rate
    assert [x.tax_minor for x in doc.lines] == [600, 0]  # shares 599.6 and 0.4: the unit goes to 0.6


def test_tax_inclusive_price_splits_gross_exactly() -> None:
    raw = [(Decimal(1), Decimal("18"), Decimal("0.20"), True, Fraction(1), False)]
    doc = compute_document(currency("EUR"), _inputs(raw), TaxRounding.DOCUMENT)
    assert (doc.subtotal_minor, doc.tax_minor, doc.total_minor) == (1500, 300, 1800)


def test_order_quantity_must_be_positive_and_no_price_negative() -> None:
    tax = LineTax(TaxTreatment.STANDARD, Decimal("0.20"), "")
    zero = LineInput("x", Decimal(0), Decimal(1), tax, kind=LineKind.ORDER)
    with pytest.raises(InvalidFieldError) as exc:
        compute_document(currency("EUR"), [zero], TaxRounding.DOCUMENT)
    assert exc.value.field == "lines.0.quantity"
    negative = LineInput("credit", Decimal(-1), Decimal("-30"), tax, kind=LineKind.PRORATION)
    with pytest.raises(InvalidFieldError) as exc:
        compute_document(currency("EUR"), [negative], TaxRounding.DOCUMENT)
    assert exc.value.field == "lines.0.unit_price"  # EN 16931 BR-27


def test_a_proration_credit_is_a_negative_share_of_the_listed_price() -> None:
    """The issue's example: 30.00 a month, 17/31 of it unused, credited as −0.5483870968 × 30.00."""
    quantity = prorated_quantity(Decimal(1), Fraction(17, 31), credit=True)
    assert quantity == Decimal("-0.5483870968")
    assert prorated_quantity(Decimal(2), Fraction(1, 2)) == Decimal(1)
    assert str(prorated_quantity(Decimal(3), Fraction(1, 4))) == "0.75"
    tax = LineTax(TaxTreatment.STANDARD, Decimal("0.20"), "")
    doc = compute_document(
        currency("EUR"),
        [LineInput("Unused time", quantity, Decimal("30.00"), tax, kind=LineKind.PRORATION)],
        TaxRounding.DOCUMENT,
    )
    assert (doc.lines[0].amount_minor, doc.tax_minor) == (-1645, -329)


ALL_PAIRS = [(t, s, a) for t in DocumentType for s in DocumentStatus for a in DocumentAction]


@pytest.mark.parametrize(("doc_type", "status", "action"), ALL_PAIRS)
def test_state_machine_allows_only_listed_edges(
    doc_type: DocumentType, status: DocumentStatus, action: DocumentAction
) -> None:
    allowed = TRANSITIONS[doc_type].get((status, action))
    if allowed is None:
        with pytest.raises(InvalidStateError):
            transition(doc_type, status, action)
    else:
        assert transition(doc_type, status, action) is allowed


def test_terminal_states_have_no_way_out() -> None:
    for doc_type, edges in TRANSITIONS.items():
        sources = {s for s, _a in edges}
        assert DocumentStatus.VOID not in sources, doc_type
        assert DocumentStatus.PAID not in sources, doc_type
        assert DocumentStatus.CONVERTED not in sources, doc_type
