"""A plan change mid-period splits usage at its instant, on both databases: events before it are charged
under the old usage price, from it on under the new one, and a usage price removed mid-period still
bills its part. The upcoming-invoice preview, the billed invoice and a brute-force recomputation from
the raw events agree to the minor unit."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.engine import Database
from fiscus.domain.charges import compute_charge
from fiscus.domain.clock import FixedClock
from fiscus.domain.money import currency, to_minor
from fiscus.domain.periods import Period
from fiscus.services.billing_run import run_billing
from fiscus.services.catalog import create_price
from fiscus.services.subscriptions import ItemSpec, change_subscription, create_subscription
from fiscus.services.usage_billing import preview_usage
from fiscus.services.usage_ingest import EventIn, ingest_events
from fiscus.services.usage_metrics import MetricSpec, create_metric
from fiscus.services.usage_prices import UsageSpec, charge_of
from fiscus.services.usage_settings import update_usage_settings
from fiscus.services.usage_windows import price_windows, record_changes
from tests.builders import make_customer, make_tenant
from tests.usage_support import TIERS

CHARGES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "a": ("bw", "per_unit", {"unit_price": "0.10"}),
    "b": ("bw", "graduated", {"tiers": TIERS}),
    "c": ("calls", "per_unit", {"unit_price": "0.5", "free_units": "3"}),
}


def test_usage_is_split_at_the_plan_change(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg", slug="split")
    org = tenant.org_id
    customer = make_customer(db, clock, tenant)
    update_usage_settings(db, org, late_days=60)
    metrics = {
        "bw": create_metric(db, clock, org, MetricSpec("bw", "Bandwidth", "sum", "gb")),
        "calls": create_metric(db, clock, org, MetricSpec("calls", "API calls", "count")),
    }
    with db.read() as conn:
        variant = conn.execute(
            select(t.prices.c.variant_id).where(t.prices.c.id == tenant.monthly)
        ).scalar_one()
    prices = {
        name: create_price(
            db,
            clock,
            org,
            variant,
            currency_code="EUR",
            unit_amount="0",
            interval="month",
            usage=UsageSpec(metrics[code], model, props),
        )
        for name, (code, model, props) in CHARGES.items()
    }
    start = clock.now()
    monthly = ItemSpec(tenant.monthly, 1)
    sub = create_subscription(
        db, clock, org, customer, [monthly, ItemSpec(prices["a"], 1), ItemSpec(prices["c"], 1)]
    )
    t1 = start + timedelta(days=9, hours=13, minutes=17, seconds=42)  # not on the hour
    t2 = start + timedelta(days=20, hours=2, minutes=5)
    clock.set(t1)
    change_subscription(db, clock, org, sub, [monthly, ItemSpec(prices["b"], 1), ItemSpec(prices["c"], 1)])
    clock.set(t2)
    change_subscription(db, clock, org, sub, [monthly, ItemSpec(prices["b"], 1)])

    rng = random.Random(16)
    span = int(timedelta(days=30).total_seconds())
    events: list[EventIn] = []
    for i in range(80):
        at = start + timedelta(seconds=rng.randrange(span))
        if i < 4:  # on the change instants and the start: the new price from its instant on
            at = (t1, t2, start, t1 - timedelta(microseconds=1))[i]
        if rng.random() < 0.6:
            gb = Decimal(rng.randrange(1, 90000)) / 100
            events.append(EventIn(f"bw{i}", "bw", at, {"gb": str(gb)}, customer))
        else:
            events.append(EventIn(f"call{i}", "calls", at, {}, customer))
    clock.set(start + timedelta(days=30, hours=23))
    rng.shuffle(events)
    for i in range(0, len(events), 25):
        ingest_events(db, clock, org, events[i : i + 25])

    preview = preview_usage(db, org, sub, clock.now())
    assert preview is not None
    end = preview.period.end
    assert preview.period.start == start
    assert clock.now() < end

    def brute(name: str) -> int:
        code, model, props = CHARGES[name]
        since, until = {"a": (start, t1), "b": (t1, end), "c": (start, t2)}[name]
        mine = [e for e in events if e.code == code and since <= e.timestamp < until]
        q = sum((Decimal(str(e.properties.get("gb", 1))) for e in mine), Decimal(0))
        eur = currency("EUR")
        return to_minor(compute_charge(charge_of(model, props), q, eur, events=len(mine)).amount, eur)

    expected = {prices[name]: brute(name) for name in CHARGES}
    previewed: dict[int, int] = defaultdict(int)
    for m in preview.measured:
        previewed[m.price_id] += sum(
            preview.computed.lines[m.first_line + k].amount_minor for k in range(len(m.parts))
        )
    assert dict(previewed) == expected

    clock.set(end + timedelta(hours=2))
    run_billing(db, clock)
    with db.read() as conn:
        u = tu.usage_lines.c
        rows = conn.execute(
            select(u.price_id, u.amount_minor, u.document_id).where(
                u.organization_id == org, u.subscription_id == sub
            )
        ).all()
        doc = {r.document_id for r in rows}.pop()
        dl = t.document_lines.c
        spans = {
            (r.price_id, r.period_start, r.period_end)
            for r in conn.execute(
                select(dl.price_id, dl.period_start, dl.period_end).where(dl.document_id == doc)
            )
        }
    billed: dict[int, int] = defaultdict(int)
    for r in rows:
        billed[r.price_id] += r.amount_minor
    assert dict(billed) == expected  # the invoice agrees with the preview and the brute force
    assert spans == {
        (prices["a"], start, t1),
        (prices["b"], t1, end),
        (prices["c"], start, t2),
    }


def test_price_windows_undo_later_changes_and_split_at_each(db: Database, clock: FixedClock) -> None:
    tenant = make_tenant(db, clock, "bg", slug="windows")
    org = tenant.org_id
    sub = create_subscription(db, clock, org, make_customer(db, clock, tenant), [ItemSpec(tenant.monthly, 1)])
    s = clock.now()
    period = Period(s, s + timedelta(days=30))
    day = timedelta(days=1)
    usage = {1, 2, 3}  # price ids taken as usage prices (the table keeps no foreign key to them)
    with db.write() as conn:
        record_changes(conn, org, sub, [1], [2], usage, s + 5 * day)  # 1 → 2
        record_changes(conn, org, sub, [2], [2, 1], usage, s + 10 * day)  # 1 back
        record_changes(conn, org, sub, [2, 1], [3], usage, s + 40 * day)  # after the period: undone
    with db.read() as conn:
        assert price_windows(conn, sub, [3], period) == [
            (1, Period(s, s + 5 * day)),  # prices no longer on the subscription: by start
            (2, Period(s + 5 * day, period.end)),
            (1, Period(s + 10 * day, period.end)),
        ]
        later = Period(period.end, period.end + timedelta(days=30))
        assert price_windows(conn, sub, [3], later) == [
            (3, Period(s + 40 * day, later.end)),  # the current price first
            (1, Period(later.start, s + 40 * day)),
            (2, Period(later.start, s + 40 * day)),
        ]
        assert price_windows(conn, sub, [3], Period(s + 50 * day, s + 60 * day)) == [
            (3, Period(s + 50 * day, s + 60 * day))
        ]
