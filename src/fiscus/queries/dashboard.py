"""The operator console's dashboard: one organisation, one currency (never mixed, never converted),
calendar buckets of a day, week or month in the organisation's time zone. Every figure is exact integer
minor units (or counts); every definition is in docs/dashboard.md and on the dataclasses below.

Money figures are aggregated in SQL, grouped by bucket (`queries/dashboard_buckets.py` has the one
bucketing helper per dialect); MRR is reconstructed per subscription in Python from four statements
(`queries/dashboard_mrr.py`), because prices and quantities are exact decimals that are never summed
in SQL (ADR 0001). A fixed number of statements whatever the size of the organisation: eleven.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, case, exists, func, literal, select

from fiscus.adapters.db import tables as t
from fiscus.domain.errors import NotFoundError
from fiscus.domain.money import currency as lookup_currency
from fiscus.domain.mrr import MrrBucket, mrr_series
from fiscus.queries.dashboard_buckets import (
    Bucket,
    Grain,
    bucket_index,
    local_midnight,
    make_buckets,
    parse_grain,
)
from fiscus.queries.dashboard_mrr import SubscriptionSpan, load_segments

__all__ = [
    "AGEING",
    "AgeingBucket",
    "Bucket",
    "Dashboard",
    "MrrBucket",
    "PaymentsBucket",
    "Ratio",
    "RevenueBucket",
    "SubscriptionsBucket",
    "dashboard",
    "dashboard_currencies",
]

LIVE_DOCUMENT = ("open", "paid", "uncollectible")
"""Issued and not voided: the statuses an issued invoice or credit note counts in (drafts have no
number yet and a voided document never happened for the customer)."""

AGEING = ("current", "1-30", "31-60", "61-90", "90+")
"""Receivable ageing buckets by days past the due date (current: not yet due, or no due date)."""


@dataclass(frozen=True, slots=True)
class Ratio:
    """A rate kept as its two counts (no float ever): `numerator` of `denominator`."""

    numerator: int
    denominator: int

    def percent(self, places: int = 1) -> Decimal | None:
        """The rate as a percentage rounded half-up; None when there is nothing to divide."""
        if self.denominator == 0:
            return None
        value = Decimal(100 * self.numerator) / Decimal(self.denominator)
        return value.quantize(Decimal(1).scaleb(-places), rounding="ROUND_HALF_UP")


@dataclass(frozen=True, slots=True)
class RevenueBucket:
    """Documents and money of one bucket, in minor units of the dashboard's currency.

    - `invoiced_minor`: Σ `total_minor` (tax included) of invoices ISSUED in the bucket (their issue
      date), in status open, paid or uncollectible (a voided invoice counts nowhere); `invoices` their
      number. Proformas are requests for payment, not revenue: a paid proforma counts through the
      invoice it becomes.
    - `credit_notes_minor` / `credit_notes`: the same for credit notes, by their issue date.
    - `net_invoiced_minor` = invoiced − credit notes.
    - `collected_minor`: Σ succeeded captures by the instant they settled (card payments and payments
      recorded outside Fiscus alike); `refunded_minor` / `refunds`: Σ succeeded refunds by the instant
      they settled; `net_collected_minor` = collected − refunded.
    """

    invoiced_minor: int
    invoices: int
    credit_notes_minor: int
    credit_notes: int
    collected_minor: int
    refunded_minor: int
    refunds: int

    @property
    def net_invoiced_minor(self) -> int:
        return self.invoiced_minor - self.credit_notes_minor

    @property
    def net_collected_minor(self) -> int:
        return self.collected_minor - self.refunded_minor


@dataclass(frozen=True, slots=True)
class PaymentsBucket:
    """Charges made through the payment provider in one bucket (payments recorded outside Fiscus are
    not charges and are left out).

    - `success`: attempts created in the bucket that succeeded, of those that succeeded or failed
      (attempts still in flight and voided authorisations are in neither count).
    - `recovery`: documents whose FIRST attempt was made in the bucket and failed, of which how many
      were paid later, by a later attempt or a payment recorded outside Fiscus (a succeeded capture of
      any attempt on the document). A cohort figure: it can still rise as late payments arrive.
    """

    success: Ratio
    recovery: Ratio


@dataclass(frozen=True, slots=True)
class SubscriptionsBucket:
    """`active`: subscriptions paying at the end of the bucket (started, past their trial, not ended;
    the same set MRR sums). `churned`: subscriptions whose paid time ended in the bucket (cancelled
    now, by the dunning policy, or at a period end reached); a cancellation inside the trial is not
    churn, because nothing was lost."""

    active: int
    churned: int


@dataclass(frozen=True, slots=True)
class AgeingBucket:
    """Open invoices by how late they are today (in the organisation's time zone) against their due
    date, with what is still due on them: total − (paid − refunded) − credited. Uncollectible invoices
    are written off and not receivables; proformas are not invoices."""

    label: str
    documents: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Dashboard:
    """Every series of the dashboard, one item per bucket and aligned with `buckets`.

    `mrr`: MRR (monthly recurring revenue) at the end of each bucket and its movements within it
    (`domain/mrr.py`): each active subscription's recurring items normalised to a month (a yearly
    price / 12, quarterly / 3, weekly × 52/12, daily × 365/12; divided by the interval count), rounded
    half-up once per subscription; movements per customer: new (first MRR ever), expansion, contraction,
    churn (to zero), reactivation (back from zero). MRR is not what was invoiced.
    `opening_mrr_minor`: MRR at the start of the range, so that for every bucket
    MRR = previous MRR + new + expansion + reactivation − contraction − churn.
    `receivables`: a snapshot as of `as_of`, not a series (see `AgeingBucket`).
    """

    organization_id: int
    currency: str
    exponent: int
    timezone: str
    grain: Grain
    start: date
    end: date
    as_of: datetime
    buckets: tuple[Bucket, ...]
    opening_mrr_minor: int
    mrr: tuple[MrrBucket, ...]
    revenue: tuple[RevenueBucket, ...]
    payments: tuple[PaymentsBucket, ...]
    subscriptions: tuple[SubscriptionsBucket, ...]
    receivables: tuple[AgeingBucket, ...]

    @property
    def receivables_minor(self) -> int:
        return sum(a.amount_minor for a in self.receivables)


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
    q = _Query(conn, organization_id, cur.code, len(buckets), days, boundaries)
    as_of = now if now is not None else boundaries[-1] - timedelta(microseconds=1)

    spans, segments = load_segments(conn, organization_id, cur)
    opening, mrr = mrr_series(segments, boundaries)
    subs = _subscription_counts(spans, boundaries)
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


def _subscription_counts(
    spans: list[SubscriptionSpan], boundaries: list[datetime]
) -> list[SubscriptionsBucket]:
    """Active at each bucket end and churned within each bucket, by binary search over the sorted
    starts and ends of the subscriptions that were ever paying (O((subscriptions + buckets) log))."""
    paying = [s for s in spans if s.ever_active]
    starts = sorted(s.start for s in paying)
    ends = sorted(s.end for s in paying if s.end is not None)
    out = []
    for lo, hi in zip(boundaries, boundaries[1:], strict=False):
        active = bisect_left(starts, hi) - bisect_left(ends, hi)  # started before hi, not ended before hi
        out.append(SubscriptionsBucket(active, bisect_left(ends, hi) - bisect_left(ends, lo)))
    return out


@dataclass(frozen=True, slots=True)
class _Query:
    """The grouped statements, sharing the organisation, currency and bucket bounds: `days` the
    buckets' first calendar days and the day after the range, `instants` the same as UTC instants."""

    conn: Connection
    org: int
    cur: str
    n: int
    days: list[date]
    instants: list[datetime]

    def _by_bucket(
        self, col: Any, of_dates: bool, values: list[Any], where: list[Any], source: Any
    ) -> list[Any]:
        """(bucket index, Σ value...) per bucket: the rows of `source` within the range, summed per
        bucket. The index is computed in a subquery and grouped on outside, so its expression (and its
        parameters) appears once in the statement."""
        bounds = self.days if of_dates else self.instants
        idx = bucket_index(self.conn.dialect.name, col, bounds, of_dates).label("k")
        inner = (
            select(idx, *(v.label(f"v{i}") for i, v in enumerate(values)))
            .select_from(source)
            .where(*where, col >= bounds[0], col < bounds[-1])
            .subquery()
        )
        sums = [func.sum(c) for c in list(inner.c)[1:]]
        return list(self.conn.execute(select(inner.c.k, *sums).group_by(inner.c.k)))

    def documents(self) -> list[list[list[int]]]:
        """[bucket][0 invoices / 1 credit notes] = [Σ total_minor, count]."""
        d = t.documents.c
        is_invoice = case((d.type == "invoice", 1), else_=0)
        rows = self._by_bucket(
            d.issue_date,
            True,
            [is_invoice * d.total_minor, is_invoice, (1 - is_invoice) * d.total_minor, 1 - is_invoice],
            [
                d.organization_id == self.org,
                d.type.in_(("invoice", "credit_note")),
                d.status.in_(LIVE_DOCUMENT),
                d.currency == self.cur,
            ],
            t.documents,
        )
        out = [[[0, 0], [0, 0]] for _ in range(self.n)]
        for r in rows:
            out[int(r[0])] = [[int(r[1]), int(r[2])], [int(r[3]), int(r[4])]]
        return out

    def _movements(self, table: Any) -> list[list[int]]:
        """[bucket] = [Σ amount_minor, count] of a money movement table's succeeded rows."""
        m, a = table.c, t.payment_attempts.c
        settled = func.coalesce(m.settled_at, m.created_at)
        rows = self._by_bucket(
            settled,
            False,
            [m.amount_minor, literal(1)],
            [m.organization_id == self.org, m.status == "succeeded", a.currency == self.cur],
            table.join(t.payment_attempts, a.id == m.attempt_id),
        )
        out = [[0, 0] for _ in range(self.n)]
        for r in rows:
            out[int(r[0])] = [int(r[1]), int(r[2])]
        return out

    def captures(self) -> list[int]:
        return [amount for amount, _ in self._movements(t.payment_captures)]

    def refunds(self) -> list[list[int]]:
        return self._movements(t.payment_refunds)

    def attempts(self) -> list[Ratio]:
        a = t.payment_attempts.c
        rows = self._by_bucket(
            a.created_at,
            False,
            [case((a.status == "succeeded", 1), else_=0), literal(1)],
            [
                a.organization_id == self.org,
                a.currency == self.cur,
                a.provider != "external",
                a.status.in_(("succeeded", "failed")),
            ],
            t.payment_attempts,
        )
        return self._ratios(rows)

    def recovery(self) -> list[Ratio]:
        a, pc = t.payment_attempts.c, t.payment_captures.c
        firsts = (
            select(a.document_id, func.min(a.id).label("first_id"))
            .where(a.organization_id == self.org, a.currency == self.cur, a.provider != "external")
            .group_by(a.document_id)
            .subquery()
        )
        first = t.payment_attempts.alias("first")
        later = t.payment_attempts.alias("later")
        paid = exists(
            select(literal(1))
            .select_from(t.payment_captures.join(later, later.c.id == pc.attempt_id))
            .where(later.c.document_id == first.c.document_id, pc.status == "succeeded")
        )
        rows = self._by_bucket(
            first.c.created_at,
            False,
            [case((paid, 1), else_=0), literal(1)],
            [first.c.status == "failed"],
            firsts.join(first, first.c.id == firsts.c.first_id),
        )
        return self._ratios(rows)

    def _ratios(self, rows: list[Any]) -> list[Ratio]:
        out = [Ratio(0, 0)] * self.n
        for r in rows:
            out[int(r[0])] = Ratio(int(r[1]), int(r[2]))
        return out

    def receivables(self, today: date) -> tuple[AgeingBucket, ...]:
        d = t.documents.c
        due = d.total_minor - (d.amount_paid_minor - d.amount_refunded_minor) - d.amount_credited_minor
        label = case(
            (d.due_date.is_(None), literal(0)),
            (d.due_date >= today, literal(0)),
            (d.due_date >= today - timedelta(days=30), literal(1)),
            (d.due_date >= today - timedelta(days=60), literal(2)),
            (d.due_date >= today - timedelta(days=90), literal(3)),
            else_=literal(4),
        ).label("age")
        rows = self.conn.execute(
            select(label, func.count(), func.sum(case((due > 0, due), else_=0)))
            .where(
                and_(
                    d.organization_id == self.org,
                    d.type == "invoice",
                    d.status == "open",
                    d.currency == self.cur,
                )
            )
            .group_by(label)
        )
        found = {int(r[0]): (int(r[1]), int(r[2] or 0)) for r in rows}
        return tuple(AgeingBucket(name, *found.get(i, (0, 0))) for i, name in enumerate(AGEING))
