"""Which usage prices bill which part of a period: a plan change mid-period splits usage at its instant.

`change_subscription` records each usage price it adds or removes (`usage_item_changes`, same
transaction). Billing, the preview and late-event adjustments all measure through `price_windows`:
the prices of the subscription at the period's start (its current usage prices with every later change
undone), each charged on the events of the part of the period it was on the subscription — events
before the change under the old price, from the change on under the new one. A subscription that
never changed plan gets its current usage prices over the whole period, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, insert, select

from fiscus.adapters.db import tables_usage_features as tf
from fiscus.domain.periods import Period


def record_changes(
    conn: Connection,
    org_id: int,
    subscription_id: int,
    before: Iterable[int],
    after: Iterable[int],
    usage_ids: set[int],
    at: datetime,
) -> None:
    """Write the usage prices a plan change removed and added (only usage prices matter)."""
    old, new = set(before) & usage_ids, set(after) & usage_ids
    rows = [
        {
            "organization_id": org_id,
            "subscription_id": subscription_id,
            "price_id": pid,
            "action": action,
            "at": at,
        }
        for action, ids in (("removed", old - new), ("added", new - old))
        for pid in sorted(ids)
    ]
    if rows:
        conn.execute(insert(tf.usage_item_changes), rows)


def changed(conn: Connection, subscription_id: int) -> bool:
    c = tf.usage_item_changes.c
    return conn.execute(select(c.id).where(c.subscription_id == subscription_id).limit(1)).first() is not None


def price_windows(
    conn: Connection, subscription_id: int, current: Sequence[int], period: Period
) -> list[tuple[int, Period]]:
    """(usage price, the part of `period` it was on the subscription), current prices first (in item
    order), then prices removed since; `current`: the subscription's usage prices now."""
    c = tf.usage_item_changes.c
    later = conn.execute(
        select(c.price_id, c.action, c.at)
        .where(c.subscription_id == subscription_id, c.at > period.start)
        .order_by(c.at, c.id)
    ).all()
    if not later:
        return [(pid, period) for pid in current]
    active = list(current)
    for pid, action, _at in reversed(later):  # undo every change after the period's start
        if action == "added" and pid in active:
            active.remove(pid)
        elif action == "removed" and pid not in active:
            active.append(pid)
    opened = dict.fromkeys(active, period.start)
    windows: list[tuple[int, Period]] = []
    for pid, action, at in later:
        if at >= period.end:
            break
        if action == "removed" and pid in opened:
            windows.append((pid, Period(opened.pop(pid), at)))
        elif action == "added" and pid not in opened:
            opened[pid] = at
    windows.extend((pid, Period(start, period.end)) for pid, start in opened.items())
    order = {pid: i for i, pid in enumerate(current)}
    windows = [(pid, w) for pid, w in windows if w.start < w.end]
    return sorted(windows, key=lambda pw: (order.get(pw[0], len(order)), pw[1].start))
