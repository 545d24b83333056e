"""PDF rendering throughput with Typst: distinct one-page and five-page documents per second on one
core with the process's reused compiler, and the cost of a fresh compiler. Prints figures, asserts
nothing about timings.

    .venv/bin/python bench/pdf.py [--seconds 3]

Each document is distinct (its own number, buyer and line texts), so no rendering is a cache hit.
The view model is built before timing: the figures are the renderer's, not babel's.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pypdf

from fiscus.adapters.pdf.renderer import PdfRenderer
from fiscus.documents.view_model import build_view_model
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.domain.money import currency
from fiscus.queries.documents import DocumentView, LineView, TaxView


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


def throughput(renderer: PdfRenderer, lines: int, seconds: float) -> tuple[float, int]:
    """Documents per second and pages per document, for `seconds` of distinct documents."""
    models = [view_model(n, lines) for n in range(1, 400)]
    page_count = pages(renderer.render(models[0]))
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        renderer.render(models[done % len(models)] | {"_n": done})
        done += 1
    return done / (time.perf_counter() - start), page_count


def fresh_compile_ms(runs: int = 5) -> float:
    model = view_model(1, 3)
    start = time.perf_counter()
    for _ in range(runs):
        PdfRenderer().render(model)
    return (time.perf_counter() - start) / runs * 1000


def chromium_figures() -> dict[str, float] | None:
    """Hook for the browser comparison (HTML page printed by headless Chromium): not built yet."""
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(f"python {platform.python_version()} on {platform.machine()}, one core")
    renderer = PdfRenderer()
    for label, lines in (("one-page", 3), ("five-page", 190)):
        rate, page_count = throughput(renderer, lines, args.seconds)
        print(
            f"typst reused compiler, {label} ({page_count} p): {rate:8.1f} docs/s  {1000 / rate:6.2f} ms/doc"
        )
    print(f"typst fresh compiler, one-page: {fresh_compile_ms():.1f} ms/doc")
    chromium = chromium_figures()
    print(
        "chromium: not measured (chromium_figures() is a hook)"
        if chromium is None
        else f"chromium: {chromium}"
    )


if __name__ == "__main__":
    main()
