"""The demo's usage (issue 16): billable metrics, usage prices beside the plans, and the events a
metered subscription reports, generated from the simulation's clock and sent a week at a time through
the public ingest service, so the ordinary billing run bills them in arrears (tiers as lines).

A customer's usage is measured per customer, not per subscription (ADR 0008), so only a customer's
first monthly subscription on a metered plan carries the usage prices: two would bill the same events.
Every value is drawn from the meter's own random stream, so the rest of the year is the same with or
without usage."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.demo.clock import DAY
from fiscus.domain.clock import Clock
from fiscus.services.usage_ingest import IMPORT_BATCH, EventIn, ingest_events
from fiscus.services.usage_metrics import MetricSpec, create_metric

REPORT_LATE_DAYS = 14
"""The meter reports a week at a time; the last report of the year can cover a little more than the
organisation's default late window of 7 days, so its batches pass this backfill window."""


@dataclass(frozen=True, slots=True)
class UsageCharge:
    """What makes an offer a usage price: its metric's code, charge model and properties."""

    metric: str
    model: str
    properties: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Report:
    """How a metered subscription reports one metric: every `every_days`, a value drawn between `low`
    and `high` (in units of 10^-`places`), or with `delta`, an increment of the held level (a weighted
    sum: the first report brings the level to the drawn value, later ones move it by ±`delta`)."""

    metric: str
    prop: str
    every_days: int
    low: int
    high: int
    places: int = 0
    delta: int | None = None


@dataclass(frozen=True, slots=True)
class Metering:
    """A scenario's usage: its metrics, which usage offers each plan carries, and what is reported."""

    metrics: tuple[MetricSpec, ...]
    usage_offers: Mapping[str, tuple[str, ...]]
    """Plan offer code → the usage offer codes added to a metered subscription of that plan."""
    reports: tuple[Report, ...]
    share_percent: int = 100
    """Of the customers whose first monthly subscription is on a metered plan, the share metered."""


@dataclass(slots=True)
class _Metered:
    subscription_id: int
    customer_id: int
    next_at: list[datetime]
    """Per report: when it is next due."""
    levels: list[int] = field(default_factory=list)


class Meter:
    """One organisation's usage in the simulation: which subscriptions are metered and their reports."""

    def __init__(self, db: Database, org_id: int, metering: Metering, rng: random.Random) -> None:
        self.db, self.org_id, self.metering, self.rng = db, org_id, metering, rng
        self.metric_ids: dict[str, int] = {}
        self.usage_prices: dict[str, int] = {}
        """Usage offer code → price id."""
        self.metered: dict[int, _Metered] = {}
        self._customers: set[int] = set()

    def create_metrics(self, clock: Clock) -> None:
        for spec in self.metering.metrics:
            self.metric_ids[spec.code] = create_metric(self.db, clock, self.org_id, spec, actor="demo")

    def usage_items(self, plan_code: str) -> list[int]:
        """The usage prices a metered subscription of this plan carries (none for other plans)."""
        return [self.usage_prices[code] for code in self.metering.usage_offers.get(plan_code, ())]

    def wants(self, customer_id: int, plan_code: str, monthly: bool) -> bool:
        """Whether a new subscription is metered: the customer's first monthly one on a metered plan
        (for the scenario's share of such customers)."""
        if not monthly or customer_id in self._customers or not self.usage_items(plan_code):
            return False
        self._customers.add(customer_id)
        return self.rng.randrange(100) < self.metering.share_percent

    def start(self, subscription_id: int, customer_id: int, first_at: datetime) -> None:
        """Meter a subscription just created; its first reports come after `first_at` (its trial's end,
        or now), each at a time of day of its own."""
        reports = self.metering.reports
        next_at = [first_at + timedelta(minutes=self.rng.randint(30, 23 * 60)) for _r in reports]
        self.metered[subscription_id] = _Metered(subscription_id, customer_id, next_at, [0] * len(reports))

    def report(self, clock: Clock, until: datetime) -> int:
        """Send every report due up to `until` (the clock's instant) of the metered subscriptions still
        running, in batches through the ingest service; how many events were sent."""
        if not self.metered:
            return 0
        s = t.subscriptions.c
        with self.db.read() as conn:
            ends = {
                r.id: r.ended_at or r.cancel_at
                for r in conn.execute(
                    select(s.id, s.ended_at, s.cancel_at).where(s.id.in_(sorted(self.metered)))
                )
            }
        events: list[EventIn] = []
        for sid in sorted(self.metered):
            events.extend(self._events(self.metered[sid], until, ends.get(sid)))
        for i in range(0, len(events), IMPORT_BATCH):
            ingest_events(
                self.db,
                clock,
                self.org_id,
                events[i : i + IMPORT_BATCH],
                late_days=REPORT_LATE_DAYS,
                limit=IMPORT_BATCH,
            )
        return len(events)

    def _events(self, sub: _Metered, until: datetime, end: datetime | None) -> list[EventIn]:
        out: list[EventIn] = []
        for k, rep in enumerate(self.metering.reports):
            while sub.next_at[k] <= until and (end is None or sub.next_at[k] < end):
                at = sub.next_at[k]
                drawn = self.rng.randint(rep.low, rep.high)
                if rep.delta is not None:
                    level = (
                        drawn
                        if not sub.levels[k]
                        else sub.levels[k] + self.rng.randint(-rep.delta, rep.delta)
                    )
                    level = max(level, 0)
                    value, sub.levels[k] = level - sub.levels[k], level
                else:
                    value = drawn
                if value:
                    out.append(
                        EventIn(
                            f"demo-{sub.subscription_id}-{rep.metric}-{at:%Y%m%d%H%M}",
                            rep.metric,
                            at,
                            {rep.prop: _number(value, rep.places)},
                            sub.customer_id,
                        )
                    )
                sub.next_at[k] = at + rep.every_days * DAY
        return out


def _number(value: int, places: int) -> int | str:
    """An integer, or a decimal string (event properties never carry floats)."""
    return value if not places else str(Decimal(value).scaleb(-places))
