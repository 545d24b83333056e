"""Planning a demo organisation's customers: every random choice (when they arrive, what they subscribe
to, when they change plan, cancel or order) is made here, before any service call, so a seed fixes the
data."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fiscus.demo.clock import DAY
from fiscus.demo.scenario import Catalog, Items, Scenario
from fiscus.domain.periods import Interval, boundary
from fiscus.services.customers import CustomerSpec

MIN_PERIOD_DAYS = {"day": 1, "week": 7, "month": 28, "quarter": 89, "year": 365}
"""The shortest length of one unit, so an event placed this far into a period stays inside it."""


@dataclass(frozen=True, slots=True)
class SubPlan:
    start: datetime
    trial_days: int
    items: Items
    changes: tuple[tuple[datetime, Items], ...] = ()
    cancel: tuple[datetime, bool] | None = None
    """When, and whether at the end of the period (else immediately)."""


@dataclass(frozen=True, slots=True)
class CustomerPlan:
    spec: CustomerSpec
    created: datetime
    subscriptions: tuple[SubPlan, ...]
    orders: tuple[tuple[datetime, Items], ...]


class Planner:
    """Draws one organisation's customer plans from its random stream, against its catalog."""

    def __init__(
        self,
        scenario: Scenario,
        rng: random.Random,
        catalog: Catalog,
        start: datetime,
        now: datetime,
    ) -> None:
        self.scenario, self.rng, self.catalog, self.start, self.now = scenario, rng, catalog, start, now
        self.tz = ZoneInfo(scenario.spec.timezone)

    def minutes(self) -> timedelta:
        return timedelta(minutes=self.rng.randint(1, 24 * 60 - 1))

    def _items(self, cadence: tuple[str, int], multi: bool) -> Items:
        plan = self.rng.choice(self.catalog.plans(cadence))
        if not multi:
            return ((plan.id, self.rng.choice((1, 1, 1, 2))),)
        extras = self.catalog.addons(cadence) or [
            p for p in self.catalog.plans(cadence) if p.product != plan.product
        ]
        return ((plan.id, 1), (self.rng.choice(extras).id, self.rng.randint(2, 5)))

    def _switch(self, items: Items) -> Items:
        """The same items with the first plan replaced by another tier, up or down."""
        by_id = {p.id: p for p in self.catalog.prices}
        current = by_id[items[0][0]]
        cadence = current.offer.cadence
        assert cadence is not None
        others = [p for p in self.catalog.plans(cadence) if p.id != current.id]
        same = [p for p in others if p.product == current.product]
        target = self.rng.choice(same or others)
        return ((target.id, items[0][1]), *items[1:])

    def _moments(self, first: datetime, cadence: tuple[str, int], count: int) -> list[datetime]:
        """Up to `count` instants, each well inside a later billed period (so changes prorate)."""
        interval = Interval.parse(*cadence)
        span = MIN_PERIOD_DAYS[cadence[0]] * cadence[1] - 2
        out: list[datetime] = []
        k = 0
        for _ in range(count):
            k += self.rng.randint(1 if out else 0, 3)
            when = boundary(first, interval, k, self.tz) + timedelta(days=self.rng.randint(8, span))
            when += self.minutes()
            if when >= self.now - DAY:
                break
            out.append(when)
        return out

    def _plan_subscription(self, start: datetime) -> SubPlan:
        rng = self.rng
        cadence = rng.choice(self.scenario.cadences)
        items = self._items(cadence, multi=rng.randrange(100) < 30)
        trial = rng.choice((7, 14)) if rng.randrange(100) < 25 else 0
        if trial and rng.randrange(100) < 25:
            return SubPlan(
                start, trial, items, cancel=(start + timedelta(days=rng.randint(1, trial - 1)), False)
            )
        first = start + timedelta(days=trial)
        wanted = rng.choice((0, 0, 1, 1, 2, 3))
        moments = self._moments(first, cadence, wanted)
        cancel = None
        if moments and rng.randrange(100) < 40:
            cancel = (moments.pop(), rng.randrange(100) < 50)
        changes = []
        current = items
        for when in moments:
            current = self._switch(current)
            changes.append((when, current))
        return SubPlan(start, trial, items, tuple(changes), cancel)

    def _order_items(self) -> Items:
        picked = self.rng.sample(self.catalog.one_offs(), self.rng.randint(1, 3))
        return tuple((p.id, self.rng.choice((1, 1, 2, 3))) for p in picked)

    def customer(self, spec: CustomerSpec) -> CustomerPlan:
        rng = self.rng
        created = self.start + timedelta(days=rng.randint(0, 320)) + self.minutes()
        subs = tuple(
            self._plan_subscription(created + timedelta(days=rng.randint(0, 20)) + self.minutes())
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3)))
        )
        days = (self.now - created).days - 1
        orders = tuple(
            sorted(
                (created + timedelta(days=rng.randint(0, days)) + self.minutes(), self._order_items())
                for _ in range(rng.choice((0, 0, 1, 1, 2, 3)))
            )
        )
        return CustomerPlan(spec, created, subs, orders)

    def heavy(self, spec: CustomerSpec) -> CustomerPlan:
        """A customer with enough documents to page through: many monthly plans and regular orders."""
        created = self.start + timedelta(minutes=10)
        subs = []
        for i in range(self.scenario.heavy_subscriptions):
            start = created + timedelta(hours=1 + 5 * i)
            items = self._items(("month", 1), multi=i == 1)
            changes: tuple[tuple[datetime, Items], ...] = ()
            if i in (2, 3):
                up = self._switch(items)
                moments = self._moments(start, ("month", 1), 2)
                changes = tuple(zip(moments, (up, items), strict=False))
            subs.append(SubPlan(start, 0, items, changes))
        orders = tuple(
            (created + timedelta(weeks=4 * k + 2) + self.minutes(), self._order_items()) for k in range(12)
        )
        return CustomerPlan(spec, created, tuple(subs), orders)

    # -- replay: the service calls, each at its own historical instant
