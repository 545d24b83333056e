"""The discounts of a late-usage adjustment (issue 16 with issue 17): the period's own, not today's.

Policy (docs/discounts.md, ADR 0008):
* A period whose usage was billed on a document: its adjustments carry the coupon discounts that
  document carried, with the same terms (a percentage, or a fixed amount for the period), whether the
  discount is still running, has ended since or was removed: they belong to that period. They count no
  further period of a once/repeating coupon (the period was counted when it was first billed), and a
  coupon redeemed after the period does not reach it.
* What the adjustment takes back is taken back at what was charged for it: a part a coupon reduced is
  restated as −1 × its net amount (as a credit note restates a discounted line), so the adjustment is
  exactly (the period measured again, discounted) − (what was charged for it).
* Promotional credit is a balance, not a term: what a period consumed stays consumed, and the part of
  a line it paid is taken back with the line (the customer keeps the benefit); an adjustment consumes
  no new credit.
* A period billed without a document (nothing used then): the adjustment is that period's first
  document and gets its discounts as any document of the billing run does (`apply_discounts`: the
  discounts in force, counted; promotional credit).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from fiscus.adapters.db import tables_discounts as td
from fiscus.domain.discounts import DiscountInput
from fiscus.domain.documents import line_amount_minor
from fiscus.domain.money import Currency, from_minor
from fiscus.services.discounts import coupon_of, metric_prices


def period_discounts(conn: Connection, document_id: int) -> list[DiscountInput]:
    """The coupon discounts a period's usage document carried, in the order they were applied (the
    stacking order), each with the reason the document printed."""
    da, cc = td.document_allowances.c, td.coupons.c
    carried = conn.execute(
        select(da.discount_id, da.coupon_id, da.reason, func.min(da.id).label("first"))
        .where(da.document_id == document_id, da.coupon_id.is_not(None), da.wallet_grant_id.is_(None))
        .group_by(da.discount_id, da.coupon_id, da.reason)
        .order_by("first")
    ).all()
    if not carried:
        return []
    rows = {
        r["id"]: dict(r)
        for r in conn.execute(
            select(td.coupons).where(cc.id.in_(sorted({c.coupon_id for c in carried})))
        ).mappings()
    }
    by_metric = metric_prices(conn, rows.values())
    return [DiscountInput(coupon_of(rows[c.coupon_id], by_metric), c.reason, c.discount_id) for c in carried]


def coupon_allowances(conn: Connection, document_ids: Iterable[int]) -> dict[tuple[int, int], int]:
    """(document, line position) → what coupons took off that line (promotional credit left out)."""
    wanted = sorted(set(document_ids))
    if not wanted:
        return {}
    da = td.document_allowances.c
    return {
        (r.document_id, r.line_position): int(r.off)
        for r in conn.execute(
            select(da.document_id, da.line_position, func.sum(da.amount_minor).label("off"))
            .where(da.document_id.in_(wanted), da.coupon_id.is_not(None), da.wallet_grant_id.is_(None))
            .group_by(da.document_id, da.line_position)
        )
    }


def taken_back(part: dict[str, Any], off_minor: int, cur: Currency) -> tuple[Decimal, Decimal, str]:
    """(quantity, unit price, description suffix) of the line that takes a billed part back: its own
    −quantity × price, or, when a coupon reduced it, −1 × what was charged for it."""
    quantity, unit_price = Decimal(part["quantity"]), Decimal(part["unit_price"])
    if not off_minor:
        return -quantity, unit_price, " (billed before)"
    net = line_amount_minor(quantity, unit_price, cur) - off_minor
    return Decimal(-1), from_minor(net, cur), " (billed before, net of discount)"
