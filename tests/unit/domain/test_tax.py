from decimal import Decimal

import pytest

from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.tax import (
    REVERSE_CHARGE_NOTE,
    TaxCategory,
    TaxParty,
    TaxRate,
    TaxTreatment,
    line_tax,
    normalize_vat_id,
)

RATES = {
    ("BG", TaxCategory.STANDARD): TaxRate("BG", TaxCategory.STANDARD, Decimal("0.20")),
    ("BG", TaxCategory.EXEMPT): TaxRate("BG", TaxCategory.EXEMPT, Decimal(0), "Exempt under Art. 45 ZDDS"),
    ("DE", TaxCategory.STANDARD): TaxRate("DE", TaxCategory.STANDARD, Decimal("0.19")),
}
SELLER = TaxParty("BG", "BG175074752")


@pytest.mark.parametrize(
    ("buyer", "category", "treatment", "rate"),
    [
        (TaxParty("BG"), TaxCategory.STANDARD, TaxTreatment.STANDARD, "0.20"),
        (TaxParty("BG", "BG175074752"), TaxCategory.STANDARD, TaxTreatment.STANDARD, "0.20"),
        (TaxParty("DE", "DE136695976"), TaxCategory.STANDARD, TaxTreatment.REVERSE_CHARGE, "0"),
        (TaxParty("DE"), TaxCategory.STANDARD, TaxTreatment.STANDARD, "0.19"),
        (TaxParty("FR"), TaxCategory.STANDARD, TaxTreatment.STANDARD, "0.20"),
        (TaxParty("US"), TaxCategory.STANDARD, TaxTreatment.NOT_SUBJECT, "0"),
        (TaxParty("BG"), TaxCategory.EXEMPT, TaxTreatment.EXEMPT, "0"),
    ],
)
def test_place_of_supply(buyer: TaxParty, category: TaxCategory, treatment: TaxTreatment, rate: str) -> None:
    result = line_tax(category, SELLER, buyer, RATES)
    assert (result.treatment, result.rate) == (treatment, Decimal(rate))


def test_reverse_charge_and_exemption_carry_their_legal_note() -> None:
    assert (
        line_tax(TaxCategory.STANDARD, SELLER, TaxParty("DE", "DE136695976"), RATES).note
        == REVERSE_CHARGE_NOTE
    )
    assert "ZDDS" in line_tax(TaxCategory.EXEMPT, SELLER, TaxParty("BG"), RATES).note


def test_unregistered_seller_charges_no_vat() -> None:
    result = line_tax(TaxCategory.STANDARD, TaxParty("US", vat_registered=False), TaxParty("US"), {})
    assert result.treatment is TaxTreatment.NOT_SUBJECT


def test_missing_rate_names_the_field() -> None:
    with pytest.raises(InvalidFieldError) as exc:
        line_tax(TaxCategory.REDUCED, SELLER, TaxParty("BG"), RATES)
    assert exc.value.field == "tax_category"


@pytest.mark.parametrize(
    ("vat_id", "country", "expected"),
    [
        ("BG 175 074 752", "BG", "BG175074752"),
        ("DE136695976", "DE", "DE136695976"),
        ("EL094259216", "GR", "EL094259216"),
        ("ATU13585627", "AT", "ATU13585627"),
    ],
)
def test_valid_vat_ids_are_compacted(vat_id: str, country: str, expected: str) -> None:
    assert normalize_vat_id(vat_id, country) == expected


@pytest.mark.parametrize(
    ("vat_id", "country"),
    [("DE136695977", "DE"), ("DE136695976", "FR"), ("BG12", "BG"), ("123456789012", "KZ"), ("", "BG")],
)
def test_invalid_vat_ids_are_refused(vat_id: str, country: str) -> None:
    with pytest.raises(InvalidFieldError) as exc:
        normalize_vat_id(vat_id, country)
    assert exc.value.field == "vat_id"


def _kz_check(first11: str) -> str:
    digits = [int(c) for c in first11]
    for weights in (range(1, 12), [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2]):
        c = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
        if c != 10:
            return first11 + str(c)
    raise AssertionError("invalid base")


def test_kazakhstan_bin_checksum() -> None:
    valid = _kz_check("99034000001")
    assert normalize_vat_id(valid, "KZ") == valid
    tampered = valid[:-1] + str((int(valid[-1]) + 1) % 10)
    with pytest.raises(InvalidFieldError):
        normalize_vat_id(tampered, "KZ")
