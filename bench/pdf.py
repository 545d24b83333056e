"""PDF rendering throughput with Typst: distinct one-page and five-page documents per second on one
core with the process's reused compiler, and the cost of a fresh compiler; then the same documents
as HTML printed to PDF by a warm headless Chromium (how Gotenberg-based billing systems render), for
comparison. Prints figures, asserts nothing about timings.

    .venv/bin/python bench/pdf.py [--seconds 3]

Each document is distinct (its own number, buyer and line texts), so no rendering is a cache hit.
The view model is built before timing: the figures are the renderer's, not babel's. The Chromium
part needs the `bench` dependency group (playwright) and Debian's chromium at /usr/bin/chromium;
without them it is skipped with a note.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import jinja2
import markupsafe
import pypdf

from fiscus.adapters.pdf.renderer import PdfRenderer
from fiscus.documents.view_model import build_view_model
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.domain.money import currency
from fiscus.queries.documents import DocumentView, LineView, TaxView

SIZES: Final = (("one-page", 3), ("five-page", 190))
WARM_UP: Final = 3
SILVER_MS: Final = 34.0  # silver's one-page invoice, from peer measurements on this machine
GOAL_DOCS_PER_S: Final = 150.0
GOAL_RATIO: Final = 5.0
CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def view_model(n: int, lines: int) -> dict[str, Any]:
    cur = currency("EUR")
    at = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
    amounts = [(i % 7 + 1) * 1999 for i in range(lines)]
    subtotal = sum(amounts)
    tax = subtotal * 20 // 100
    doc = DocumentView(
        id=n, organization_id=1, type=DocumentType.INVOICE, status=DocumentStatus.OPEN, series="default",
        number=f"{n:010}", sequence=n, customer_id=n, subscription_id=None, currency=cur,
        subtotal_minor=subtotal, tax_minor=tax, total_minor=subtotal + tax, amount_paid_minor=0,
        period_start=None, period_end=None, issue_date=date(2026, 1, 15), issued_at=at,
        due_date=date(2026, 1, 29),
        seller={"legal_name": "Хостинг ЕООД", "country": "BG", "vat_id": "BG175074752",
                "timezone": "Europe/Sofia"},
        buyer={"name": f"Клиент {n} ООД", "country": "BG", "locale": "bg", "city": "София"},
        notes=[], converted_from_id=None, created_at=at, updated_at=at, paid_at=None, voided_at=None,
        lines=[
            LineView(
                id=i, position=i + 1, kind="order", description=f"Услуга {n}-{i}", product_id=None,
                product=None, variant=None, price_id=None, subscription_period_id=None, order_id=None,
                period_start=None, period_end=None, quantity=Decimal(i % 7 + 1), unit_price=Decimal("19.99"),
                ratio=Fraction(1), tax_inclusive=False, tax_treatment="standard", tax_rate=Decimal("0.2"),
                amount_minor=a, tax_minor=0,
            )
            for i, a in enumerate(amounts)
        ],
        taxes=[TaxView("standard", Decimal("0.2"), subtotal, tax, "")],
    )  # fmt: skip
    return build_view_model(doc)


def pages(data: bytes) -> int:
    return len(pypdf.PdfReader(io.BytesIO(data)).pages)


def timed(render: Callable[[int], bytes], seconds: float) -> tuple[float, int]:
    """Milliseconds per document and pages per document: WARM_UP renders first (untimed), then
    `seconds` of renders, each of a distinct document (`render(i)` renders the i-th)."""
    page_count = pages(render(0))
    for i in range(1, WARM_UP):
        render(i)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        render(WARM_UP + done)
        done += 1
    return (time.perf_counter() - start) / done * 1000, page_count


def typst_ms(renderer: PdfRenderer, models: Sequence[dict[str, Any]], seconds: float) -> tuple[float, int]:
    # `_n` keeps the payload distinct once the loop wraps around the models
    return timed(lambda i: renderer.render(models[i % len(models)] | {"_n": i}), seconds)


def fresh_compile_ms(runs: int = 5) -> float:
    model = view_model(1, 3)
    start = time.perf_counter()
    for _ in range(runs):
        PdfRenderer().render(model)
    return (time.perf_counter() - start) / runs * 1000


# The same content as document.typ (header, parties, facts, lines with a repeated header, tax
# breakdown, totals, payment, notes, "page X of Y" footer), as a Gotenberg user would write it.
HTML: Final = """<!doctype html>
<html lang="{{ language }}"><head><meta charset="utf-8"><title>{{ doc.title }} {{ doc.number }}</title>
<style>
body { font-family: "DejaVu Sans", sans-serif; font-size: 8.5pt; line-height: 1.15; margin: 0; }
.muted { font-size: 7.5pt; color: #5a5a5a; }
.row { display: flex; justify-content: space-between; align-items: baseline; }
.cols { display: grid; grid-template-columns: 1fr 1fr; column-gap: 8mm; margin-top: 2mm; }
.facts { display: grid; grid-template-columns: repeat({{ facts | length }}, 1fr); margin-top: 3mm; }
h1 { font-size: 18pt; margin: 0; } .number { font-size: 12pt; font-weight: bold; }
table { border-collapse: collapse; } td, th { padding: 4pt; white-space: nowrap; }
table.lines { width: 100%; margin-top: 4mm; }
table.lines td, table.lines th { padding: 2.5pt 4pt; }  /* typst counts only cap height + insets */
table.lines thead { display: table-header-group; }
table.lines th { border-bottom: 0.7pt solid black; }
table.lines td { border-bottom: 0.3pt solid #c8c8c8; }
table.lines tr { break-inside: avoid; }
.r { text-align: right; } .l { text-align: left; } .grow { width: 100%; white-space: normal; }
.summary { display: grid; grid-template-columns: 1fr auto; column-gap: 8mm; margin-top: 3mm;
           break-inside: avoid; }
.summary td, .summary th { padding: 3pt 4pt; } .summary th { border-bottom: 0.7pt solid black; }
.total td { border-top: 0.7pt solid black; font-weight: bold; }
.block { break-inside: avoid; margin-top: 4mm; }
</style></head><body>
<div class="row"><h1>{{ doc.title }}</h1><span class="number">{{ doc.number }}</span></div>
<div class="cols">
{% for title, p in ((L.seller, seller), (L.buyer, buyer)) %}<div>
  <span class="muted">{{ title }}</span><br><b>{{ p.name }}</b><br>
  {% for line in p.address %}{{ line }}<br>{% endfor %}
  {% if p.email %}{{ p.email }}<br>{% endif %}
  {% if p.vat_id %}{{ L.vat_id }}: {{ p.vat_id }}<br>{% endif %}
  {% if p.tax_id %}{{ L.tax_id }}: {{ p.tax_id }}<br>{% endif %}
</div>{% endfor %}
</div>
<div class="facts">{% for label, value in facts %}
  <div><span class="muted">{{ label }}</span><br>{{ value }}</div>{% endfor %}
</div>
{% for extra in (doc.converted_from, doc.corrects) if extra %}<p><b>{{ extra }}</b></p>{% endfor %}
{% if doc.reason %}<p>{{ L.reason }}: {{ doc.reason }}</p>{% endif %}
<table class="lines">
<thead><tr><th class="r">#</th><th class="l grow">{{ L.description }}</th>
<th class="r">{{ L.quantity }}</th><th class="r">{{ L.unit_price }}</th>
<th class="r">{{ L.tax_rate }}</th><th class="r">{{ L.amount }}</th></tr></thead>
<tbody>{% for l in lines %}
<tr><td class="r">{{ l.position }}</td><td class="grow">{{ l.description }}{% if l.period %}<br>
<span class="muted">{{ l.period }}</span>{% endif %}</td><td class="r">{{ l.quantity }}</td>
<td class="r">{{ l.unit_price }}</td><td class="r">{{ l.tax_rate }}</td><td class="r">{{ l.amount }}</td></tr>
{% endfor %}</tbody>
</table>
<div class="summary">
  <div><b>{{ L.tax_breakdown }}</b>
  <table><thead><tr><th class="l">{{ L.tax_rate }}</th><th class="r">{{ L.rate }}</th>
  <th class="r">{{ L.base }}</th><th class="r">{{ L.tax }}</th></tr></thead>
  <tbody>{% for x in taxes %}<tr><td>{{ x.label }}</td><td class="r">{{ x.rate }}</td>
  <td class="r">{{ x.base }}</td><td class="r">{{ x.tax }}</td></tr>{% endfor %}</tbody></table></div>
  <table>
  <tr><td>{{ L.subtotal }}</td><td class="r">{{ totals.subtotal }}</td></tr>
  <tr><td>{{ L.tax }}</td><td class="r">{{ totals.tax }}</td></tr>
  <tr class="total"><td>{{ L.total }}</td><td class="r">{{ totals.total }}</td></tr>
  {% if totals.amount_paid %}<tr><td>{{ L.amount_paid }}</td><td class="r">{{ totals.amount_paid }}</td></tr>
  {% endif %}{% if totals.amount_credited %}<tr><td>{{ L.amount_credited }}</td>
  <td class="r">{{ totals.amount_credited }}</td></tr>{% endif %}
  <tr><td><b>{{ L.amount_due }}</b></td><td class="r"><b>{{ totals.amount_due }}</b></td></tr>
  </table>
</div>
<div class="block"><b>{{ L.payment }}</b><br>{{ payment.instructions }}</div>
{% if notes %}<div class="block"><b>{{ L.notes }}</b><br>
{% for n in notes %}{{ n }}<br>{% endfor %}</div>{% endif %}
</body></html>
"""

# Chromium's own header/footer template: pageNumber and totalPages are filled in by Chromium.
FOOTER: Final = """<div style="font-family: 'DejaVu Sans', sans-serif; font-size: 7.5pt; color: #5a5a5a;
width: 100%; margin: 0 18mm; display: flex; justify-content: space-between;">
<span>{{ doc.title }} {{ doc.number }}</span><span>{{ page }}</span></div>"""

_jinja = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_html = _jinja.from_string(HTML)
_footer = _jinja.from_string(FOOTER)


def html_of(model: dict[str, Any]) -> tuple[str, str]:
    """The page's HTML and its footer template, from the same view model the typst template reads."""
    labels, doc = model["labels"], model["document"]
    facts = [
        (labels[key], value)
        for key, value in (
            ("issue_date", doc["issue_date"]),
            ("due_date", doc["due_date"]),
            ("period", doc["period"]),
            ("status", model["payment"]["status"]),
        )
        if value
    ]
    html = _html.render(model, L=labels, doc=doc, facts=facts)
    page = (
        str(markupsafe.escape(labels["page"]))
        .replace("{page}", '<span class="pageNumber"></span>')
        .replace("{pages}", '<span class="totalPages"></span>')
    )
    return html, _footer.render(doc=doc, page=markupsafe.Markup(page))


class ChromiumSkipped(Exception):
    """The Chromium comparison cannot run here; the message says why."""


def chromium_figures(
    docs: Mapping[str, Sequence[dict[str, Any]]], seconds: float
) -> dict[str, tuple[float, int]]:
    """Milliseconds per document and pages per document for each label of `docs`, rendered as HTML
    printed to PDF by one warm headless Chromium (launched once, one page reused)."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as e:
        raise ChromiumSkipped(
            f"playwright is not installed ({e}); `.venv/bin/uv sync --group bench`"
        ) from None
    if not CHROMIUM.is_file():
        raise ChromiumSkipped(f"{CHROMIUM} not found; `apt-get install -y chromium`")
    out: dict[str, tuple[float, int]] = {}
    try:
        with sync_playwright() as pw:
            start = time.perf_counter()
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page()
            print(
                f"chromium {browser.version} launched in {(time.perf_counter() - start) * 1000:.0f} ms "
                "(not timed below)"
            )

            for label, models in docs.items():

                def render(i: int, models: Sequence[dict[str, Any]] = models) -> bytes:
                    html, footer = html_of(models[i % len(models)])
                    page.set_content(html)
                    return page.pdf(
                        format="A4",
                        margin={"top": "16mm", "bottom": "20mm", "left": "18mm", "right": "18mm"},
                        display_header_footer=True,
                        header_template="<span></span>",
                        footer_template=footer,
                    )

                out[label] = timed(render, seconds)
            browser.close()
    except Error as e:
        raise ChromiumSkipped(f"Chromium failed: {str(e).splitlines()[0]}") from None
    return out


def goal(ok: bool) -> str:
    return "goal met" if ok else "below goal"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        # children inherit this: playwright's driver and every Chromium process share the core too
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(f"python {platform.python_version()} on {platform.machine()}, one core")
    docs = {label: [view_model(n, lines) for n in range(1, 400)] for label, lines in SIZES}
    renderer = PdfRenderer()
    typst: dict[str, float] = {}
    for label, models in docs.items():
        ms, page_count = typst_ms(renderer, models, args.seconds)
        typst[label] = ms
        print(f"typst reused compiler, {label} ({page_count} p): {1000 / ms:8.1f} docs/s  {ms:6.2f} ms/doc")
    print(f"typst fresh compiler, one-page: {fresh_compile_ms():.1f} ms/doc")

    one = typst["one-page"]
    silver = SILVER_MS / one
    print(
        f"goal ≥ {GOAL_DOCS_PER_S:.0f} one-page docs/s per core: {1000 / one:.1f}/s, "
        f"{goal(1000 / one >= GOAL_DOCS_PER_S)}"
    )
    print(
        f"vs silver's {SILVER_MS:.0f} ms per one-page invoice: typst {silver:.1f}× faster, "
        f"{goal(silver >= GOAL_RATIO)} (≥ {GOAL_RATIO:.0f}×)"
    )
    try:
        chromium = chromium_figures(docs, args.seconds)
    except ChromiumSkipped as e:
        print(f"Chromium comparison skipped: {e}")
        return
    for label, (ms, page_count) in chromium.items():
        ratio = ms / typst[label]
        print(
            f"warm Chromium HTML→PDF, {label} ({page_count} p): {1000 / ms:8.1f} docs/s  {ms:6.2f} ms/doc;"
            f" typst/Chromium {ratio:.1f}× the throughput"
            + (f", {goal(ratio >= GOAL_RATIO)} (≥ {GOAL_RATIO:.0f}×)" if label == "one-page" else "")
        )


if __name__ == "__main__":
    main()
