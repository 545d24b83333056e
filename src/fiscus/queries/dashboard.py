"""The operator console's dashboard: one organisation, one currency (never mixed, never converted),
calendar buckets of a day, week or month in the organisation's time zone. Every figure is exact integer
minor units (or counts); every definition is in docs/dashboard.md and on the dataclasses
(`queries/dashboard_types.py`).

Money figures are aggregated in SQL, grouped by bucket (`queries/dashboard_sql.py`; the bucket bounds
and the one bucketing helper per dialect in `queries/dashboard_buckets.py`); MRR is reconstructed per
subscription in Python from four statements (`queries/dashboard_mrr.py`), because prices and
quantities are exact decimals that are never summed in SQL (ADR 0001). A fixed number of statements,
whatever the size of the organisation: twelve.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from fiscus.adapters.db import tables as t
from fiscus.domain.errors import NotFoundError
from fiscus.domain.money import currency as lookup_currency
from fiscus.domain.mrr import MrrBucket
from fiscus.queries.dashboard_buckets import Bucket, Grain, local_midnight, make_buckets, parse_grain
from fiscus.queries.dashboard_sql import DashboardQueries
from fiscus.queries.dashboard_types import (
    AGEING,
    AgeingBucket,
    Dashboard,
    PaymentsBucket,
    Ratio,
    RevenueBucket,
    SubscriptionsBucket,
)

__all__ = [
    "AGEING",
    "AgeingBucket",
    "Bucket",
    "Dashboard",
    "Grain",
    "MrrBucket",
    "PaymentsBucket",
    "Ratio",
    "RevenueBucket",
    "SubscriptionsBucket",
    "dashboard",
    "dashboard_currencies",
]


def dashboard_currencies(conn: Connection, organization_id: int) -> list[str]:
    """The currencies the organisation has customers in, its default currency first (one dashboard
    each: amounts in different currencies are never added up). Customers, not documents: a customer's
    currency is fixed and every document and subscription follows it, and the table is far smaller."""
    o, c = t.organizations.c, t.customers.c
    default = conn.execute(select(o.default_currency).where(o.id == organization_id)).scalar_one_or_none()
    if default is None:
        raise NotFoundError("organization", organization_id)
    used = conn.execute(select(c.currency).where(c.organization_id == organization_id).distinct()).scalars()
    return [default, *sorted(set(used) - {default})]


def dashboard(
    conn: Connection,
    organization_id: int,
    currency: str,
    start: date,
    end: date,
    grain: str,
    *,
    now: datetime | None = None,
) -> Dashboard:
    """The dashboard of one organisation in one currency over the calendar dates `start`..`end`
    (both included, in the organisation's time zone), by `grain` (day, week or month).

    `now` (the caller's clock; pass it) dates the receivables snapshot and their ageing; without it
    they are aged as of the end of the range (the last instant of `end`), never the machine's clock."""
    cur = lookup_currency(currency)
    g = parse_grain(grain)
    o = t.organizations.c
    tz_name = conn.execute(select(o.timezone).where(o.id == organization_id)).scalar_one_or_none()
    if tz_name is None:
        raise NotFoundError("organization", organization_id)
    tz = ZoneInfo(tz_name)
    buckets = [b for _, b in make_buckets(start, end, g)]
    days = [b.start for b in buckets] + [end + timedelta(days=1)]
    boundaries = [local_midnight(day, tz) for day in days]
    q = DashboardQueries(conn, organization_id, cur.code, len(buckets), days, boundaries)
    as_of = now if now is not None else boundaries[-1] - timedelta(microseconds=1)

    q.check_single_currency()
    opening, mrr, subs = q.mrr()
    n = len(buckets)
    docs, captured, refunds = q.documents(), q.captures(), q.refunds()
    success, recovery = q.attempts(), q.recovery()
    revenue = [
        RevenueBucket(
            invoiced_minor=docs[i][0][0],
            invoices=docs[i][0][1],
            credit_notes_minor=docs[i][1][0],
            credit_notes=docs[i][1][1],
            collected_minor=captured[i],
            refunded_minor=refunds[i][0],
            refunds=refunds[i][1],
        )
        for i in range(n)
    ]
    return Dashboard(
        organization_id=organization_id,
        currency=cur.code,
        exponent=cur.exponent,
        timezone=tz.key,
        grain=g,
        start=start,
        end=end,
        as_of=as_of,
        buckets=tuple(buckets),
        opening_mrr_minor=opening,
        mrr=tuple(mrr),
        revenue=tuple(revenue),
        payments=tuple(PaymentsBucket(success[i], recovery[i]) for i in range(n)),
        subscriptions=tuple(subs),
        receivables=q.receivables(as_of.astimezone(tz).date()),
    )
