"""Coupons, promotion codes and redemptions (issue 17): the only writers of the discount tables.

A redemption is one transaction: the code and coupon rows are locked (`FOR UPDATE` on PostgreSQL;
SQLite's `BEGIN IMMEDIATE` serialises writers), the domain decides (`code_refusal`), the counters move
by a guarded UPDATE that cannot pass `max_redemptions` (and a CHECK behind it), and the discount, the
redemption, the audit row and the `coupon.redeemed` event are written together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, insert, or_, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.context import load_prices
from fiscus.adapters.db.documents import append_audit, append_outbox, audit_row, outbox_row
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.discounts import (
    Coupon,
    DiscountInput,
    DiscountRefusedError,
    Duration,
    PromotionCode,
    Redeemer,
    Refusal,
    Stacking,
    check_terms,
    code_refusal,
    coupon_label,
    coupon_refusal,
    normalize_code,
)
from fiscus.domain.documents import check_money_size, line_amount_minor
from fiscus.domain.errors import ConflictError, InvalidFieldError, NotFoundError
from fiscus.domain.money import currency, to_minor
from fiscus.domain.subscriptions import BILLABLE_STATUSES, SubscriptionStatus
from fiscus.services import validation as v
from fiscus.services.common import get_scoped


@dataclass(slots=True)
class CouponSpec:
    name: str
    duration: str
    percent_off: Decimal | None = None
    amounts_off: dict[str, Decimal] = field(default_factory=dict)  # major units per currency code
    duration_periods: int | None = None
    product_ids: list[int] = field(default_factory=list)
    price_ids: list[int] = field(default_factory=list)
    redeem_by: datetime | None = None
    max_redemptions: int | None = None
    metric_ids: list[int] = field(default_factory=list)  # usage metrics: their usage prices are covered


@dataclass(slots=True)
class CodeSpec:
    coupon_id: int
    code: str
    expires_at: datetime | None = None
    max_redemptions: int | None = None
    first_purchase_only: bool = False
    minimum_amount: Decimal | None = None
    minimum_currency: str | None = None
    customer_id: int | None = None


def _minor_amounts(amounts: dict[str, Decimal]) -> dict[str, int]:
    out: dict[str, int] = {}
    for code, amount in sorted(amounts.items()):
        cur = currency(code, f"amounts_off.{code}")
        if amount <= 0:
            raise InvalidFieldError(f"amounts_off.{code}", "must be greater than zero")
        if amount != amount.quantize(cur.quantum):
            raise InvalidFieldError(f"amounts_off.{code}", f"has more decimals than {code} has minor units")
        check_money_size(f"amounts_off.{code}", amount, cur)
        out[code] = to_minor(amount.quantize(cur.quantum), cur)
    return out


def create_coupon(db: Database, clock: Clock, org_id: int, spec: CouponSpec, *, actor: str = "cli") -> int:
    """A coupon; its terms are checked by the domain (`check_terms`), products and prices must be the
    organisation's own."""
    name = v.text("name", spec.name)
    try:
        duration = Duration(spec.duration)
    except ValueError:
        raise InvalidFieldError("duration", "must be once, repeating or forever") from None
    amounts = _minor_amounts(spec.amounts_off)
    check_terms(spec.percent_off, amounts, duration, spec.duration_periods)
    if spec.max_redemptions is not None and spec.max_redemptions < 1:
        raise InvalidFieldError("max_redemptions", "must be at least 1")
    now = clock.now()
    with db.write() as conn:
        for i, pid in enumerate(spec.product_ids):
            get_scoped(conn, t.products, org_id, pid, field=f"product_ids.{i}")
        for i, pid in enumerate(spec.price_ids):
            get_scoped(conn, t.prices, org_id, pid, field=f"price_ids.{i}")
        for i, mid in enumerate(spec.metric_ids):
            get_scoped(conn, tu.billable_metrics, org_id, mid, field=f"metric_ids.{i}")
        cid = conn.execute(
            insert(td.coupons)
            .values(
                organization_id=org_id,
                name=name,
                percent_off=spec.percent_off,
                amounts_off=amounts,
                duration=duration.value,
                duration_periods=spec.duration_periods,
                product_ids=sorted(set(spec.product_ids)),
                price_ids=sorted(set(spec.price_ids)),
                metric_ids=sorted(set(spec.metric_ids)),
                redeem_by=spec.redeem_by,
                max_redemptions=spec.max_redemptions,
                created_at=now,
            )
            .returning(td.coupons.c.id)
        ).scalar_one()
        append_audit(conn, [audit_row(org_id, "coupon", cid, "created", actor, now, None, {"name": name})])
        append_outbox(conn, [outbox_row(org_id, "coupon.created", "coupon", cid, now, {"id": cid})])
    return int(cid)


def create_promotion_code(
    db: Database, clock: Clock, org_id: int, spec: CodeSpec, *, actor: str = "cli"
) -> int:
    """A customer-facing code for a coupon; unique per organisation whatever its case."""
    code = normalize_code(spec.code)
    if spec.max_redemptions is not None and spec.max_redemptions < 1:
        raise InvalidFieldError("max_redemptions", "must be at least 1")
    minimum: int | None = None
    if spec.minimum_amount is not None or spec.minimum_currency is not None:
        if spec.minimum_amount is None or spec.minimum_currency is None:
            raise InvalidFieldError("minimum_amount", "give minimum_amount and minimum_currency together")
        cur = currency(spec.minimum_currency, "minimum_currency")
        if spec.minimum_amount != spec.minimum_amount.quantize(cur.quantum):
            raise InvalidFieldError("minimum_amount", f"has more decimals than {cur.code} has minor units")
        check_money_size("minimum_amount", spec.minimum_amount, cur)
        minimum = to_minor(spec.minimum_amount.quantize(cur.quantum), cur)
    now = clock.now()
    with db.write() as conn:
        get_scoped(conn, td.coupons, org_id, spec.coupon_id, field="coupon_id")
        if spec.customer_id is not None:
            get_scoped(conn, t.customers, org_id, spec.customer_id, field="customer_id")
        pc = td.promotion_codes.c
        if conn.execute(select(pc.id).where(pc.organization_id == org_id, pc.code == code)).first():
            raise ConflictError(f"promotion code '{code}' already exists", field="code")
        pid = conn.execute(
            insert(td.promotion_codes)
            .values(
                organization_id=org_id,
                coupon_id=spec.coupon_id,
                code=code,
                expires_at=spec.expires_at,
                max_redemptions=spec.max_redemptions,
                first_purchase_only=spec.first_purchase_only,
                minimum_amount_minor=minimum,
                minimum_currency=spec.minimum_currency if minimum is not None else None,
                customer_id=spec.customer_id,
                created_at=now,
            )
            .returning(pc.id)
        ).scalar_one()
        append_audit(
            conn, [audit_row(org_id, "promotion_code", pid, "created", actor, now, None, {"code": code})]
        )
    return int(pid)


def metric_prices(conn: Connection, rows: Iterable[dict[str, Any]]) -> dict[int, frozenset[int]]:
    """The usage prices charging each metric the coupons name (one query; none when no coupon does)."""
    metrics = sorted({m for r in rows for m in (r.get("metric_ids") or ())})
    if not metrics:
        return {}
    up = tu.usage_prices.c
    out: dict[int, set[int]] = {}
    for r in conn.execute(select(up.metric_id, up.price_id).where(up.metric_id.in_(metrics))):
        out.setdefault(r.metric_id, set()).add(r.price_id)
    return {m: frozenset(p) for m, p in out.items()}


def coupon_of(row: dict[str, Any], by_metric: Mapping[int, frozenset[int]] | None = None) -> Coupon:
    """The domain's coupon from its row; its metrics' usage prices (`metric_prices`) join its prices."""
    metric_ids = frozenset(row.get("metric_ids") or ())
    usage = frozenset(p for m in metric_ids for p in (by_metric or {}).get(m, ()))
    return Coupon(
        id=row["id"],
        name=row["name"],
        duration=Duration(row["duration"]),
        percent_off=row["percent_off"],
        amounts_off=dict(row["amounts_off"] or {}),
        duration_periods=row["duration_periods"],
        product_ids=frozenset(row["product_ids"] or ()),
        price_ids=frozenset(row["price_ids"] or ()) | usage,
        metric_ids=metric_ids,
        redeem_by=row["redeem_by"],
        max_redemptions=row["max_redemptions"],
        times_redeemed=row["times_redeemed"],
        active=row["active"],
    )


def _code_of(row: dict[str, Any], coupon: Coupon) -> PromotionCode:
    return PromotionCode(
        id=row["id"],
        code=row["code"],
        coupon=coupon,
        active=row["active"],
        expires_at=row["expires_at"],
        max_redemptions=row["max_redemptions"],
        times_redeemed=row["times_redeemed"],
        first_purchase_only=row["first_purchase_only"],
        minimum_amount_minor=row["minimum_amount_minor"],
        minimum_currency=row["minimum_currency"],
        customer_id=row["customer_id"],
    )


def stacking_of(conn: Connection, org_id: int) -> Stacking:
    """The organisation's stacking setting (sequential unless set to none)."""
    ds = td.discount_settings.c
    value = conn.execute(select(ds.stacking).where(ds.organization_id == org_id)).scalar_one_or_none()
    return Stacking(value or Stacking.SEQUENTIAL.value)


def set_stacking(db: Database, clock: Clock, org_id: int, stacking: str, *, actor: str = "cli") -> None:
    """Whether several discounts may stack on one customer or subscription."""
    try:
        value = Stacking(stacking)
    except ValueError:
        raise InvalidFieldError("stacking", "must be sequential or none") from None
    now = clock.now()
    with db.write() as conn:
        ds = td.discount_settings
        before = stacking_of(conn, org_id)
        conn.execute(ds.delete().where(ds.c.organization_id == org_id))
        conn.execute(insert(ds).values(organization_id=org_id, stacking=value.value))
        append_audit(
            conn,
            [
                audit_row(
                    org_id, "organization", org_id, "discount_stacking", actor, now, before.value, value.value
                )
            ],
        )


def _target(
    conn: Connection, org_id: int, customer_id: int | None, subscription_id: int | None
) -> tuple[int, str, list[tuple[int, Decimal]]]:
    """The customer, the currency and the (price, quantity) items a redemption is judged on."""
    s, si = t.subscriptions.c, t.subscription_items.c
    if subscription_id is not None:
        sub = get_scoped(conn, t.subscriptions, org_id, subscription_id)
        if SubscriptionStatus(sub["status"]) not in BILLABLE_STATUSES:
            raise ConflictError(
                f"subscription {subscription_id} is {sub['status']}: nothing left to discount"
            )
        subs = [subscription_id]
        customer_id, code = sub["customer_id"], sub["currency"]
    else:
        assert customer_id is not None
        customer = get_scoped(conn, t.customers, org_id, customer_id)
        code = customer["currency"]
        subs = list(
            conn.execute(
                select(s.id).where(
                    s.organization_id == org_id,
                    s.customer_id == customer_id,
                    s.status.in_([x.value for x in BILLABLE_STATUSES]),
                )
            ).scalars()
        )
    items = [
        (r.price_id, r.quantity)
        for r in conn.execute(select(si.price_id, si.quantity).where(si.subscription_id.in_(subs or [-1])))
    ]
    return customer_id, code, items


def redeem(
    db: Database,
    clock: Clock,
    org_id: int,
    *,
    customer_id: int | None = None,
    subscription_id: int | None = None,
    code: str | None = None,
    coupon_id: int | None = None,
    actor: str = "cli",
) -> int:
    """Put a coupon (directly, or through a promotion code) on a customer or a subscription; the new
    discount's id. A refusal is a `DiscountRefusedError` naming its reason."""
    if (code is None) == (coupon_id is None):
        raise InvalidFieldError("promotion_code", "give exactly one of promotion_code and coupon")
    if (customer_id is None) == (subscription_id is None):
        raise InvalidFieldError("customer_id", "a discount goes on a customer or on a subscription")
    now = clock.now()
    with db.write() as conn:
        return redeem_within(
            conn,
            now,
            org_id,
            customer_id=customer_id,
            subscription_id=subscription_id,
            code=code,
            coupon_id=coupon_id,
            actor=actor,
        )


@dataclass(frozen=True, slots=True)
class Basis:
    """What a redemption onto one document is judged on instead of the target's subscriptions: the
    document's amount before discounts and what its lines sell (price, product)."""

    amount_minor: int
    lines: Sequence[tuple[int | None, int | None]]


def redeem_within(
    conn: Connection,
    now: datetime,
    org_id: int,
    *,
    customer_id: int | None = None,
    subscription_id: int | None = None,
    code: str | None = None,
    coupon_id: int | None = None,
    actor: str = "cli",
    basis: Basis | None = None,
) -> int:
    """`redeem` inside the caller's transaction (the hosted page reissues a proforma in the same one);
    with `basis`, the minimum amount and the coverage are judged on that document."""
    cust, cur_code, items = _target(conn, org_id, customer_id, subscription_id)
    pcode_row: dict[str, Any] | None = None
    if code is not None:
        canonical = normalize_code(code, "promotion_code")
        pc = td.promotion_codes.c
        query = select(td.promotion_codes).where(pc.organization_id == org_id, pc.code == canonical)
        found = conn.execute(query.with_for_update()).mappings().one_or_none()
        if found is None:
            raise NotFoundError("promotion code", canonical, field="promotion_code")
        pcode_row = dict(found)
        coupon_id = pcode_row["coupon_id"]
    assert coupon_id is not None
    coupon_row = get_scoped(conn, td.coupons, org_id, coupon_id, field="coupon", lock=True)
    coupon = coupon_of(coupon_row, metric_prices(conn, [coupon_row]))
    cur = currency(cur_code)
    if basis is not None:
        amount = basis.amount_minor
        covered = any(coupon.covers(product, price) for price, product in basis.lines)
    else:
        prices = load_prices(conn, org_id, {p for p, _ in items})
        amount = sum(line_amount_minor(q, prices[p].unit_amount, cur) for p, q in items)
        covered = subscription_id is None or any(coupon.covers(prices[p].product_id, p) for p, _ in items)
    who = Redeemer(
        customer_id=cust,
        currency=cur,
        amount_minor=amount,
        has_purchased=_has_purchased(conn, org_id, cust),
        covered=covered,
        active_coupon_ids=_active_coupon_ids(conn, org_id, cust, subscription_id),
        stacking=stacking_of(conn, org_id),
    )
    if pcode_row is not None:
        refusal = code_refusal(_code_of(pcode_row, coupon), who, now)
        field_name = "promotion_code"
    else:
        refusal = coupon_refusal(coupon, who, now)
        field_name = "coupon"
    if refusal is not None:
        raise DiscountRefusedError(field_name, refusal)
    _count(conn, td.coupons, coupon_id, Refusal.COUPON_MAX_REDEMPTIONS, field_name)
    if pcode_row is not None:
        _count(conn, td.promotion_codes, pcode_row["id"], Refusal.CODE_MAX_REDEMPTIONS, field_name)
    values = {
        "organization_id": org_id,
        "coupon_id": coupon_id,
        "promotion_code_id": pcode_row["id"] if pcode_row else None,
        "customer_id": cust,
        "subscription_id": subscription_id,
    }
    did = conn.execute(
        insert(td.discounts).values(**values, status="active", created_at=now).returning(td.discounts.c.id)
    ).scalar_one()
    conn.execute(insert(td.redemptions).values(**values, discount_id=did, redeemed_at=now))
    payload = {**values, "discount_id": did, "code": pcode_row["code"] if pcode_row else None}
    append_audit(conn, [audit_row(org_id, "discount", did, "created", actor, now, None, payload)])
    append_outbox(conn, [outbox_row(org_id, "coupon.redeemed", "coupon", coupon_id, now, payload)])
    return int(did)


def _count(conn: Connection, table: Any, ident: int, refusal: Refusal, field_name: str) -> None:
    """The locked counter: +1 only while below the maximum; no row moved means none was left."""
    c = table.c
    moved = conn.execute(
        update(table)
        .where(c.id == ident, or_(c.max_redemptions.is_(None), c.times_redeemed < c.max_redemptions))
        .values(times_redeemed=c.times_redeemed + 1)
    ).rowcount
    if moved != 1:
        raise DiscountRefusedError(field_name, refusal)


def _has_purchased(conn: Connection, org_id: int, customer_id: int) -> bool:
    d = t.documents.c
    return bool(
        conn.execute(
            select(
                exists().where(
                    d.organization_id == org_id,
                    d.customer_id == customer_id,
                    d.type == "invoice",
                    d.status.in_(["open", "paid", "uncollectible"]),
                )
            )
        ).scalar()
    )


def _active_coupon_ids(
    conn: Connection, org_id: int, customer_id: int, subscription_id: int | None
) -> frozenset[int]:
    """Coupons already in force where a new discount would go: the customer's own, and the
    subscription's when redeeming on one."""
    dc = td.discounts.c
    scope: ColumnElement[bool] = dc.subscription_id.is_(None)
    if subscription_id is not None:
        scope = or_(scope, dc.subscription_id == subscription_id)
    rows = conn.execute(
        select(dc.coupon_id).where(
            dc.organization_id == org_id, dc.customer_id == customer_id, dc.status == "active", scope
        )
    ).scalars()
    return frozenset(rows)


def remove_discount(db: Database, clock: Clock, org_id: int, discount_id: int, *, actor: str = "cli") -> None:
    """End a discount now: later documents no longer carry it (issued ones keep theirs)."""
    now = clock.now()
    with db.write() as conn:
        row = get_scoped(conn, td.discounts, org_id, discount_id, lock=True)
        if row["status"] != "active":
            raise ConflictError(f"discount {discount_id} is already {row['status']}")
        conn.execute(
            update(td.discounts)
            .where(td.discounts.c.id == discount_id)
            .values(status="removed", ended_at=now)
        )
        append_audit(
            conn, [audit_row(org_id, "discount", discount_id, "removed", actor, now, "active", "removed")]
        )
        append_outbox(
            conn, [outbox_row(org_id, "discount.removed", "discount", discount_id, now, {"id": discount_id})]
        )


# --- the billing run's side --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActiveDiscount:
    discount_id: int
    customer_id: int
    subscription_id: int | None
    periods_applied: int
    input: DiscountInput


def active_discounts(conn: Connection, customer_ids: Iterable[int]) -> dict[int, list[ActiveDiscount]]:
    """The discounts in force per customer, in stacking order (oldest first): one statement."""
    wanted = sorted(set(customer_ids))
    if not wanted:
        return {}
    dc, cc = td.discounts.c, td.coupons.c
    rows = conn.execute(
        select(td.discounts, *[c.label(f"c_{c.name}") for c in td.coupons.c])
        .join(td.coupons, cc.id == dc.coupon_id)
        .where(dc.customer_id.in_(wanted), dc.status == "active")
        .order_by(dc.id)
    ).mappings()
    out: dict[int, list[ActiveDiscount]] = {}
    coupon_rows = [({k[2:]: r[k] for k in r if k.startswith("c_")}, r) for r in rows]
    by_metric = metric_prices(conn, [c for c, _r in coupon_rows])
    for row, r in coupon_rows:
        coupon = coupon_of(row, by_metric)
        out.setdefault(r["customer_id"], []).append(
            ActiveDiscount(
                r["id"],
                r["customer_id"],
                r["subscription_id"],
                r["periods_applied"],
                DiscountInput(coupon, coupon_label(coupon), r["id"]),
            )
        )
    return out


def for_document(
    active: Sequence[ActiveDiscount], subscription_id: int | None, stacking: Stacking = Stacking.SEQUENTIAL
) -> list[DiscountInput]:
    """Those of a customer's discounts that apply to one document: the customer's own and, on a
    subscription's document, that subscription's. With stacking `none`, only the oldest."""
    chosen = [a.input for a in active if a.subscription_id is None or a.subscription_id == subscription_id]
    return chosen[:1] if stacking is Stacking.NONE else chosen


def mark_applied(conn: Connection, discount_ids: Sequence[int], now: datetime) -> None:
    """Each discount that reduced a document counts one more period; a once/repeating discount that
    has had all its periods ends (and says so in an event)."""
    if not discount_ids:
        return
    counts: dict[int, int] = {}
    for did in discount_ids:
        counts[did] = counts.get(did, 0) + 1
    dc, cc = td.discounts.c, td.coupons.c
    for did, n in counts.items():
        conn.execute(update(td.discounts).where(dc.id == did).values(periods_applied=dc.periods_applied + n))
    rows = conn.execute(
        select(dc.id, dc.organization_id, dc.coupon_id, dc.periods_applied, cc.duration, cc.duration_periods)
        .join(td.coupons, cc.id == dc.coupon_id)
        .where(dc.id.in_(sorted(counts)), cc.duration != Duration.FOREVER.value)
    ).all()
    ended = [
        r
        for r in rows
        if r.periods_applied >= (1 if r.duration == Duration.ONCE.value else int(r.duration_periods or 1))
    ]
    if ended:
        conn.execute(
            update(td.discounts)
            .where(and_(dc.id.in_([r.id for r in ended])))
            .values(status="ended", ended_at=now)
        )
        append_outbox(
            conn,
            [
                outbox_row(
                    r.organization_id, "discount.ended", "discount", r.id, now, {"coupon_id": r.coupon_id}
                )
                for r in ended
            ],
        )


def expire_coupons(conn: Connection, org_ids: Iterable[int], now: datetime) -> int:
    """Coupons whose redeem-by date has passed are marked expired once, with a `coupon.expired` event
    (discounts already redeemed keep running: redeem_by only closes new redemptions)."""
    cc = td.coupons.c
    rows = conn.execute(
        select(cc.id, cc.organization_id, cc.name).where(
            cc.organization_id.in_(sorted(set(org_ids))),
            cc.redeem_by.is_not(None),
            cc.redeem_by <= now,
            cc.expired_at.is_(None),
        )
    ).all()
    if rows:
        conn.execute(update(td.coupons).where(cc.id.in_([r.id for r in rows])).values(expired_at=now))
        append_outbox(
            conn,
            [
                outbox_row(
                    r.organization_id, "coupon.expired", "coupon", r.id, now, {"id": r.id, "name": r.name}
                )
                for r in rows
            ],
        )
    return len(rows)
