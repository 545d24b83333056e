"""The dashboard's charts as server-rendered SVG: no JavaScript, no chart library, nothing fetched.

Each chart is an `<svg role="img">` named by its `<title>` and described by its `<desc>` (both
referenced by `aria-labelledby`/`aria-describedby`), with the table behind it rendered right below it
by the template, so a screen reader, a keyboard user or a printout gets every number. Amounts are the
dashboard's exact minor units, formatted with the currency's ISO 4217 digits in the operator's locale
(babel, through `documents.view_model.format_minor`); the only arithmetic here is placing shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_decimal, format_percent
from markupsafe import Markup

from fiscus.documents.view_model import format_minor
from fiscus.domain.money import currency
from fiscus.queries.dashboard import Dashboard, Ratio
from fiscus.queries.dashboard_buckets import Bucket, Grain
from fiscus.web.console.chart_labels import labels

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 96, 12, 34, 38
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
AGEING_HEIGHT = 150
MAX_X_LABELS = 12
COLORS = ("#1f5fa8", "#2e7d32", "#7b1fa2", "#b3261e", "#a15c00")
"""Each at least 4.5:1 against white (WCAG 1.4.11 asks 3:1 for graphics), so bars and lines stay
visible; colour is never the only carrier: the legend names each series and the table holds the values."""


@dataclass(frozen=True, slots=True)
class Table:
    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[str, ...]], ...]
    """(row header, cells)."""


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    title: str
    description: str
    svg: Markup
    table: Table


@dataclass(frozen=True, slots=True)
class DashboardCharts:
    """What `console/dashboard_body.html` renders besides the `Dashboard` itself."""

    lang: str
    heading: str
    range_text: str
    summary: tuple[tuple[str, str], ...]
    charts: tuple[Chart, ...]
    definitions_note: str


@cache
def _locale(tag: str) -> Locale:
    try:
        return Locale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


@dataclass(frozen=True, slots=True)
class _Fmt:
    d: Dashboard
    loc: Locale

    def money(self, minor: int) -> str:
        return format_minor(minor, currency(self.d.currency), self.loc)

    def count(self, n: int) -> str:
        return str(format_decimal(n, locale=self.loc))

    def rate(self, r: Ratio) -> str:
        pct = r.percent(1)
        if pct is None:
            return "—"
        shown = format_percent(pct / 100, format="#,##0.0%", locale=self.loc, decimal_quantization=True)
        return f"{shown} ({self.count(r.numerator)}/{self.count(r.denominator)})"

    def bucket(self, b: Bucket) -> str:
        """A bucket as a row header: the month, the week's first day, or the day."""
        if self.d.grain is Grain.MONTH:
            return str(format_date(b.start, format="LLLL y", locale=self.loc))
        text = str(format_date(b.start, format="medium", locale=self.loc))
        if self.d.grain is Grain.WEEK and b.end != b.start:
            return f"{text} – {format_date(b.end, format='medium', locale=self.loc)}"
        return text

    def tick(self, day: date) -> str:
        fmt = "MMM y" if self.d.grain is Grain.MONTH else "d MMM"
        return str(format_date(day, format=fmt, locale=self.loc))


def dashboard_charts(d: Dashboard, locale: str = "en", id_prefix: str = "dash") -> DashboardCharts:
    """Every chart of the dashboard with its table, and the headline figures, in `locale`."""
    loc = _locale(locale)
    t = labels(loc.language)
    f = _Fmt(d, loc)
    rows = [f.bucket(b) for b in d.buckets]
    ticks = [f.tick(b.start) for b in d.buckets]
    cur = d.currency
    charts: list[Chart] = []

    def add(
        key: str, title: str, desc: str, svg_body: Markup, columns: Sequence[str], cells: list[list[str]]
    ) -> None:
        cid = f"{id_prefix}-{key}"
        svg = _svg(cid, title, desc, svg_body)
        charts.append(
            Chart(
                cid,
                title,
                desc,
                svg,
                Table(title, (t["period"], *columns), tuple(zip(rows, map(tuple, cells), strict=True))),
            )
        )

    mrr = [p.mrr_minor for p in d.mrr]
    add(
        "mrr",
        f"{t['mrr']} ({cur})",
        t["mrr_desc"],
        _line_chart([("mrr", mrr)], ticks, f.money, area=True, names=[t["mrr"]]),
        [t["mrr"]],
        [[f.money(v)] for v in mrr],
    )
    ups = [
        ("new", [p.new_minor for p in d.mrr]),
        ("expansion", [p.expansion_minor for p in d.mrr]),
        ("reactivation", [p.reactivation_minor for p in d.mrr]),
    ]
    downs = [
        ("contraction", [-p.contraction_minor for p in d.mrr]),
        ("churn", [-p.churn_minor for p in d.mrr]),
    ]
    add(
        "movements",
        f"{t['movements']} ({cur})",
        t["movements_desc"],
        _stacked_bars(ups + downs, ticks, f.money, [t[k] for k, _ in ups + downs]),
        [t[k] for k, _ in ups + downs] + [t["net"]],
        [
            [f.money(s[i]) for _, s in ups + downs] + [f.money(sum(s[i] for _, s in ups + downs))]
            for i in range(len(rows))
        ],
    )
    r = d.revenue
    add(
        "revenue",
        f"{t['revenue']} ({cur})",
        t["revenue_desc"],
        _grouped_bars(
            [[x.net_invoiced_minor for x in r], [x.net_collected_minor for x in r]],
            ticks,
            f.money,
            [t["net_invoiced"], t["net_collected"]],
        ),
        [
            t["invoiced"],
            t["credit_notes"],
            t["net_invoiced"],
            t["collected"],
            t["refunded"],
            t["net_collected"],
        ],
        [
            [
                f.money(x.invoiced_minor),
                f.money(x.credit_notes_minor),
                f.money(x.net_invoiced_minor),
                f.money(x.collected_minor),
                f.money(x.refunded_minor),
                f.money(x.net_collected_minor),
            ]
            for x in r
        ],
    )
    add(
        "corrections",
        f"{t['corrections']} ({cur})",
        t["corrections_desc"],
        _grouped_bars(
            [[x.credit_notes_minor for x in r], [x.refunded_minor for x in r]],
            ticks,
            f.money,
            [t["credit_notes"], t["refunded"]],
        ),
        [t["credit_notes"], t["credit_notes_count"], t["refunded"], t["refunds_count"]],
        [
            [
                f.money(x.credit_notes_minor),
                f.count(x.credit_notes),
                f.money(x.refunded_minor),
                f.count(x.refunds),
            ]
            for x in r
        ],
    )
    per_mille = [
        [_per_mille(p.success) for p in d.payments],
        [_per_mille(p.recovery) for p in d.payments],
    ]
    add(
        "payments",
        t["payments"],
        t["payments_desc"],
        _line_chart(
            [("success", per_mille[0]), ("recovery", per_mille[1])],
            ticks,
            lambda v: format_percent(Decimal(v) / 1000, format="#,##0%", locale=loc),
            names=[t["success"], t["recovery"]],
            fixed_max=1000,
        ),
        [t["success"], t["recovery"]],
        [[f.rate(p.success), f.rate(p.recovery)] for p in d.payments],
    )
    s = d.subscriptions
    add(
        "subscriptions",
        t["subscriptions"],
        t["subscriptions_desc"],
        _grouped_bars(
            [[x.active for x in s], [x.churned for x in s]], ticks, f.count, [t["active"], t["churned"]]
        ),
        [t["active"], t["churned"]],
        [[f.count(x.active), f.count(x.churned)] for x in s],
    )
    ageing = d.receivables
    cid = f"{id_prefix}-ageing"
    title = f"{t['receivables']} ({cur})"
    charts.append(
        Chart(
            cid,
            title,
            t["receivables_desc"],
            _svg(
                cid,
                title,
                t["receivables_desc"],
                _ageing_bar([a.amount_minor for a in ageing], [t[a.label] for a in ageing], f.money),
                height=AGEING_HEIGHT,
            ),
            Table(
                title,
                (t["overdue"], t["documents"], t["amount_due"]),
                (
                    *tuple((t[a.label], (f.count(a.documents), f.money(a.amount_minor))) for a in ageing),
                    (t["total"], (f.count(sum(a.documents for a in ageing)), f.money(d.receivables_minor))),
                ),
            ),
        )
    )
    last = d.mrr[-1].mrr_minor if d.mrr else d.opening_mrr_minor
    summary = (
        (t["mrr"], f.money(last)),
        (t["net_invoiced"], f.money(sum(x.net_invoiced_minor for x in r))),
        (t["net_collected"], f.money(sum(x.net_collected_minor for x in r))),
        (t["receivables"], f.money(d.receivables_minor)),
        (t["active"], f.count(s[-1].active if s else 0)),
    )
    first, last_day = (format_date(x, format="medium", locale=loc) for x in (d.start, d.end))
    span = f"{first} – {last_day}"
    return DashboardCharts(
        lang=loc.language,
        heading=f"{t['figures']} · {cur}",
        range_text=f"{span} · {t[d.grain.value]} · {d.timezone}",
        summary=summary,
        charts=tuple(charts),
        definitions_note=t["definitions"],
    )


def _per_mille(r: Ratio) -> int:
    """A rate in thousandths for placing a point (integer arithmetic; the table shows the exact counts)."""
    return 0 if r.denominator == 0 else (1000 * r.numerator + r.denominator // 2) // r.denominator


# --- SVG ------------------------------------------------------------------------------------------


def _svg(cid: str, title: str, desc: str, body: Markup, height: int = HEIGHT) -> Markup:
    return Markup(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {w} {h}" width="100%" '
        'preserveAspectRatio="xMidYMid meet" class="chart" aria-labelledby="{id}-title" '
        'aria-describedby="{id}-desc" focusable="false">'
        '<title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>{body}</svg>'
    ).format(w=WIDTH, h=height, id=cid, title=title, desc=desc, body=body)


def _nice_step(span: int) -> int:
    """A round tick step (1, 2 or 5 × 10^k) giving about four intervals over `span`."""
    raw = max(1, -(-span // 4))
    magnitude = int("1" + "0" * (len(str(raw)) - 1))
    for m in (1, 2, 5, 10):
        if m * magnitude >= raw:
            return m * magnitude
    return 10 * magnitude  # pragma: no cover


def _scale(lo: int, hi: int, fixed_max: int | None = None) -> tuple[int, int, int]:
    lo, hi = min(0, lo), max(0, hi, fixed_max or 0)
    if lo == hi:
        hi = 1
    step = _nice_step(hi - lo)
    return -(-lo // step + (1 if -lo % step else 0)) * step if lo < 0 else 0, -(-hi // step) * step, step


def _y(v: int, lo: int, hi: int) -> float:  # float-ok: a pixel position, not money
    return TOP + PLOT_H - (v - lo) * PLOT_H / (hi - lo)


def _axes(lo: int, hi: int, step: int, fmt: Callable[[int], str], ticks: Sequence[str]) -> Markup:
    out = [Markup('<g class="axis" font-size="11" fill="#222">')]
    v = lo
    while v <= hi:
        y = _y(v, lo, hi)
        stroke = "#555" if v == 0 else "#ddd"
        out.append(
            Markup('<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" stroke="{}"/>').format(
                LEFT, WIDTH - RIGHT, y, y, stroke
            )
        )
        out.append(
            Markup('<text x="{}" y="{:.1f}" text-anchor="end">{}</text>').format(LEFT - 6, y + 4, fmt(v))
        )
        v += step
    n = len(ticks)
    every = max(1, -(-n // MAX_X_LABELS))
    for i in range(0, n, every):
        x = LEFT + (i + 0.5) * PLOT_W / n
        out.append(
            Markup('<text x="{:.1f}" y="{}" text-anchor="middle">{}</text>').format(
                x, HEIGHT - BOTTOM + 16, ticks[i]
            )
        )
    out.append(Markup("</g>"))
    return Markup("").join(out)


def _legend(names: Sequence[str]) -> Markup:
    out = [Markup('<g class="legend" font-size="12" fill="#222">')]
    x = LEFT
    for i, name in enumerate(names):
        out.append(
            Markup('<rect x="{}" y="8" width="12" height="12" fill="{}"/>').format(x, COLORS[i % len(COLORS)])
        )
        out.append(Markup('<text x="{}" y="18">{}</text>').format(x + 16, name))
        x += 28 + 7 * len(name)
    out.append(Markup("</g>"))
    return Markup("").join(out)


def _line_chart(
    series: Sequence[tuple[str, list[int]]],
    ticks: Sequence[str],
    fmt: Callable[[int], str],
    *,
    names: Sequence[str],
    area: bool = False,
    fixed_max: int | None = None,
) -> Markup:
    values = [v for _, s in series for v in s] or [0]
    lo, hi, step = _scale(min(values), max(values), fixed_max)
    n = max(1, len(ticks))
    out = [_axes(lo, hi, step, fmt, ticks), _legend(names)]
    for i, (_, s) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        pts = [(LEFT + (j + 0.5) * PLOT_W / n, _y(v, lo, hi)) for j, v in enumerate(s)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        if area and pts:
            base = _y(0, lo, hi)
            poly = f"{pts[0][0]:.1f},{base:.1f} {path} {pts[-1][0]:.1f},{base:.1f}"
            out.append(Markup('<polygon points="{}" fill="{}" fill-opacity="0.15"/>').format(poly, color))
        out.append(
            Markup('<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>').format(path, color)
        )
        if len(pts) <= 60:
            for x, y in pts:
                out.append(Markup('<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"/>').format(x, y, color))
    return Markup("").join(out)


def _stacked_bars(
    series: Sequence[tuple[str, list[int]]],
    ticks: Sequence[str],
    fmt: Callable[[int], str],
    names: Sequence[str],
) -> Markup:
    """Positive series stack upward from zero, negative ones downward."""
    n = max(1, len(ticks))
    tops = [sum(max(0, s[i]) for _, s in series) for i in range(len(ticks))] or [0]
    bottoms = [sum(min(0, s[i]) for _, s in series) for i in range(len(ticks))] or [0]
    lo, hi, step = _scale(min(bottoms), max(tops))
    width = PLOT_W / n
    out = [_axes(lo, hi, step, fmt, ticks), _legend(names)]
    for i in range(len(ticks)):
        up, down = 0, 0
        for k, (_, s) in enumerate(series):
            v = s[i]
            if v == 0:
                continue
            a, b = (up, up + v) if v > 0 else (down + v, down)
            if v > 0:
                up += v
            else:
                down += v
            y1, y2 = _y(b, lo, hi), _y(a, lo, hi)
            out.append(
                Markup('<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"/>').format(
                    LEFT + i * width + width * 0.15,
                    y1,
                    width * 0.7,
                    max(0.5, y2 - y1),
                    COLORS[k % len(COLORS)],
                )
            )
    return Markup("").join(out)


def _grouped_bars(
    series: Sequence[list[int]], ticks: Sequence[str], fmt: Callable[[int], str], names: Sequence[str]
) -> Markup:
    n = max(1, len(ticks))
    values = [v for s in series for v in s] or [0]
    lo, hi, step = _scale(min(values), max(values))
    width = PLOT_W / n
    bar = width * 0.8 / max(1, len(series))
    out = [_axes(lo, hi, step, fmt, ticks), _legend(names)]
    zero = _y(0, lo, hi)
    for k, s in enumerate(series):
        for i, v in enumerate(s):
            if v == 0:
                continue
            y = _y(v, lo, hi)
            out.append(
                Markup('<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"/>').format(
                    LEFT + i * width + width * 0.1 + k * bar,
                    min(y, zero),
                    bar,
                    max(0.5, abs(zero - y)),
                    COLORS[k % len(COLORS)],
                )
            )
    return Markup("").join(out)


def _ageing_bar(amounts: Sequence[int], names: Sequence[str], fmt: Callable[[int], str]) -> Markup:
    """One horizontal bar split by age, widths in proportion to the amounts due."""
    total = sum(amounts)
    out = [_legend(names)]
    x = float(LEFT)
    y, h = TOP + 10, 60
    if total == 0:
        out.append(
            Markup('<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#555"/>').format(
                LEFT, y, PLOT_W, h
            )
        )
    for k, amount in enumerate(amounts):
        if amount <= 0:
            continue
        w = amount * PLOT_W / total
        out.append(
            Markup('<rect x="{:.1f}" y="{}" width="{:.1f}" height="{}" fill="{}"/>').format(
                x, y, w, h, COLORS[k % len(COLORS)]
            )
        )
        x += w
    out.append(
        Markup('<text x="{}" y="{}" font-size="12" fill="#222">{}</text>').format(
            LEFT, y + h + 24, fmt(total)
        )
    )
    return Markup("").join(out)


__all__ = ["Chart", "DashboardCharts", "Table", "dashboard_charts"]
