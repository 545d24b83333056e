"""What the web surfaces share: the static mount (served from the package, never a CDN), the shared
templates, the labels in four languages, and signing kept apart per namespace."""

from __future__ import annotations

from datetime import UTC, datetime

from fiscus.adapters.db.engine import Database
from fiscus.documents.labels import LANGUAGES
from fiscus.domain.clock import FixedClock
from fiscus.web.i18n import language_of, surface_labels
from fiscus.web.pay.labels import PAGE_LABELS
from fiscus.web.pay.page import CSS
from fiscus.web.rendering import asset, csp_hash, security_headers, templates
from fiscus.web.signing import Signer
from tests.api_support import api_client

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_static_assets_are_served_from_the_package_with_strict_headers(
    db: Database, clock: FixedClock
) -> None:
    with api_client(db, clock) as client:
        r = client.get("/static/pay.css")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/css")
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.text == CSS == asset("pay.css")
        for path in ("/static/nothing.css", "/static/../web/i18n.py", "/static/%2e%2e/i18n.py"):
            assert client.get(path).status_code == 404, path


def test_a_surface_extends_the_shared_templates() -> None:
    env = templates("fiscus.web.pay")
    page = env.get_template("message.html").render(
        lang="bg", title="T", heading="H", text="X", alert=True, back_url="", back_text=""
    )
    assert page.startswith('<!doctype html>\n<html lang="bg">')
    assert '<meta name="robots" content="noindex, nofollow">' in page
    assert 'role="alert"' in page
    assert "<style>" not in page  # no stylesheet given, none printed (and no undefined-name error)


def test_security_headers_pin_the_inline_style_and_the_form_targets() -> None:
    headers = security_headers(
        style_src=csp_hash("a{}"), form_origins=("https://gw.example", "https://gw.example")
    )
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "style-src 'sha256-" in csp
    assert "form-action 'self' https://gw.example;" in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"


def test_labels_exist_in_every_language_and_fall_back_to_english() -> None:
    assert set(PAGE_LABELS) == set(LANGUAGES)
    for language in LANGUAGES:
        assert set(PAGE_LABELS[language]) == set(PAGE_LABELS["en"]), language
    assert surface_labels(PAGE_LABELS, "sr")["pay_heading"] == PAGE_LABELS["en"]["pay_heading"]
    assert surface_labels(PAGE_LABELS, "bg")["invoice"] == "Фактура"  # the document's own label
    assert [language_of(x) for x in ("bg-BG", "kk_KZ", None, "")] == ["bg", "kk", "en", "en"]


def test_a_value_signed_in_one_namespace_does_not_verify_in_another() -> None:
    secret = b"s" * 32
    pay, csrf = Signer(secret, "pay-page"), Signer(secret, "csrf")
    state = pay.issue_state(7, NOW)
    assert pay.state_is_valid(7, state, NOW)
    assert not csrf.state_is_valid(7, state, NOW)
    assert not pay.state_is_valid(8, state, NOW)
    assert csrf.open(7, pay.seal(7, {"a": 1})) is None
    assert pay.open(7, pay.seal(7, {"a": 1})) == {"a": 1}
