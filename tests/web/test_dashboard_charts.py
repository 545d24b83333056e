"""The dashboard partial: well-formed markup, every chart an accessible SVG with the table behind it,
amounts in the currency's ISO digits and the locale's format, text escaped, and no serious or critical
axe-core violation in Chromium. Built from a `Dashboard` value: no database needed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from lxml import etree, html  # type: ignore[import-untyped]

from fiscus.domain.mrr import MrrBucket
from fiscus.queries.dashboard import (
    AGEING,
    AgeingBucket,
    Dashboard,
    PaymentsBucket,
    Ratio,
    RevenueBucket,
    SubscriptionsBucket,
)
from fiscus.queries.dashboard_buckets import Grain, make_buckets
from fiscus.web.console import chart_labels
from fiscus.web.console.charts import dashboard_charts
from fiscus.web.rendering import templates
from tests.pages.axe import assert_accessible


def _dashboard(cur: str = "EUR", exponent: int = 2, grain: Grain = Grain.MONTH, n_days: int = 0) -> Dashboard:
    start, end = date(2026, 1, 1), date(2026, 6, 30)
    buckets = [b for _, b in make_buckets(start, end, grain)]
    n = len(buckets)
    return Dashboard(
        organization_id=1,
        currency=cur,
        exponent=exponent,
        timezone="Europe/Sofia",
        grain=grain,
        start=start,
        end=end,
        as_of=datetime(2026, 7, 1, tzinfo=UTC),
        buckets=tuple(buckets),
        opening_mrr_minor=0,
        mrr=tuple(MrrBucket(1000 * (i + 1), 1500, 200 * (i % 2), 100, 600, 0) for i in range(n)),
        revenue=tuple(RevenueBucket(123456 + i, 3, 1000, 1, 99999, 500 * i, i) for i in range(n)),
        payments=tuple(PaymentsBucket(Ratio(i % 5, 4), Ratio(1, 3) if i else Ratio(0, 0)) for i in range(n)),
        subscriptions=tuple(SubscriptionsBucket(10 + i, i % 3) for i in range(n)),
        receivables=tuple(AgeingBucket(label, k, 10000 * k) for k, label in enumerate(AGEING)),
    )


def _render(d: Dashboard, locale: str = "en") -> str:
    env = templates("fiscus.web.console")
    return env.get_template("console/dashboard_body.html").render(
        dashboard=d, dashboard_charts=dashboard_charts(d, locale)
    )


def test_every_chart_is_an_accessible_svg_followed_by_its_table() -> None:
    d = _dashboard()
    body = _render(d)
    root = etree.fromstring(
        f"<div>{body}</div>".encode(), etree.XMLParser()
    )  # well-formed (XHTML-compatible)
    ns = {"s": "http://www.w3.org/2000/svg"}
    sections = root.findall("./section/section")
    assert len(sections) == 7
    for section in sections:
        svg = section.find("figure/s:svg", ns)
        assert svg is not None
        assert svg.get("role") == "img"
        title_id, desc_id = svg.get("aria-labelledby"), svg.get("aria-describedby")
        assert svg.find("s:title", ns).get("id") == title_id
        assert svg.find("s:desc", ns).get("id") == desc_id
        assert svg.find("s:title", ns).text
        table = section.find("figure").getnext().find("table")
        assert table.tag == "table"
        assert table.find("caption").text
        rows = table.findall("tbody/tr")
        expected = len(AGEING) + 1 if section.get("id") == "dash-ageing" else len(d.buckets)
        assert len(rows) == expected
        assert all(len(r.findall("td")) == len(table.findall("thead/tr/th")) - 1 for r in rows)
    assert "<script" not in body
    assert "style=" not in body
    assert "€1,234.56" in body
    assert "€999.99" in body
    assert "25.0% (1/4)" in body
    assert "—" in body


def test_amounts_follow_the_currency_digits_and_the_locale() -> None:
    jpy = _render(_dashboard("JPY", 0), "ja")
    assert "￥123,456" in jpy
    assert "123,456.00" not in jpy
    kwd = _render(_dashboard("KWD", 3), "bg")
    assert "123,456\xa0KWD" in kwd
    assert "Неплатени вземания" in kwd
    weekly = _render(_dashboard(grain=Grain.WEEK), "ru")
    assert "Дебиторская задолженность" in weekly
    assert "€" in weekly


def test_text_is_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    hostile = '<script>alert("x")</script>&'
    monkeypatch.setattr(chart_labels, "EN", {**chart_labels.EN, "mrr": hostile, "period": hostile})
    body = _render(_dashboard())
    assert "<script>" not in body
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;" in body
    html.fromstring(body)


@pytest.fixture(scope="module")
def page(chromium: Any) -> Iterator[Any]:
    """A page of the session's shared Chromium (one Playwright per worker process: a second
    `sync_playwright()` beside it fails with "Sync API inside the asyncio loop")."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def test_axe_finds_no_serious_violation(page: Any) -> None:
    env = templates("fiscus.web.console")
    body = _render(_dashboard(grain=Grain.WEEK))
    doc = env.from_string(
        '{% extends "base.html" %}{% block body %}<main><h1>Dashboard</h1>'
        "{{ body|safe }}</main>{% endblock %}"
    ).render(lang="en", title="Dashboard", body=body)
    page.set_content(doc)
    assert page.locator("svg[role=img]").count() == 7
    assert_accessible(page)


def test_a_page_that_passes_no_charts_still_renders() -> None:
    env = templates("fiscus.web.console")
    body = env.get_template("console/dashboard_body.html").render(dashboard=_dashboard())
    assert "Charts unavailable" in body
