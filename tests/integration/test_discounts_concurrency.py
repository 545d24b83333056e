"""8 processes redeem one promotion code with `max_redemptions = 100` on 120 subscriptions: exactly
100 redemptions, on SQLite and PostgreSQL (the locked counter of services/discounts.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.services.discounts import CodeSpec, CouponSpec, create_coupon, create_promotion_code
from fiscus.testing.bulk import bulk_customers, bulk_subscriptions
from tests import discount_workers, forkserver
from tests.builders import make_tenant

pytestmark = pytest.mark.slow
CTX = forkserver.context()  # children forked from a server that imported Fiscus once


def test_eight_processes_redeem_a_code_exactly_max_redemptions_times(
    db: Database, db_url: str, clock: FixedClock
) -> None:
    tenant = make_tenant(db, clock, "bg")
    customers = bulk_customers(db, tenant.org_id, 120, now=clock.now())
    subs = bulk_subscriptions(
        db,
        tenant.org_id,
        customers,
        [tenant.monthly],
        start=datetime(2026, 1, 1, tzinfo=UTC),
        now=clock.now(),
    )
    coupon = create_coupon(
        db, clock, tenant.org_id, CouponSpec(name="Launch", duration="forever", percent_off=Decimal(10))
    )
    create_promotion_code(
        db, clock, tenant.org_id, CodeSpec(coupon_id=coupon, code="RUSH", max_redemptions=100)
    )
    start, out = CTX.Event(), CTX.Queue()
    procs = [
        CTX.Process(
            target=discount_workers.redeem_code,
            args=(db_url, tenant.org_id, "rush", subs[i::8], clock.now(), start, out),
        )
        for i in range(8)
    ]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sum(ok for ok, _ in results) == 100
    assert sum(refused for _, refused in results) == 20
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(td.redemptions)).scalar_one() == 100
        assert conn.execute(select(func.count()).select_from(td.discounts)).scalar_one() == 100
        assert conn.execute(select(td.promotion_codes.c.times_redeemed)).scalar_one() == 100
        assert conn.execute(select(td.coupons.c.times_redeemed)).scalar_one() == 100
