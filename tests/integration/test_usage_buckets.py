"""The hour buckets a batch writes (one pass per bucket, one upsert) equal a brute-force merge of every
stored event's own partial, for every aggregation, on both databases: a transaction id repeated inside a
batch counts once (as first sent), a resend adds nothing, and a second batch in the same hours merges
into the stored rows exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects import sqlite

from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.usage import HOUR, Event, Partial, hour_of, merge, partial_of
from fiscus.queries.usage import bucket_partial
from fiscus.services import usage_store
from fiscus.services.usage_ingest import EventIn, ingest_events
from fiscus.services.usage_metrics import MetricSpec, create_metric, metric_of
from tests.builders import make_customer, make_tenant

AGGREGATIONS = ["count", "sum", "max", "min", "unique_count", "latest", "weighted_sum"]


def test_buckets_equal_the_brute_force_merge_of_the_stored_events(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg", slug="buckets")
    org = tenant.org_id
    customer = make_customer(db, clock, tenant)
    for agg in AGGREGATIONS:
        field = None if agg == "count" else "v"
        create_metric(db, clock, org, MetricSpec(agg, agg, agg, field, {"ok": ["yes"]}, group_by="g"))
    base = hour_of(clock.now()) - timedelta(hours=3)

    def batch(first: int, last: int) -> list[EventIn]:
        out = []
        for n in range(first, last):
            at = base + timedelta(seconds=173 * n, microseconds=n)  # three hours, ~20 events each
            props = {
                "v": f"{(n * 7) % 11 - 3}.{n % 4}",
                "g": "ab"[n % 2],
                "ok": "no" if n % 9 == 0 else "yes",
            }
            out.append(EventIn(f"t{n}", AGGREGATIONS[n % len(AGGREGATIONS)], at, props, customer))
        return out

    first = batch(0, 40)
    twice = [
        *first,
        EventIn("t3", first[3].code, first[3].timestamp, {"v": "1000", "g": "a", "ok": "yes"}, customer),
    ]
    assert ingest_events(db, clock, org, twice) == 41  # t3 again inside the batch: the first t3 counts
    assert ingest_events(db, clock, org, [*first[10:], *batch(40, 60)]) == 50  # a resend and new events

    with db.read() as conn:
        metrics = {r["id"]: metric_of(dict(r)) for r in conn.execute(select(tu.billable_metrics)).mappings()}
        raw = (
            conn.execute(select(tu.usage_events).order_by(tu.usage_events.c.transaction_id)).mappings().all()
        )
        stored = {
            (r["metric_id"], r["group_value"], r["hour"]): bucket_partial(dict(r))
            for r in conn.execute(select(tu.usage_buckets)).mappings()
        }
        uniques = {
            (r["metric_id"], r["group_value"], r["hour"], r["value"])
            for r in conn.execute(select(tu.usage_unique_values)).mappings()
        }
    assert sorted(r["transaction_id"] for r in raw) == sorted(f"t{n}" for n in range(60))
    assert next(r for r in raw if r["transaction_id"] == "t3")["properties"] == first[3].properties
    expected: dict[tuple[int, str, datetime], Partial] = {}
    for r in raw:
        metric = metrics[r["metric_id"]]
        if r["properties"]["ok"] != "yes":
            continue  # stored, and left out of the metric by its filter
        hour = hour_of(r["occurred_at"])
        key: tuple[int, str, datetime] = (r["metric_id"], r["group_value"], hour)
        one = partial_of(metric, Event(r["transaction_id"], r["occurred_at"], r["properties"]), hour + HOUR)
        expected[key] = merge(expected[key], one) if key in expected else one
    assert set(stored) == set(expected)
    for key, want in expected.items():
        got = stored[key]
        assert (got.count, got.total, got.minimum, got.maximum) == (
            want.count,
            want.total,
            want.minimum,
            want.maximum,
        )
        assert (got.latest_at, got.latest_id, got.latest_value) == (
            want.latest_at,
            want.latest_id,
            want.latest_value,
        )
        assert got.weighted == want.weighted, key
        assert {(k[0], k[1], k[2], u) for k in [key] for u in want.uniques} <= uniques
    assert len(uniques) == sum(len(p.uniques) for p in expected.values())
    assert any(p.weighted != Decimal(0) for p in expected.values())


def test_sqlite_time_is_the_text_sqlalchemy_stores() -> None:
    dialect = sqlite.dialect()
    text = tu.usage_events.c.occurred_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert text is not None
    for at in (
        datetime(2026, 12, 7, 10, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=timezone(timedelta(hours=2, minutes=30))),
        datetime(1999, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    ):
        assert usage_store.sqlite_time(at) == text(at)


def test_values_holding_the_column_separator_are_stored_as_sent(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg", slug="separator")
    customer = make_customer(db, clock, tenant)
    create_metric(db, clock, tenant.org_id, MetricSpec("calls", "Calls", "count", group_by="g"))
    at = clock.now() - timedelta(minutes=5)
    odd = [
        EventIn("a\x1fb", "calls", at, {"g": "x\x1fy"}, customer),
        EventIn("c", "calls", at, {"g": ""}, customer),
    ]
    assert ingest_events(db, clock, tenant.org_id, odd) == 2
    assert ingest_events(db, clock, tenant.org_id, odd) == 2  # a resend: nothing new
    with db.read() as conn:
        stored = conn.execute(select(tu.usage_events.c.transaction_id, tu.usage_events.c.group_value)).all()
        counts = conn.execute(select(tu.usage_buckets.c.group_value, tu.usage_buckets.c.count)).all()
    assert sorted(stored) == [("a\x1fb", "x\x1fy"), ("c", "")]
    assert sorted(counts) == [("", 1), ("x\x1fy", 1)]
