"""Exactness, on both databases: generated events (resent, late after issue, out of order, across a DST
switch and month ends, several metrics and groups) are billed, and every period's usage lines — the
original invoice plus every adjustment — equal a brute-force recomputation from the raw events, to the
minor unit."""

from __future__ import annotations

import itertools
import os
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.engine import Database
from fiscus.domain.charges import compute_charge
from fiscus.domain.clock import FixedClock
from fiscus.domain.money import currency, to_minor
from fiscus.domain.usage import WEIGHTED_PLACES
from fiscus.services.billing_run import run_billing
from fiscus.services.catalog import create_price
from fiscus.services.subscriptions import ItemSpec, create_subscription
from fiscus.services.usage_ingest import EventIn, ingest_events
from fiscus.services.usage_metrics import MetricSpec, create_metric
from fiscus.services.usage_prices import UsageSpec, charge_of
from fiscus.services.usage_settings import update_usage_settings
from tests.builders import make_customer, make_tenant
from tests.usage_support import TIERS

ANCHOR = datetime(2026, 1, 31, 22, 30, tzinfo=UTC)  # 00:30 in Sofia on Feb 1; DST on Mar 29
HORIZON = 3 * 30 * 86400
METRICS: dict[str, tuple[MetricSpec, str, dict[str, Any]]] = {
    "bw": (MetricSpec("bw", "Bandwidth", "sum", "v", group_by="g"), "graduated", {"tiers": TIERS}),
    "calls": (
        MetricSpec("calls", "Calls", "count", filters={"g": ["a", "b"]}),
        "package",
        {"unit_price": "1.5", "package_size": "3"},
    ),
    "disk": (
        MetricSpec("disk", "Disk", "weighted_sum", "v", group_by="g"),
        "per_unit",
        {"unit_price": "0.0137"},
    ),
    "users": (MetricSpec("users", "Users", "unique_count", "u"), "volume", {"tiers": TIERS}),
    "peak": (MetricSpec("peak", "Peak", "max", "v"), "per_unit", {"unit_price": "0.7"}),
    "last": (
        MetricSpec("last", "Last", "latest", "v", group_by="g"),
        "per_unit",
        {"unit_price": "0.33", "free_units": "2"},
    ),
}
_slugs = itertools.count()

raw_events = st.lists(
    st.tuples(
        st.integers(0, HORIZON),
        st.sampled_from(sorted(METRICS)),
        st.decimals(min_value=-20, max_value=200, places=2, allow_nan=False, allow_infinity=False),
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["ada", "bob", "cy"]),
        st.booleans(),  # late: sent after the periods were billed
        st.booleans(),  # resent
    ),
    max_size=60,
)


def brute(
    code: str, events: list[EventIn], start: datetime, end: datetime, group: str
) -> tuple[Decimal, int]:
    """The aggregate of one metric and group from its definition, over the deduplicated raw events."""
    spec = METRICS[code][0]
    mine = [e for e in events if e.code == code and (spec.group_by is None or e.properties["g"] == group)]
    if spec.filters:
        mine = [e for e in mine if e.properties["g"] in spec.filters["g"]]
    inside = [e for e in mine if start <= e.timestamp < end]
    values = [Decimal(str(e.properties.get("v", "0"))) for e in inside]
    agg = spec.aggregation
    if agg == "count":
        q = Decimal(len(inside))
    elif agg == "sum":
        q = sum(values, Decimal(0))
    elif agg == "max":
        q = max(values, default=Decimal(0))
    elif agg == "unique_count":
        q = Decimal(len({e.properties["u"] for e in inside}))
    elif agg == "latest":
        last = max(inside, key=lambda e: (e.timestamp, e.transaction_id), default=None)
        q = Decimal(str(last.properties["v"])) if last else Decimal(0)
    else:
        level = sum((Decimal(str(e.properties["v"])) for e in mine if e.timestamp < start), Decimal(0))
        integral, cursor = Decimal(0), start
        for e in sorted(inside, key=lambda e: e.timestamp):
            integral += level * Decimal((e.timestamp - cursor) // timedelta(microseconds=1)).scaleb(-6)
            level += Decimal(str(e.properties["v"]))
            cursor = e.timestamp
        integral += level * Decimal((end - cursor) // timedelta(microseconds=1)).scaleb(-6)
        length = Decimal((end - start) // timedelta(microseconds=1)).scaleb(-6)
        q = (integral / length).quantize(Decimal(1).scaleb(-WEIGHTED_PLACES))
    return q, len(inside)


@settings(
    phases=[Phase.explicit, Phase.generate],
    max_examples=int(os.environ.get("FISCUS_USAGE_EXAMPLES", "8")),  # 8 in the suite; more by hand
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=raw_events, seed=st.integers(0, 10**6))
def test_billed_usage_equals_brute_force(
    db: Database, raw: list[tuple[int, str, Decimal, str, str, bool, bool]], seed: int
) -> None:
    clock = FixedClock(ANCHOR)
    tenant = make_tenant(db, clock, "bg", slug=f"exact-{next(_slugs)}")
    org = tenant.org_id
    update_usage_settings(db, org, late_days=366)
    customer = make_customer(db, clock, tenant)
    with db.read() as conn:
        from fiscus.adapters.db import tables as t

        variant = conn.execute(
            select(t.prices.c.variant_id).where(t.prices.c.id == tenant.monthly)
        ).scalar_one()
    prices = {}
    for code, (spec, model, props) in METRICS.items():
        metric = create_metric(db, clock, org, spec)
        prices[code] = create_price(
            db,
            clock,
            org,
            variant,
            currency_code="EUR",
            unit_amount="0",
            interval="month",
            usage=UsageSpec(metric, model, props),
        )
    create_subscription(db, clock, org, customer, [ItemSpec(p, 1) for p in prices.values()])
    events = [
        EventIn(f"tx{i}", code, ANCHOR + timedelta(seconds=s), {"v": str(v), "g": g, "u": u}, customer)
        for i, (s, code, v, g, u, _late, _resend) in enumerate(raw)
    ]
    rng = random.Random(seed)
    on_time = [e for e, r in zip(events, raw, strict=True) if not r[5]]
    late = [e for e, r in zip(events, raw, strict=True) if r[5]]
    resent = [e for e, r in zip(events, raw, strict=True) if r[6]]
    rng.shuffle(on_time)
    end_of_all = ANCHOR + timedelta(seconds=HORIZON + 3600)
    clock.set(end_of_all)
    for i in range(0, len(on_time), 7):
        ingest_events(db, clock, org, on_time[i : i + 7] + resent[:3])
    clock.set(datetime(2026, 5, 2, tzinfo=UTC))  # three periods (Feb, Mar, Apr in Sofia) billed
    run_billing(db, clock)
    rng.shuffle(late)
    for i in range(0, len(late), 5):
        ingest_events(db, clock, org, late[i : i + 5] + resent)
    run_billing(db, clock)

    eur = currency("EUR")
    with db.read() as conn:
        u = tu.usage_lines.c
        rows = conn.execute(
            select(u.price_id, u.group_value, u.period_start, u.period_end, u.amount_minor, u.quantity).where(
                u.organization_id == org
            )
        ).all()
        p = tu.usage_periods.c
        periods = conn.execute(select(p.period_start, p.period_end).where(p.organization_id == org)).all()
        marks = conn.execute(select(tu.usage_late).where(tu.usage_late.c.organization_id == org)).all()
    assert marks == []
    assert [p.period_start for p in sorted(periods)] == [
        ANCHOR,
        datetime(2026, 2, 28, 22, 30, tzinfo=UTC),
        datetime(2026, 3, 31, 21, 30, tzinfo=UTC),
    ]
    billed: dict[tuple[int, str, datetime], int] = defaultdict(int)
    for r in rows:
        billed[(r.price_id, r.group_value, r.period_start)] += r.amount_minor
    for start, end in periods:
        for code, (spec, model, props) in METRICS.items():
            groups = ["a", "b", "c"] if spec.group_by else [""]
            for g in groups:
                q, n = brute(code, events, start, end, g)
                expected = to_minor(compute_charge(charge_of(model, props), q, eur, events=n).amount, eur)
                assert billed.get((prices[code], g, start), 0) == expected, (code, g, start, q)
