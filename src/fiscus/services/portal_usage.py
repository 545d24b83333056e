"""A portal customer's current usage: per subscription, each metric and group measured so far in the
current period with its amount, computed by the same read model as `GET /api/v1/customers/{id}/usage`
(`usage_billing.preview_usage`, the code that bills it). Reads only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.money import Currency
from fiscus.services.portal import PortalSession
from fiscus.services.portal_actions import owned
from fiscus.services.usage_billing import preview_usage


@dataclass(frozen=True, slots=True)
class UsageCharge:
    metric: str
    code: str
    group: str
    quantity: Decimal
    events: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class CurrentUsage:
    """The usage of a subscription's current period so far; billed (as its own invoice) once the
    period ends, so the next-invoice preview adds it."""

    period_start: datetime
    period_end: datetime
    currency: Currency
    charges: tuple[UsageCharge, ...]
    subtotal_minor: int
    total_minor: int


def current_usage(
    db: Database, clock: Clock, session: PortalSession, subscription_id: int
) -> CurrentUsage | None:
    """The session's customer's subscription's usage so far; None without a usage price (or when
    nothing is left to bill). Another customer's subscription is NotFoundError."""
    with db.read() as conn:
        owned(conn, session, t.subscriptions, subscription_id, "subscription")
    preview = preview_usage(db, session.organization_id, subscription_id, clock.now())
    if preview is None:
        return None
    m = tu.billable_metrics.c
    with db.read() as conn:
        names = {
            int(r.id): str(r.name)
            for r in conn.execute(
                select(m.id, m.name).where(
                    m.organization_id == session.organization_id,
                    m.id.in_({x.metric_id for x in preview.measured}),
                )
            )
        }
    lines = preview.computed.lines
    charges = tuple(
        UsageCharge(
            metric=names.get(x.metric_id, x.metric_code),
            code=x.metric_code,
            group=x.group,
            quantity=Decimal(str(x.quantity)),
            events=x.events,
            amount_minor=sum(lines[x.first_line + k].amount_minor for k in range(len(x.parts))),
        )
        for x in preview.measured
    )
    return CurrentUsage(
        preview.period.start,
        preview.period.end,
        preview.computed.currency,
        charges,
        preview.computed.subtotal_minor,
        preview.computed.total_minor,
    )
