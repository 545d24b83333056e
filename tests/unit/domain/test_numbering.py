from datetime import date

import pytest

from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.numbering import format_number, validate_format


@pytest.mark.parametrize(
    ("pattern", "seq", "expected"),
    [
        ("{seq:010}", 1594, "0000001594"),
        ("INV-{YYYY}-{seq:06}", 7, "INV-2026-000007"),
        ("{YY}{MM}/{seq}", 12, "2611/12"),
        ("{seq:03}", 12345, "12345"),
    ],
)
def test_formats(pattern: str, seq: int, expected: str) -> None:
    assert format_number(validate_format(pattern), seq, date(2026, 11, 23)) == expected


@pytest.mark.parametrize("pattern", ["INV-", "{seq}{seq}", "{seq}-{DD}", "{seq", "", "x" * 65])
def test_bad_formats_name_the_field(pattern: str) -> None:
    with pytest.raises(InvalidFieldError) as exc:
        validate_format(pattern)
    assert exc.value.field == "number_format"
