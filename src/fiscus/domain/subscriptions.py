"""Subscriptions: their states, and which periods are due for billing at a given instant.

Billing is in advance: a period is due once its start has passed. Periods are cut on a grid of
boundaries computed from the billing anchor in the organisation's time zone (domain/periods.py), so
month ends clamp and DST never moves a boundary. A subscription that starts between two boundaries
gets a first, shorter period charged pro rata (the anchor decides the cycle, as Stripe's
billing_cycle_anchor does). A trial produces no document: the first billed period starts at its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from fractions import Fraction
from typing import Final
from zoneinfo import ZoneInfo

from fiscus.domain.periods import Interval, Period, boundary, index_of

MAX_PERIODS_PER_RUN: Final = 400
"""A safety bound: a subscription never gets more periods than this in one run (a bad anchor or clock
would otherwise create thousands of documents)."""


class SubscriptionStatus(StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    ENDED = "ended"


BILLABLE_STATUSES: Final = frozenset(
    {SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE}
)


@dataclass(frozen=True, slots=True)
class Schedule:
    """The boundary grid of one subscription."""

    anchor: datetime
    interval: Interval
    tz: ZoneInfo

    def period_from(self, start: datetime) -> Period:
        """The period that starts at `start` and ends on the next grid boundary after it."""
        n = index_of(self.anchor, self.interval, self.tz, start)
        return Period(start, boundary(self.anchor, self.interval, n + 1, self.tz))

    def full_period_around(self, at: datetime) -> Period:
        n = index_of(self.anchor, self.interval, self.tz, at)
        return Period(
            boundary(self.anchor, self.interval, n, self.tz),
            boundary(self.anchor, self.interval, n + 1, self.tz),
        )

    def charge_ratio(self, period: Period) -> Fraction:
        """The share of a full period's price that `period` costs (1 unless it is a short first one)."""
        full = self.full_period_around(period.start)
        if full.start == period.start and full.end == period.end:
            return Fraction(1)
        return Fraction(_micros(period.end - period.start), _micros(full.end - full.start))

    def unused_ratio(self, period: Period, at: datetime) -> Fraction:
        """The share of a full period's price not yet used at `at` within a billed `period`."""
        if at <= period.start:
            return self.charge_ratio(period)
        if at >= period.end:
            return Fraction(0)
        full = self.full_period_around(period.start)
        return Fraction(_micros(period.end - at), _micros(full.end - full.start))


def _micros(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


def due_periods(
    schedule: Schedule, next_start: datetime, at: datetime, stop_at: datetime | None = None
) -> list[Period]:
    """Every period starting at or after `next_start` whose start is ≤ `at` and before `stop_at`.

    The result tiles time from `next_start` without gaps; the caller stores each as a period row
    (unique per subscription and start), which is what makes billing a period twice impossible.
    """
    periods: list[Period] = []
    start = next_start
    while start <= at and (stop_at is None or start < stop_at) and len(periods) < MAX_PERIODS_PER_RUN:
        period = schedule.period_from(start)
        if stop_at is not None and period.end > stop_at:
            period = Period(period.start, stop_at)
        periods.append(period)
        start = period.end
    return periods
