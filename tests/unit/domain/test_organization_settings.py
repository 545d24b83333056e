"""Organisation settings checks without a database: logos (PNG checks, SVG sanitising), national IDs,
bank accounts, paper sizes, footers."""

from __future__ import annotations

import struct
import zlib

import pytest

from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.logo import MAX_LOGO_BYTES, PNG, SVG, accept_logo, sanitize_svg
from fiscus.domain.organization import (
    bank_account,
    default_paper_size,
    footers,
    normalize_national_id,
    paper_size,
)

XLINK = "http://www.w3.org/1999/xlink"
SVG_HEAD = f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="{XLINK}" width="120" height="40">'


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def clean(body: str) -> str:
    return sanitize_svg((SVG_HEAD + body + "</svg>").encode()).data.decode()


def test_a_png_is_kept_as_it_is_with_its_dimensions() -> None:
    logo = accept_logo(png(3, 2))
    assert (logo.content_type, logo.width, logo.height) == (PNG, 3, 2)
    assert logo.data == png(3, 2)
    assert len(logo.sha256) == 64


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (png(5000, 10), "each side"),
        (png(3, 2)[:40], "IEND"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "IHDR"),
        (b"GIF89a" + b"\x00" * 40, "PNG or an SVG"),
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * MAX_LOGO_BYTES, "512 kB"),
    ],
)
def test_bad_images_are_refused_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidFieldError, match=reason):
        accept_logo(data)


def test_script_elements_are_removed() -> None:
    out = clean('<script>alert(1)</script><rect width="1" height="1"/><g><script href="x.js"/></g>')
    assert "script" not in out
    assert "<rect" in out


def test_event_handlers_are_removed() -> None:
    out = clean('<rect width="1" height="1" onload="alert(1)" onClick="x()"/>')
    assert "onload" not in out.lower()
    assert "onclick" not in out.lower()
    assert "<rect" in out
    assert (
        "onload"
        not in sanitize_svg(
            b'<svg xmlns="http://www.w3.org/2000/svg" onload="x()"><rect/></svg>'
        ).data.decode()
    )


def test_javascript_and_external_links_are_removed_and_local_ones_kept() -> None:
    out = clean(
        '<a href="javascript:alert(1)"><rect width="1" height="1"/></a>'
        '<use xlink:href="javascript:alert(1)"/><use href="https://evil.example/x.svg#a"/>'
        '<image href="https://evil.example/track.png"/>'
        '<rect id="r" width="1" height="1" fill="url(https://evil.example/p)"/>'
        '<rect width="1" height="1" style="fill:url(https://evil.example/p)"/>'
        '<use href="#r"/>'
    )
    assert "javascript" not in out
    assert "evil" not in out
    assert "<image" not in out
    assert "<a" not in out
    assert 'href="#r"' in out


def test_foreign_object_and_style_elements_are_removed() -> None:
    out = clean('<foreignObject><div xmlns="http://www.w3.org/1999/xhtml">x</div></foreignObject>'
                "<style>@import url(https://evil.example/a.css);</style><circle r=\"1\"/>")  # fmt: skip
    assert "foreignObject" not in out
    assert "style" not in out
    assert "<circle" in out


def test_what_was_removed_is_reported() -> None:
    logo = sanitize_svg((SVG_HEAD + '<script/><rect onload="x" width="1" height="1"/></svg>').encode())
    assert any("script" in r for r in logo.removed)
    assert any("onload" in r for r in logo.removed)
    assert (logo.content_type, logo.width, logo.height) == (SVG, 120, 40)


@pytest.mark.parametrize(
    "document",
    [
        '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>',
        '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>',
        '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">'
        '<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>',
    ],
)
def test_entities_and_doctypes_are_refused(document: str) -> None:
    with pytest.raises(InvalidFieldError, match="DOCTYPE"):
        sanitize_svg(document.encode())


def test_undeclared_entities_broken_xml_and_non_svg_are_refused() -> None:
    with pytest.raises(InvalidFieldError, match="well-formed"):
        sanitize_svg(b'<svg xmlns="http://www.w3.org/2000/svg"><text>&lol;</text></svg>')
    with pytest.raises(InvalidFieldError, match="well-formed"):
        sanitize_svg(b'<svg xmlns="http://www.w3.org/2000/svg"><rect>')
    with pytest.raises(InvalidFieldError, match="root"):
        sanitize_svg(b"<html><body/></html>")
    with pytest.raises(InvalidFieldError, match="nothing drawable"):
        sanitize_svg(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')


def test_sanitising_twice_changes_nothing() -> None:
    once = sanitize_svg(
        (SVG_HEAD + '<g fill="red"><path d="M0 0L1 1"/><text x="1">Acme</text></g></svg>').encode()
    )
    assert sanitize_svg(once.data).data == once.data
    assert once.removed == ()


@pytest.mark.parametrize(
    ("country", "raw", "expected"),
    [
        ("KZ", "180440012349", "180440012349"),
        ("BG", "175074752", "175074752"),
        ("BG", "BG 175074752", "175074752"),
        ("BG", "1750747520001", "1750747520001"),
        ("US", "043190200", "04-3190200"),
        ("DE", "HRB 12345", "HRB12345"),
    ],
)
def test_national_ids_are_checked_by_their_countrys_scheme(country: str, raw: str, expected: str) -> None:
    assert normalize_national_id(raw, country) == expected


@pytest.mark.parametrize(
    ("country", "raw", "what"),
    [
        ("KZ", "180440012341", "BIN"),
        ("BG", "175074753", "EIK"),
        ("US", "00-0000000", "EIN"),
        ("FR", "!", "company ID"),
    ],
)
def test_wrong_national_ids_are_refused(country: str, raw: str, what: str) -> None:
    with pytest.raises(InvalidFieldError, match=what):
        normalize_national_id(raw, country)


def test_bank_accounts_iban_bic_or_local() -> None:
    account = bank_account("a", {"iban": "bg80 bnbg 9661 1020 3456 78", "bic": "bnbgbgsf"}, "BG")
    assert (account.iban, account.bic) == ("BG80BNBG96611020345678", "BNBGBGSF")
    local = bank_account("a", {"account_number": "000123456789", "routing_number": "111000025"}, "US")
    assert local.routing_number == "111000025"
    kz = bank_account("a", {"iban": "KZ86125KZT5004100100", "bic": "KCJBKZKX"}, "KZ")
    assert kz.iban == "KZ86125KZT5004100100"
    for raw, field in (
        ({"iban": "BG80BNBG96611020345679"}, "a.iban"),
        ({"iban": "BG80BNBG96611020345678", "bic": "DEUTDEFF"}, "a.bic"),
        ({"account_number": "1"}, "a.account_number"),
        ({"account_number": "000123456789", "routing_number": "111000026"}, "a.routing_number"),
        ({"iban": "BG80BNBG96611020345678", "currency": "EURO"}, "a.currency"),
    ):
        with pytest.raises(InvalidFieldError) as info:
            bank_account("a", raw, "US")
        assert info.value.problems[0].field == field, raw


def test_paper_size_defaults_from_the_country() -> None:
    assert [default_paper_size(c) for c in ("US", "CA", "MX", "BG", "KZ", "DE")] == [
        "letter", "letter", "letter", "a4", "a4", "a4",
    ]  # fmt: skip
    assert paper_size("p", "US Letter") == "letter"
    assert paper_size("p", "A4") == "a4"
    with pytest.raises(InvalidFieldError):
        paper_size("p", "A3")


def test_footers_per_locale() -> None:
    assert footers("f", {"ru": "Спасибо", "en": "Thanks", "bg": ""}) == {"en": "Thanks", "ru": "Спасибо"}
    with pytest.raises(InvalidFieldError, match="locale"):
        footers("f", {"fr": "Merci"})
    with pytest.raises(InvalidFieldError, match="1000"):
        footers("f", {"en": "x" * 1001})
