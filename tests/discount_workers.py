"""Child-process code of the discount concurrency test (importable by spawn)."""

from __future__ import annotations

from datetime import datetime
from multiprocessing.synchronize import Event
from typing import Any

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock


def redeem_code(
    url: str, org_id: int, code: str, subscription_ids: list[int], at: datetime, start: Event, out: Any
) -> None:
    """Redeem `code` on each subscription; report (redeemed, refused with the reason named)."""
    from fiscus.domain.discounts import DiscountRefusedError, Refusal
    from fiscus.services.discounts import redeem

    db = Database(url)
    start.wait(30)
    ok = refused = 0
    for sid in subscription_ids:
        try:
            redeem(db, FixedClock(at), org_id, subscription_id=sid, code=code, actor="test")
            ok += 1
        except DiscountRefusedError as exc:
            if exc.reason not in {Refusal.CODE_MAX_REDEMPTIONS, Refusal.COUPON_MAX_REDEMPTIONS}:
                raise
            refused += 1
    out.put((ok, refused))
    db.dispose()
