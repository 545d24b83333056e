"""How a document presents its parties and its payment: postal order, tax ID labels, line texts, the
EPC payload and decline texts, without a database."""

from __future__ import annotations

from fiscus.documents.presentation import address_lines, epc_payload, tax_id_label
from fiscus.domain.documents import line_description
from fiscus.domain.money import currency
from fiscus.web.pay.labels import decline_message


def test_us_address_has_city_state_zip_on_one_line() -> None:
    party = {"address_line1": "1 Main St", "city": "New York", "region": "NY", "postal_code": "10003"}
    assert address_lines({**party, "country": "US"}, "en") == [
        "1 Main St",
        "New York, NY 10003",
        "United States",
    ]


def test_bulgarian_address_puts_the_postal_code_before_the_city() -> None:
    party = {"address_line1": "ул. Витоша 1", "city": "София", "postal_code": "1000", "country": "BG"}
    assert address_lines(party, "bg") == ["ул. Витоша 1", "1000 София", "България"]


def test_kazakh_address_starts_with_the_postal_code() -> None:
    party = {"address_line1": "пр. Абая 10", "city": "Алматы", "postal_code": "050000", "country": "KZ"}
    assert address_lines(party, "ru") == ["050000", "Алматы", "пр. Абая 10", "Казахстан"]


def test_tax_id_labels_follow_the_partys_country() -> None:
    assert tax_id_label("KZ", "tax_id", "ru") == "БИН"
    assert tax_id_label("KZ", "tax_id", "en") == "BIN"
    assert tax_id_label("KZ", "vat_id", "ru") != "ИНН / НДС"
    assert tax_id_label("BG", "tax_id", "bg") == "ЕИК"
    assert tax_id_label("BG", "vat_id", "bg") == "ДДС №"
    assert tax_id_label("US", "tax_id", "en") == "EIN"


def test_line_text_does_not_repeat_the_product() -> None:
    assert line_description("Eval Pro", "Eval Pro, monthly") == "Eval Pro — monthly"
    assert line_description("Eval Pro", "Pro, monthly") == "Eval Pro — monthly"
    assert line_description("Eval Pro", "Eval Pro") == "Eval Pro"
    assert line_description("VPS", "Small, yearly") == "VPS — Small, yearly"


def test_epc_payload_is_a_sepa_credit_transfer_in_euro() -> None:
    payload = epc_payload(
        name="Хостинг ЕООД",
        iban="BG80BNBG96611020345678",
        bic="BNBGBGSF",
        amount_minor=3660,
        cur=currency("EUR"),
        text="0000001590",
    )
    assert payload.split("\n") == [
        "BCD",
        "002",
        "1",
        "SCT",
        "BNBGBGSF",
        "Хостинг ЕООД",
        "BG80BNBG96611020345678",
        "EUR36.60",
        "",
        "",
        "0000001590",
    ]


def test_decline_codes_read_in_the_customers_language() -> None:
    assert (
        decline_message("bg", "insufficient_funds", "Insufficient funds")
        == "Недостатъчна наличност по картата."
    )
    assert decline_message("kk", "expired_card", "The card has expired") == "Картаның мерзімі өтіп кеткен."
    assert decline_message("ru", "do_not_honor", "x").startswith("Банк-эмитент")
    assert decline_message("bg", "some_new_code", "Provider text") == "Provider text"
