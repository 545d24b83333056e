"""Discount laws: a discount comes off before tax, split by largest remainder, so every figure adds up
exactly in every currency; a coupon or code that does not apply names its reason."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiscus.domain.discounts import (
    Coupon,
    DiscountInput,
    Duration,
    PromotionCode,
    Redeemer,
    Refusal,
    Stacking,
    code_refusal,
    normalize_code,
)
from fiscus.domain.documents import LineInput, LineKind, compute_document, line_amount_minor
from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.money import currency, round_minor, to_minor
from fiscus.domain.tax import LineTax, TaxRounding, TaxTreatment
from tests.examples import examples

CURRENCIES = ["JPY", "EUR", "KWD", "KZT"]
RATES = [Decimal("0"), Decimal("0.09"), Decimal("0.12"), Decimal("0.20"), Decimal("0.077")]
AT = datetime(2026, 12, 1, tzinfo=UTC)

line_st = st.tuples(
    st.integers(min_value=1, max_value=20),  # quantity
    st.decimals(min_value=Decimal("0"), max_value=Decimal("5000"), places=3),  # unit price
    st.sampled_from(RATES),
    st.integers(min_value=1, max_value=3),  # product id
)


@st.composite
def coupon_st(draw: st.DrawFn, code: str, n: int) -> Coupon:
    scope = draw(st.sets(st.integers(min_value=1, max_value=3), max_size=2))
    if draw(st.booleans()):
        return Coupon(
            id=n,
            name=f"C{n}",
            duration=Duration.FOREVER,
            percent_off=draw(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100"), places=2)),
            product_ids=frozenset(scope),
        )
    return Coupon(
        id=n,
        name=f"C{n}",
        duration=Duration.ONCE,
        amounts_off={code: draw(st.integers(min_value=1, max_value=10**7))},
        product_ids=frozenset(scope),
    )


@st.composite
def document_st(draw: st.DrawFn) -> tuple[str, list[LineInput], list[DiscountInput], TaxRounding]:
    code = draw(st.sampled_from(CURRENCIES))
    raw = draw(st.lists(line_st, min_size=1, max_size=8))
    lines = [
        LineInput(
            description=f"l{i}",
            quantity=Decimal(q),
            unit_price=p,
            tax=LineTax(TaxTreatment.STANDARD if r else TaxTreatment.ZERO, r, ""),
            kind=LineKind.ORDER,
            product_id=prod,
            price_id=100 + prod,
        )
        for i, (q, p, r, prod) in enumerate(raw)
    ]
    n = draw(st.integers(min_value=0, max_value=3))
    discounts = [DiscountInput(draw(coupon_st(code, k)), f"C{k}") for k in range(n)]
    return code, lines, discounts, draw(st.sampled_from(list(TaxRounding)))


@settings(max_examples=examples(300, 100), deadline=None)
@given(document_st())
def test_totals_add_up_with_discounts(
    case: tuple[str, list[LineInput], list[DiscountInput], TaxRounding],
) -> None:
    code, lines, discounts, rounding = case
    cur = currency(code)
    doc = compute_document(cur, lines, rounding, discounts)
    gross = [line_amount_minor(x.quantity, x.unit_price, cur) for x in lines]
    # total = Σ lines − Σ discounts + Σ tax, exactly
    assert doc.total_minor == sum(gross) - doc.discount_minor + doc.tax_minor
    assert doc.subtotal_minor == sum(gross) - doc.discount_minor
    # every discount's parts add up to it, no line goes below zero, line discounts = Σ parts
    for d in doc.discounts:
        assert sum(d.parts) == d.amount_minor > 0
    for i, s in enumerate(doc.lines):
        assert s.discount_minor == sum(d.parts[i] for d in doc.discounts)
        assert s.amount_minor == gross[i] - s.discount_minor >= 0
    # per rate: the base is its lines net of their discounts, and its tax is right
    for row in doc.breakdown:
        members = [s for s in doc.lines if s.source.tax.rate == row.rate]
        assert row.base_minor == sum(s.amount_minor for s in members)
        assert row.tax_minor == sum(s.tax_minor for s in members)
        if rounding is TaxRounding.DOCUMENT:
            exact = Decimal(row.base_minor).scaleb(-cur.exponent) * row.rate
            assert row.tax_minor == to_minor(round_minor(exact, cur), cur)
    assert sum(r.base_minor for r in doc.breakdown) == doc.subtotal_minor


def test_percent_discount_split_over_rates() -> None:
    """EUR, two rates: 10 % of 100.00 + 50.00 is 15.00, 10.00 and 5.00, taxed per rate after it."""
    cur = currency("EUR")
    lines = [
        LineInput("a", Decimal(1), Decimal("100"), LineTax(TaxTreatment.STANDARD, Decimal("0.20"), "")),
        LineInput("b", Decimal(1), Decimal("50"), LineTax(TaxTreatment.REDUCED, Decimal("0.09"), "")),
    ]
    coupon = Coupon(1, "Launch", Duration.ONCE, percent_off=Decimal(10))
    doc = compute_document(cur, lines, TaxRounding.DOCUMENT, [DiscountInput(coupon, "Launch")])
    assert [s.discount_minor for s in doc.lines] == [1000, 500]
    assert [(r.base_minor, r.tax_minor) for r in doc.breakdown] == [(9000, 1800), (4500, 405)]
    assert doc.total_minor == 15000 - 1500 + 2205


def test_fixed_amount_is_capped_and_stacks_in_order() -> None:
    cur = currency("JPY")
    tax = LineTax(TaxTreatment.STANDARD, Decimal("0.10"), "")
    lines = [LineInput("a", Decimal(1), Decimal(1000), tax), LineInput("b", Decimal(1), Decimal(3), tax)]
    first = Coupon(1, "Big", Duration.ONCE, amounts_off={"JPY": 900})
    second = Coupon(2, "Half", Duration.FOREVER, percent_off=Decimal(50))
    doc = compute_document(
        cur, lines, TaxRounding.DOCUMENT, [DiscountInput(first, "Big"), DiscountInput(second, "Half")]
    )
    assert [d.amount_minor for d in doc.discounts] == [900, 52]  # 50 % of the 103 left, rounded half-up
    assert doc.subtotal_minor == 51
    capped = Coupon(3, "Huge", Duration.ONCE, amounts_off={"JPY": 10**6})
    assert compute_document(cur, lines, TaxRounding.DOCUMENT, [DiscountInput(capped, "x")]).total_minor == 0


def test_credit_lines_and_uncovered_products_are_not_discounted() -> None:
    cur = currency("EUR")
    tax = LineTax(TaxTreatment.STANDARD, Decimal("0.20"), "")
    lines = [
        LineInput("a", Decimal(1), Decimal(10), tax, product_id=1),
        LineInput("b", Decimal(1), Decimal(10), tax, product_id=2),
        LineInput("c", Decimal(-1), Decimal(5), tax, kind=LineKind.PRORATION, product_id=1),
    ]
    coupon = Coupon(1, "P1", Duration.FOREVER, percent_off=Decimal(100), product_ids=frozenset({1}))
    doc = compute_document(cur, lines, TaxRounding.DOCUMENT, [DiscountInput(coupon, "P1")])
    assert [s.discount_minor for s in doc.lines] == [1000, 0, 0]


def _code(**kw: object) -> PromotionCode:
    coupon = kw.pop("coupon", Coupon(1, "Launch", Duration.ONCE, percent_off=Decimal(20)))
    return PromotionCode(id=1, code="LAUNCH", coupon=coupon, **kw)  # type: ignore[arg-type]


WHO = Redeemer(customer_id=7, currency=currency("EUR"), amount_minor=5000, has_purchased=True, covered=True)


@pytest.mark.parametrize(
    ("code", "who", "reason"),
    [
        (_code(), WHO, None),
        (_code(active=False), WHO, Refusal.CODE_INACTIVE),
        (_code(expires_at=AT), WHO, Refusal.CODE_EXPIRED),
        (_code(max_redemptions=2, times_redeemed=2), WHO, Refusal.CODE_MAX_REDEMPTIONS),
        (_code(customer_id=8), WHO, Refusal.WRONG_CUSTOMER),
        (_code(first_purchase_only=True), WHO, Refusal.NOT_FIRST_PURCHASE),
        (_code(minimum_amount_minor=5001, minimum_currency="EUR"), WHO, Refusal.BELOW_MINIMUM),
        (_code(minimum_amount_minor=10, minimum_currency="USD"), WHO, Refusal.BELOW_MINIMUM),
        (
            _code(coupon=Coupon(1, "x", Duration.ONCE, percent_off=Decimal(1), redeem_by=AT)),
            WHO,
            Refusal.COUPON_EXPIRED,
        ),
        (
            _code(
                coupon=Coupon(
                    1, "x", Duration.ONCE, percent_off=Decimal(1), max_redemptions=1, times_redeemed=1
                )
            ),
            WHO,
            Refusal.COUPON_MAX_REDEMPTIONS,
        ),
        (
            _code(coupon=Coupon(1, "x", Duration.ONCE, amounts_off={"JPY": 5})),
            WHO,
            Refusal.CURRENCY_NOT_COVERED,
        ),
        (_code(), Redeemer(7, currency("EUR"), 1, False, covered=False), Refusal.NOTHING_COVERED),
        (_code(), Redeemer(7, currency("EUR"), 1, False, True, frozenset({1})), Refusal.ALREADY_REDEEMED),
        (
            _code(),
            Redeemer(7, currency("EUR"), 1, False, True, frozenset({2}), Stacking.NONE),
            Refusal.STACKING_NOT_ALLOWED,
        ),
    ],
)
def test_code_refusals_are_named(code: PromotionCode, who: Redeemer, reason: Refusal | None) -> None:
    assert code_refusal(code, who, AT) == reason
    assert code_refusal(code, who, AT - timedelta(days=1)) in {reason, None}


def test_codes_are_case_insensitive_and_checked() -> None:
    assert normalize_code(" launch-2026 ") == "LAUNCH-2026"
    with pytest.raises(InvalidFieldError):
        normalize_code("no spaces")


@pytest.mark.parametrize(
    "kw",
    [
        {"percent_off": Decimal(0)},
        {"percent_off": Decimal(101)},
        {"percent_off": Decimal(5), "amounts_off": {"EUR": 5}},
        {},
        {"amounts_off": {"EUR": 0}},
        {"percent_off": Decimal(5), "duration": Duration.REPEATING},
        {"percent_off": Decimal(5), "duration_periods": 3},
    ],
)
def test_bad_terms_are_refused(kw: dict[str, object]) -> None:
    args: dict[str, object] = {"duration": Duration.ONCE} | kw
    with pytest.raises(InvalidFieldError):
        Coupon(1, "x", **args)  # type: ignore[arg-type]
