from decimal import Decimal

from babel import Locale

from fiscus.documents.view_model import format_minor, format_money
from fiscus.domain.money import currency


def test_a_sub_unit_price_does_not_change_how_later_amounts_are_printed() -> None:
    """Regression: babel's shared currency pattern was mutated by a 3-digit unit price."""
    kzt, kk = currency("KZT"), Locale.parse("kk")
    assert format_money(Decimal("1234.565"), kzt, kk).replace("\xa0", " ") == "1 234,565 ₸"
    assert format_minor(2598000, kzt, kk).replace("\xa0", " ") == "25 980,00 ₸"
    assert format_minor(1500, currency("JPY"), Locale.parse("en")) == "¥1,500"
    assert format_minor(1500, currency("KWD"), Locale.parse("en")) == "KWD1.500"
