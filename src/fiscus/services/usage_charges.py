"""The lines of a subscription period's usage charges: measured from the hour buckets, charged by the
price's model, one line per part (quantity × unit price, settled once), described with metric, group
and tier and dated with the period. Shared by billing, the preview and late-event adjustments.
A plan change mid-period splits it: each usage price is measured over the part of the period it was
on the subscription (services/usage_windows.py), its lines dated with that part."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.context import CustomerContext, OrgContext, PriceContext, load_prices
from fiscus.domain.charges import compute_charge
from fiscus.domain.documents import LineInput, LineKind
from fiscus.domain.money import currency
from fiscus.domain.periods import Period
from fiscus.domain.tax import line_tax
from fiscus.queries.usage import GroupUsage, measure
from fiscus.services.usage_metrics import metric_of
from fiscus.services.usage_prices import UsagePrice, load_usage_prices
from fiscus.services.usage_windows import price_windows


@dataclass(frozen=True, slots=True)
class Measured:
    """One usage charge of one group, as billed: the first line's index and the lines it became."""

    price_id: int
    metric_id: int
    metric_code: str
    group: str
    quantity: Any
    events: int
    first_line: int
    parts: list[dict[str, str | int | None]]


def usage_lines_for(
    conn: Connection,
    sub: dict[str, Any],
    org: OrgContext,
    customer: CustomerContext,
    sub_prices: Sequence[UsagePrice],
    prices: dict[int, PriceContext],
    period: Period,
) -> tuple[list[LineInput], list[Measured]]:
    """The usage lines of one subscription period (also the upcoming-invoice preview's); `sub_prices`:
    the subscription's usage prices now (those a plan change removed are found by `price_windows`)."""
    cur = currency(sub["currency"])
    by_id = {up.price_id: up for up in sub_prices}
    windows = price_windows(conn, sub["id"], list(by_id), period)
    gone = {pid for pid, _w in windows} - set(by_id)
    if gone:  # usage prices a plan change removed during the period
        by_id.update(load_usage_prices(conn, gone))
        prices = {**prices, **load_prices(conn, org.id, gone)}
    sub_prices = [by_id[pid] for pid, _w in windows]
    m = tu.billable_metrics.c
    metrics = {
        r["id"]: r
        for r in conn.execute(
            select(tu.billable_metrics).where(m.id.in_(sorted({p.metric_id for p in sub_prices})))
        ).mappings()
    }
    lines: list[LineInput] = []
    measured: list[Measured] = []
    for up, (_pid, window) in zip(sub_prices, windows, strict=True):
        price, row = prices[up.price_id], metrics[up.metric_id]
        metric = metric_of(dict(row))
        tax = line_tax(price.tax_category, org.tax_party, customer.tax_party, org.rates)
        groups = measure(conn, org.id, sub["customer_id"], up.metric_id, metric, window.start, window.end)
        if not groups:  # no usage: the charge still shows, at zero (its minimum may apply)
            groups = [GroupUsage("", Decimal(0), 0)]
        for g in groups:
            result = compute_charge(up.charge, g.quantity, cur, events=g.events)
            first = len(lines)
            parts: list[dict[str, str | int | None]] = []
            for part in result.parts:
                name = f"{row['name']}" + (f" · {g.group}" if g.group else "") + f" · {part.label}"
                lines.append(
                    LineInput(
                        description=f"{price.description} — {name}",
                        quantity=part.quantity,
                        unit_price=part.unit_price,
                        tax=tax,
                        tax_inclusive=price.tax_inclusive,
                        kind=LineKind.USAGE,
                        product_id=price.product_id,
                        variant_id=price.variant_id,
                        price_id=price.id,
                        period_start=window.start,
                        period_end=window.end,
                    )
                )
                parts.append(
                    {
                        "label": part.label,
                        "description": f"{price.description} — {name}",
                        "tier": part.tier,
                        "quantity": str(part.quantity),
                        "unit_price": str(part.unit_price),
                        "amount": str(part.amount),
                    }
                )
            measured.append(
                Measured(up.price_id, up.metric_id, row["code"], g.group, g.quantity, g.events, first, parts)
            )
    return lines, measured
