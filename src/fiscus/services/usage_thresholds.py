"""Usage thresholds: when a subscription's current-period usage crosses an amount (the whole usage, or
one usage price's) or a usage price's quantity, `usage.threshold_reached` goes to the outbox (and so
to the webhook endpoints) once per period per threshold.

The worker checks after each billing pass (`check_thresholds`): it measures the current period with the
code that bills it (`preview_usage`), so the figure announced is the figure the invoice will start
from. "Once" is the key (threshold, period start) of `usage_threshold_hits`, claimed with
`ON CONFLICT DO NOTHING … RETURNING` in the transaction that writes the outbox event: two workers
checking at the same moment announce it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Connection, delete, insert, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db import tables_usage_features as tt
from fiscus.adapters.db.documents import append_audit, append_outbox, audit_row, outbox_row
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.upsert import insert_for
from fiscus.domain.clock import Clock
from fiscus.domain.errors import FieldConflictError, InvalidFieldError, NotFoundError
from fiscus.domain.money import currency
from fiscus.services import validation as v
from fiscus.services.common import get_scoped
from fiscus.services.usage_billing import UsagePreview, preview_usage

KINDS: Final = ("amount", "quantity")
MAX_PER_SUBSCRIPTION: Final = 20
EVENT: Final = "usage.threshold_reached"


@dataclass(frozen=True, slots=True)
class ThresholdSpec:
    kind: str
    value: str
    price_id: int | None = None


def _snapshot(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "subscription_id": row["subscription_id"],
        "price_id": row["price_id"],
        "kind": row["kind"],
        "value": str(row["value"]),
    }


def create_threshold(
    db: Database, clock: Clock, org_id: int, subscription_id: int, spec: ThresholdSpec, *, actor: str = "cli"
) -> int:
    """A threshold on a subscription (and optionally one of its usage prices); audited."""
    if spec.kind not in KINDS:
        raise InvalidFieldError("kind", "'amount' or 'quantity'")
    value = v.decimal("value", spec.value, minimum=Decimal(0), exclusive=True)
    if spec.kind == "quantity" and spec.price_id is None:
        raise InvalidFieldError("price_id", "required for a quantity threshold")
    now = clock.now()
    with db.write() as conn:
        sub = get_scoped(conn, t.subscriptions, org_id, subscription_id, lock=True)
        if spec.price_id is not None:
            si, up = t.subscription_items.c, tu.usage_prices.c
            found = conn.execute(
                select(si.price_id)
                .join(tu.usage_prices, up.price_id == si.price_id)
                .where(si.subscription_id == subscription_id, si.price_id == spec.price_id)
            ).first()
            if found is None:
                raise FieldConflictError("price_id", "not a usage price of this subscription")
        if spec.kind == "amount" and -int(value.as_tuple().exponent) > currency(sub["currency"]).exponent:
            raise FieldConflictError("value", f"more decimals than {sub['currency']} has")
        th = tt.usage_thresholds.c
        count = len(conn.execute(select(th.id).where(th.subscription_id == subscription_id)).all())
        if count >= MAX_PER_SUBSCRIPTION:
            raise FieldConflictError("kind", f"at most {MAX_PER_SUBSCRIPTION} thresholds per subscription")
        row = {
            "organization_id": org_id,
            "subscription_id": subscription_id,
            "price_id": spec.price_id,
            "kind": spec.kind,
            "value": value,
            "created_at": now,
        }
        tid = int(conn.execute(insert(tt.usage_thresholds).values(row).returning(th.id)).scalar_one())
        snap = _snapshot({**row, "id": tid})
        append_audit(conn, [audit_row(org_id, "usage_threshold", tid, "created", actor, now, None, snap)])
    return tid


def list_thresholds(conn: Connection, org_id: int, subscription_id: int) -> list[dict[str, Any]]:
    """A subscription's thresholds, oldest first (404 for another organisation's subscription)."""
    get_scoped(conn, t.subscriptions, org_id, subscription_id)
    th = tt.usage_thresholds.c
    query = select(tt.usage_thresholds).where(
        th.organization_id == org_id, th.subscription_id == subscription_id
    )
    return [dict(r) for r in conn.execute(query.order_by(th.id)).mappings()]


def get_threshold(conn: Connection, org_id: int, threshold_id: int) -> dict[str, Any]:
    th = tt.usage_thresholds.c
    row = (
        conn.execute(select(tt.usage_thresholds).where(th.id == threshold_id, th.organization_id == org_id))
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise NotFoundError("usage_threshold", threshold_id)
    return dict(row)


def delete_threshold(
    db: Database, clock: Clock, org_id: int, threshold_id: int, *, actor: str = "cli"
) -> None:
    """Remove a threshold and its record of periods reached; audited."""
    with db.write() as conn:
        row = get_threshold(conn, org_id, threshold_id)
        conn.execute(
            delete(tt.usage_threshold_hits).where(tt.usage_threshold_hits.c.threshold_id == threshold_id)
        )
        conn.execute(delete(tt.usage_thresholds).where(tt.usage_thresholds.c.id == threshold_id))
        append_audit(
            conn,
            [
                audit_row(
                    org_id,
                    "usage_threshold",
                    threshold_id,
                    "deleted",
                    actor,
                    clock.now(),
                    _snapshot(row),
                    None,
                )
            ],
        )


def current_value(preview: UsagePreview, kind: str, price_id: int | None) -> Decimal:
    """What a threshold compares: the net amount (major units) or the quantity, of one price or all."""
    if kind == "quantity":
        return sum((Decimal(m.quantity) for m in preview.measured if m.price_id == price_id), Decimal(0))
    lines = preview.computed.lines
    if price_id is None:
        minor = preview.computed.subtotal_minor
    else:
        minor = sum(
            lines[m.first_line + k].amount_minor
            for m in preview.measured
            if m.price_id == price_id
            for k in range(len(m.parts))
        )
    return Decimal(minor).scaleb(-preview.computed.currency.exponent)


def check_thresholds(db: Database, clock: Clock, organization_id: int | None = None) -> int:
    """Announce every threshold crossed in its subscription's current period and not yet announced for
    that period; how many were announced."""
    now = clock.now()
    th, hits = tt.usage_thresholds.c, tt.usage_threshold_hits.c
    with db.read() as conn:
        query = select(tt.usage_thresholds).order_by(th.subscription_id, th.id)
        if organization_id is not None:
            query = query.where(th.organization_id == organization_id)
        by_sub: dict[int, list[dict[str, Any]]] = {}
        for r in conn.execute(query).mappings():
            by_sub.setdefault(r["subscription_id"], []).append(dict(r))
    announced = 0
    for sid, thresholds in by_sub.items():
        org_id = thresholds[0]["organization_id"]
        preview = preview_usage(db, org_id, sid, now)
        if preview is None:
            continue
        reached = [
            (r, value)
            for r in thresholds
            if (value := current_value(preview, r["kind"], r["price_id"])) >= r["value"]
        ]
        if not reached:
            continue
        with db.write() as conn:
            done = set(
                conn.execute(
                    select(hits.threshold_id).where(
                        hits.threshold_id.in_([r["id"] for r, _v in reached]),
                        hits.period_start == preview.period.start,
                    )
                ).scalars()
            )
            fresh = [(r, value) for r, value in reached if r["id"] not in done]
            if not fresh:
                continue
            rows = [
                {
                    "organization_id": org_id,
                    "threshold_id": r["id"],
                    "period_start": preview.period.start,
                    "reached_at": now,
                }
                for r, _v in fresh
            ]
            stmt = (
                insert_for(conn, tt.usage_threshold_hits)
                .on_conflict_do_nothing()
                .returning(hits.threshold_id)
            )
            claimed = set(conn.execute(stmt, rows).scalars())
            events = [
                outbox_row(org_id, EVENT, "subscription", sid, now, _payload(preview, r, value, now))
                for r, value in fresh
                if r["id"] in claimed
            ]
            append_outbox(conn, events)
            announced += len(events)
    return announced


def _payload(preview: UsagePreview, row: dict[str, Any], value: Decimal, now: datetime) -> dict[str, Any]:
    return {
        "threshold_id": row["id"],
        "subscription_id": row["subscription_id"],
        "customer_id": preview.subscription["customer_id"],
        "price_id": row["price_id"],
        "kind": row["kind"],
        "threshold": str(row["value"]),
        "value": str(value),
        "currency": preview.computed.currency.code,
        "period_start": preview.period.start.isoformat(),
        "period_end": preview.period.end.isoformat(),
        "reached_at": now.isoformat(),
    }
