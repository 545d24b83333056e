"""The dashboard's values: one dataclass per figure group, each item one bucket, in exact integer
minor units of the dashboard's currency or counts (rates are kept as their two counts). The
definitions here are the ones docs/dashboard.md states."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from fiscus.domain.mrr import MrrBucket
from fiscus.queries.dashboard_buckets import Bucket, Grain

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
        return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


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
    - `recovery`: documents whose FIRST charge was made in the bucket and failed, of which how many
      were paid later: a later attempt on the document succeeded, a charge or a payment recorded
      outside Fiscus (a paid proforma's attempts stay on the proforma, so it counts too; a proforma
      marked paid by hand is paid on the invoice it became, which counts for it as well). A cohort
      figure: it can still rise as late payments arrive.
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
