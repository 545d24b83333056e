from hypothesis import given
from hypothesis import strategies as st

from fiscus.api.presenters import money
from fiscus.domain.money import currency, from_minor


@given(
    st.integers(min_value=-(10**18), max_value=10**18), st.sampled_from(["JPY", "EUR", "KWD", "KZT", "BHD"])
)
def test_fast_money_text_equals_the_decimal_text(minor: int, code: str) -> None:
    cur = currency(code)
    assert money(minor, cur) == str(from_minor(minor, cur))
