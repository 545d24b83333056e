"""Monthly recurring revenue: what a subscription's recurring price is worth per month, and how a
customer's MRR moves over time (new, expansion, contraction, churn, reactivation).

MRR is a rate, not what was invoiced: a yearly price counts a twelfth of itself every month whether its
invoice was issued this month or eleven months ago; prorations, one-off lines, credit notes and taxes do
not enter it. Pure functions over integers and `Decimal`s; the read model (`queries/dashboard_mrr.py`)
feeds them rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from functools import lru_cache
from typing import Final

from fiscus.domain.money import Currency, multiply, round_minor, to_minor

PER_MONTH: Final[dict[str, Fraction]] = {
    "day": Fraction(365, 12),
    "week": Fraction(52, 12),
    "month": Fraction(1),
    "quarter": Fraction(1, 3),
    "year": Fraction(1, 12),
}
"""How many of one interval unit make a month: a day-priced item is worth 365/12 days a month (a
non-leap year), a week 52/12 weeks; a quarter a third, a year a twelfth."""


@lru_cache(maxsize=4096)
def monthly_minor(
    items: tuple[tuple[Decimal, Decimal], ...], interval: str, interval_count: int, cur: Currency
) -> int:
    """One subscription's MRR in minor units: Σ quantity × unit amount of its items, times months per
    billing interval (`PER_MONTH` / interval_count), rounded half-up ONCE per subscription (not per
    item, not per customer), so a subscription's MRR is the figure an operator can recompute by hand.
    Cached: subscriptions on the same plan share the computation (items must be a hashable tuple)."""
    exact = sum((quantity * unit for quantity, unit in items), Decimal(0))
    ratio = PER_MONTH[interval] / interval_count
    return to_minor(round_minor(multiply(exact, ratio), cur), cur)


class Movement(StrEnum):
    NEW = "new"
    EXPANSION = "expansion"
    CONTRACTION = "contraction"
    CHURN = "churn"
    REACTIVATION = "reactivation"


def classify(before: int, after: int, had_mrr_before: bool) -> Movement | None:
    """The movement of one customer's MRR from `before` to `after` at one instant (customer level, as
    ChartMogul and Baremetrics count it: a second subscription of a paying customer is expansion)."""
    if before == after:
        return None
    if before == 0:
        return Movement.REACTIVATION if had_mrr_before else Movement.NEW
    if after == 0:
        return Movement.CHURN
    return Movement.EXPANSION if after > before else Movement.CONTRACTION


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of time in which one subscription of one customer is worth `monthly_minor` a month:
    from `start` (inclusive) to `end` (exclusive; None: still running)."""

    customer_id: int
    subscription_id: int
    start: datetime
    end: datetime | None
    monthly_minor: int


@dataclass(frozen=True, slots=True)
class MrrBucket:
    """MRR at the end of one bucket and the movements inside it (all positive minor-unit amounts):
    `mrr_minor` = previous bucket's (or the opening) MRR + new + expansion + reactivation − contraction
    − churn."""

    mrr_minor: int
    new_minor: int
    expansion_minor: int
    contraction_minor: int
    churn_minor: int
    reactivation_minor: int


@dataclass(frozen=True, slots=True)
class Change:
    """One movement of one customer's MRR at one instant: `amount_minor` (positive) of `kind`."""

    customer_id: int
    at: datetime
    kind: Movement
    amount_minor: int

    @property
    def net_minor(self) -> int:
        """What the change adds to MRR (negative for contraction and churn)."""
        return (
            -self.amount_minor if self.kind in (Movement.CONTRACTION, Movement.CHURN) else self.amount_minor
        )


def customer_changes(segments: Sequence[Segment]) -> list[Change]:
    """Every movement of every customer's MRR over all time, classified against that customer's whole
    history. Each customer's MRR is a step function: every segment adds its amount at its start and
    takes it away at its end. Steps at the same instant are netted first (a plan change ends one
    segment and starts the next at once), so a customer who had MRR before and comes back is a
    reactivation, not new. What is stored in `mrr_events` and what `mrr_series` folds."""
    steps: dict[int, dict[datetime, int]] = defaultdict(lambda: defaultdict(int))
    for s in segments:
        if s.monthly_minor == 0 or (s.end is not None and s.end <= s.start):
            continue
        steps[s.customer_id][s.start] += s.monthly_minor
        if s.end is not None:
            steps[s.customer_id][s.end] -= s.monthly_minor
    out: list[Change] = []
    for customer_id, by_instant in steps.items():
        level, had = 0, False
        for at in sorted(by_instant):
            after = level + by_instant[at]
            kind = classify(level, after, had)
            if kind is not None:
                out.append(Change(customer_id, at, kind, abs(after - level)))
            had = had or after > 0
            level = after
    return out


def fold_changes(
    changes: Sequence[tuple[int, Movement, int]], opening: int, n: int
) -> tuple[int, list[MrrBucket]]:
    """The buckets of (bucket index, kind, amount) sums: MRR at each bucket's end from the opening."""
    sums = [[0] * 5 for _ in range(n)]
    order = list(Movement)
    for i, kind, amount in changes:
        sums[i][order.index(kind)] += amount
    out: list[MrrBucket] = []
    running = opening
    for new, expansion, contraction, churn, reactivation in sums:
        running += new + expansion + reactivation - contraction - churn
        out.append(MrrBucket(running, new, expansion, contraction, churn, reactivation))
    return opening, out


def mrr_series(segments: Sequence[Segment], boundaries: Sequence[datetime]) -> tuple[int, list[MrrBucket]]:
    """The opening MRR (at `boundaries[0]`) and one `MrrBucket` per [boundaries[i], boundaries[i+1]),
    from the customers' changes (`customer_changes`)."""
    first, last = boundaries[0], boundaries[-1]
    opening = 0
    inside: list[tuple[int, Movement, int]] = []
    for c in customer_changes(segments):
        if c.at < first:
            opening += c.net_minor
        elif c.at < last:
            inside.append((_bucket_of(boundaries, c.at), c.kind, c.amount_minor))
    return fold_changes(inside, opening, len(boundaries) - 1)


def _bucket_of(boundaries: Sequence[datetime], at: datetime) -> int:
    """The index i with boundaries[i] <= at < boundaries[i+1] (binary search)."""
    lo, hi = 0, len(boundaries) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if boundaries[mid] <= at:
            lo = mid
        else:
            hi = mid
    return lo
