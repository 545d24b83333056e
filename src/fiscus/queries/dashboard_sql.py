"""The dashboard's grouped statements: one per figure group, each summing one organisation's rows of
one currency per bucket over a covering index (migration 0014, `adapters/db/tables_dashboard.py`).

Documents are grouped by their calendar issue date (at most one row per day of the range comes back,
folded into buckets here); instants (attempts, captures, refunds) per bucket in SQL
(`dashboard_buckets.per_bucket`), since grouping by an instant would not reduce anything.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, exists, func, literal, or_, select

from fiscus.adapters.db import rollup_triggers
from fiscus.adapters.db import tables as t
from fiscus.adapters.db.tables_mrr import MRR_KINDS, SUBSCRIPTION_KINDS, mrr_events
from fiscus.adapters.db.tables_rollups import charge_recoveries, document_sums, payment_hours
from fiscus.domain.mrr import Movement, MrrBucket, fold_changes
from fiscus.queries.dashboard_buckets import per_bucket
from fiscus.queries.dashboard_types import AGEING, LIVE_DOCUMENT, AgeingBucket, Ratio, SubscriptionsBucket

NO_DATE = date.fromisoformat(rollup_triggers.NO_DATE)
"""How `document_sums` keys a missing date (a draft's issue date, an invoice without a due date)."""
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
"""Before any subscription: the lower bound of the opening bucket of the MRR history."""


@dataclass(slots=True)
class DashboardQueries:
    """The statements of one dashboard: organisation, currency, and the bucket bounds (`days`: each
    bucket's first calendar day and the day after the range; `instants`: the same as UTC instants)."""

    conn: Connection
    org: int
    cur: str
    n: int
    days: list[date]
    instants: list[datetime]
    single_currency: bool = field(default=False)

    def check_single_currency(self) -> None:
        """Whether every document of the organisation is in this currency (two index probes). Then
        captures and refunds, whose currency is their attempt's and so their document's, need no join
        to the attempts to be filtered by currency; otherwise they get it."""
        d = t.documents.c
        other = or_(
            exists().where(d.organization_id == self.org, d.currency < self.cur),
            exists().where(d.organization_id == self.org, d.currency > self.cur),
        )
        self.single_currency = not self.conn.execute(select(other)).scalar_one()

    def _by_instant(self, col: Any, values: list[Any], where: list[Any], source: Any) -> list[Any]:
        """(bucket index, Σ value...) per non-empty bucket of the rows of `source` whose instant
        `col` is in the range (`dashboard_buckets.per_bucket`: one statement on either dialect)."""
        return per_bucket(self.conn, col, self.instants, values, where, source)

    def documents(self) -> list[list[list[int]]]:
        """[bucket][0 invoices / 1 credit notes] = [Σ total_minor, count], by issue date, from the
        maintained `document_sums` (at most a few rows per day of the range, whatever the volume)."""
        d = document_sums.c
        rows = self.conn.execute(
            select(d.issue_date, d.type, func.sum(d.total_minor), func.sum(d.n))
            .where(
                d.organization_id == self.org,
                d.currency == self.cur,
                d.issue_date >= self.days[0],
                d.issue_date < self.days[-1],
                d.type.in_(("invoice", "credit_note")),
                d.status.in_(LIVE_DOCUMENT),
            )
            .group_by(d.issue_date, d.type)
        )
        out = [[[0, 0], [0, 0]] for _ in range(self.n)]
        for day, kind, total, count in rows:
            slot = out[bisect_right(self.days, _as_date(day)) - 1][0 if kind == "invoice" else 1]
            slot[0] += int(total)
            slot[1] += int(count)
        return out

    def _movements(self, table: Any) -> list[list[int]]:
        """[bucket] = [Σ amount_minor, count] of a money movement table's succeeded rows, by the
        instant they settled (a succeeded movement always has one)."""
        m = table.c
        where = [m.organization_id == self.org, m.status == "succeeded"]
        source: Any = table
        if not self.single_currency:
            a = t.payment_attempts.c
            source = table.join(t.payment_attempts, a.id == m.attempt_id)
            where.append(a.currency == self.cur)
        rows = self._by_instant(m.settled_at, [m.amount_minor, literal(1)], where, source)
        out = [[0, 0] for _ in range(self.n)]
        for r in rows:
            out[int(r[0])] = [int(r[1] or 0), int(r[2] or 0)]
        return out

    def _whole_hours(self) -> bool:
        """Whether every bound is a whole UTC hour (local midnights of a whole-hour offset zone): then
        `payment_hours` sums are exact."""
        return all(b.minute == 0 and b.second == 0 and b.microsecond == 0 for b in self.instants)

    def _hours(self, values: list[Any]) -> list[Any]:
        h = payment_hours.c
        where = [h.organization_id == self.org, h.currency == self.cur]
        return self._by_instant(h.hour, values, where, payment_hours)

    def captures(self) -> list[int]:
        """Σ succeeded captures by the instant they settled: the maintained `payment_hours` (a row per
        hour with payments, whatever their number) when the buckets start at whole hours."""
        if self._whole_hours():
            out = [0] * self.n
            for r in self._hours([payment_hours.c.captured_minor]):
                out[int(r[0])] = int(r[1] or 0)
            return out
        return [amount for amount, _ in self._movements(t.payment_captures)]

    def refunds(self) -> list[list[int]]:
        return self._movements(t.payment_refunds)

    def attempts(self) -> list[Ratio]:
        """Succeeded of (succeeded + failed) card attempts, by creation (`payment_hours` when the
        buckets start at whole hours, the attempts themselves otherwise)."""
        if self._whole_hours():
            h = payment_hours.c
            return self._ratios(self._hours([h.succeeded, h.attempts]))
        a = t.payment_attempts.c
        rows = self._by_instant(
            a.created_at,
            [case((a.status == "succeeded", 1), else_=0), literal(1)],
            [
                a.organization_id == self.org,
                a.currency == self.cur,
                a.status.in_(("succeeded", "failed")),
                a.provider != "external",
            ],
            t.payment_attempts,
        )
        return self._ratios(rows)

    def recovery(self) -> list[Ratio]:
        """Documents whose first card attempt was made in the bucket and failed, and of those the ones
        paid by an attempt: the maintained `charge_recoveries` (one row per such document, kept by
        the attempts' triggers), summed per bucket over its covering index."""
        r = charge_recoveries.c
        rows = self._by_instant(
            r.created_at,
            [r.recovered, literal(1)],
            [r.organization_id == self.org, r.currency == self.cur],
            charge_recoveries,
        )
        return self._ratios(rows)

    def _ratios(self, rows: list[Any]) -> list[Ratio]:
        out = [Ratio(0, 0)] * self.n
        for r in rows:
            out[int(r[0])] = Ratio(int(r[1] or 0), int(r[2] or 0))
        return out

    def mrr(self) -> tuple[int, list[MrrBucket], list[SubscriptionsBucket]]:
        """Opening MRR, MRR with its movements and active/churned subscriptions per bucket, from the
        maintained `mrr_events` (one range read of the covering index: every row up to the range's
        end, the ones before it folded into the opening figures)."""
        m = mrr_events.c
        kinds = (*MRR_KINDS, *SUBSCRIPTION_KINDS)
        rows = self._by_instant_from(
            EARLIEST,
            m.at,
            [case((m.kind == k, m.amount_minor), else_=0) for k in kinds],
            [m.organization_id == self.org, m.currency == self.cur],
            mrr_events,
        )
        sums = [[0] * len(kinds) for _ in range(self.n + 1)]
        for r in rows:
            sums[int(r[0])] = [int(v or 0) for v in r[1:]]
        new, expansion, contraction, churn, reactivation, started, ended = sums[0]
        opening = new + expansion + reactivation - contraction - churn
        active = started - ended
        changes: list[tuple[int, Movement, int]] = []
        subscriptions: list[SubscriptionsBucket] = []
        for i, bucket in enumerate(sums[1:]):
            changes += [(i, Movement(k), bucket[j]) for j, k in enumerate(MRR_KINDS)]
            active += bucket[5] - bucket[6]
            subscriptions.append(SubscriptionsBucket(active, bucket[6]))
        _, series = fold_changes(changes, opening, self.n)
        return opening, series, subscriptions

    def _by_instant_from(
        self, earliest: datetime, col: Any, values: list[Any], where: list[Any], source: Any
    ) -> list[Any]:
        """As `_by_instant`, with one more bucket first (index 0) for everything since `earliest`."""
        return per_bucket(self.conn, col, [earliest, *self.instants], values, where, source)

    def receivables(self, today: date) -> tuple[AgeingBucket, ...]:
        """Open invoices by days past due as of `today`, with what is still due on them (each
        document's due never below 0): the maintained `document_sums` by due date (a row per due date
        and issue date, whatever the number of invoices)."""
        d = document_sums.c
        rows = self.conn.execute(
            select(d.due_date, func.sum(d.n), func.sum(d.due_minor))
            .where(
                d.organization_id == self.org,
                d.currency == self.cur,
                d.type == "invoice",
                d.status == "open",
            )
            .group_by(d.due_date)
        )
        found = [[0, 0] for _ in AGEING]
        bounds = (today, today - timedelta(days=30), today - timedelta(days=60), today - timedelta(days=90))
        for due_date, count, amount in rows:
            due = _as_date(due_date)
            age = 0 if due == NO_DATE else sum(1 for b in bounds if due < b)
            found[age][0] += int(count)
            found[age][1] += int(amount or 0)
        return tuple(AgeingBucket(name, *found[i]) for i, name in enumerate(AGEING))


def _as_date(value: Any) -> date:
    """A DATE as the driver returns it (a date on PostgreSQL, ISO text on SQLite)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
