"""The catalog: products (every field seed 000's `integration` carries), variants with limits, prices.

Prices are immutable once created: a new price replaces an old one, so a billed amount can always be
traced to the exact figure it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import append_audit, append_outbox, audit_row, outbox_row
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.errors import ConflictError, FieldConflictError, InvalidFieldError
from fiscus.domain.money import currency
from fiscus.domain.periods import Interval
from fiscus.domain.tax import TaxCategory
from fiscus.services import validation as v
from fiscus.services.common import get_scoped
from fiscus.services.usage_prices import UsageSpec, attach_usage


@dataclass(slots=True)
class ProductSpec:
    code: str
    name: str
    slug: str = ""
    comment: str = ""
    slogan: str = ""
    type: str = "integration"
    detail: str = ""
    icon: str = ""
    image: str = ""
    image_alt: str = ""
    disabled: bool = False
    extra: Any = None
    demo_enabled: bool = False
    demo_duration: str = ""
    tags: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    visible: bool = True


def _string_list(name: str, values: list[str]) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(x, str) and x for x in values):
        raise InvalidFieldError(name, "must be a list of non-empty strings")
    return list(values)


def _unique(conn: Connection, table: Table, column: str, value: str, scope: ColumnElement[bool]) -> None:
    if conn.execute(select(table.c.id).where(scope, table.c[column] == value)).first() is not None:
        raise ConflictError(f"{column} '{value}' is already taken", field=column)


def create_product(db: Database, clock: Clock, org_id: int, spec: ProductSpec, *, actor: str = "cli") -> int:
    code = v.text("code", spec.code, max_len=64)
    name = v.text("name", spec.name)
    now = clock.now()
    values = {
        "organization_id": org_id,
        "code": code,
        "name": name,
        "slug": v.text("slug", spec.slug or code.lower().replace("_", "-"), max_len=200),
        "comment": spec.comment,
        "slogan": spec.slogan,
        "type": v.text("type", spec.type, max_len=32),
        "detail": spec.detail,
        "icon": spec.icon,
        "image": spec.image,
        "image_alt": spec.image_alt,
        "disabled": spec.disabled,
        "extra": spec.extra,
        "demo_enabled": spec.demo_enabled,
        "demo_duration": spec.demo_duration,
        "tags": _string_list("tags", spec.tags),
        "modules": _string_list("modules", spec.modules),
        "visible": spec.visible,
        "created_at": now,
    }
    with db.write() as conn:
        _unique(conn, t.products, "code", code, t.products.c.organization_id == org_id)
        pid = conn.execute(insert(t.products).values(**values).returning(t.products.c.id)).scalar_one()
        append_audit(conn, [audit_row(org_id, "product", pid, "created", actor, now, None, {"code": code})])
    return int(pid)


def update_product(
    db: Database,
    clock: Clock,
    org_id: int,
    product_id: int,
    *,
    name: str | None = None,
    detail: str | None = None,
    actor: str = "cli",
) -> None:
    """Change a product's name and description (`detail`); None leaves a field as it is. Issued
    documents keep the line descriptions they were issued with."""
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = v.text("name", name)
    if detail is not None:  # kept as given, as `create_product` keeps it
        if not isinstance(detail, str) or len(detail) > 20_000:
            raise InvalidFieldError("detail", "must be a text of at most 20000 characters")
        values["detail"] = detail
    now = clock.now()
    with db.write() as conn:
        row = get_scoped(conn, t.products, org_id, product_id, lock=True)
        changed = {k: x for k, x in values.items() if row[k] != x}
        if not changed:
            return
        conn.execute(update(t.products).where(t.products.c.id == product_id).values(**changed))
        before = {k: row[k] for k in changed}
        append_audit(conn, [audit_row(org_id, "product", product_id, "updated", actor, now, before, changed)])


def create_variant(
    db: Database,
    clock: Clock,
    org_id: int,
    product_id: int,
    *,
    code: str,
    name: str,
    limits: list[str] | None = None,
    actor: str = "cli",
) -> int:
    now = clock.now()
    with db.write() as conn:
        get_scoped(conn, t.products, org_id, product_id, field="product_id")
        _unique(conn, t.variants, "code", code, t.variants.c.product_id == product_id)
        vid = conn.execute(
            insert(t.variants)
            .values(
                organization_id=org_id,
                product_id=product_id,
                code=v.text("code", code, max_len=64),
                name=v.text("name", name),
                limits=_string_list("limits", limits or []),
                created_at=now,
            )
            .returning(t.variants.c.id)
        ).scalar_one()
        append_audit(conn, [audit_row(org_id, "variant", vid, "created", actor, now, None, {"code": code})])
    return int(vid)


def create_price(
    db: Database,
    clock: Clock,
    org_id: int,
    variant_id: int,
    *,
    currency_code: str,
    unit_amount: object,
    interval: str | None = None,
    interval_count: int = 1,
    tax_inclusive: bool = False,
    tax_category: str = TaxCategory.STANDARD.value,
    actor: str = "cli",
    usage: UsageSpec | None = None,
) -> int:
    """A price of a variant: recurring (interval × count) or one-off (no interval); with `usage`, billed
    in arrears on a billable metric (services/usage_prices.py)."""
    currency(currency_code, "currency")
    amount = v.unit_amount("unit_amount", unit_amount)
    if interval is not None:
        try:
            Interval.parse(interval, interval_count)
        except ValueError as exc:
            raise InvalidFieldError("interval", str(exc)) from None
    elif interval_count != 1:
        raise InvalidFieldError("interval_count", "a one-off price has no interval count")
    try:
        category = TaxCategory(tax_category)
    except ValueError:
        raise InvalidFieldError("tax_category", f"must be one of {', '.join(TaxCategory)}") from None
    now = clock.now()
    with db.write() as conn:
        get_scoped(conn, t.variants, org_id, variant_id, field="variant_id")
        price_id = conn.execute(
            insert(t.prices)
            .values(
                organization_id=org_id,
                variant_id=variant_id,
                currency=currency_code,
                unit_amount=amount,
                interval=interval,
                interval_count=interval_count,
                tax_inclusive=tax_inclusive,
                tax_category=category.value,
                created_at=now,
            )
            .returning(t.prices.c.id)
        ).scalar_one()
        if usage is not None:
            attach_usage(conn, org_id, price_id, usage, recurring=interval is not None, unit_amount=amount)
        append_audit(
            conn,
            [
                audit_row(
                    org_id,
                    "price",
                    price_id,
                    "created",
                    actor,
                    now,
                    None,
                    {"unit_amount": str(amount), "currency": currency_code, "interval": interval},
                )
            ],
        )
    return int(price_id)


def refuse_archived(
    conn: Connection, org_id: int, price_ids: Sequence[int], *, allowed: Sequence[int] = ()
) -> None:
    """An archived price takes no new subscription or order (`allowed`: prices already on the
    subscription being changed, which keep billing)."""
    pr = t.prices.c
    archived = set(
        conn.execute(
            select(pr.id).where(
                pr.organization_id == org_id, pr.id.in_(list(price_ids)), pr.active.is_(False)
            )
        ).scalars()
    ) - set(allowed)
    for n, price_id in enumerate(price_ids):
        if price_id in archived:
            raise FieldConflictError(
                f"items.{n}.price_id",
                f"price {price_id} is archived: it takes no new subscriptions or orders",
            )


def set_price_active(
    db: Database, clock: Clock, org_id: int, price_id: int, *, active: bool, actor: str = "cli"
) -> None:
    """Archive a price (`active=False`: no new subscriptions or orders on it; existing subscriptions
    keep being billed at it) or bring it back. Audited, and announced as `price.updated`."""
    now = clock.now()
    with db.write() as conn:
        row = get_scoped(conn, t.prices, org_id, price_id, lock=True)
        if bool(row["active"]) == active:
            return
        conn.execute(update(t.prices).where(t.prices.c.id == price_id).values(active=active))
        what = "unarchived" if active else "archived"
        append_audit(
            conn,
            [
                audit_row(
                    org_id, "price", price_id, what, actor, now, {"active": not active}, {"active": active}
                )
            ],
        )
        append_outbox(
            conn,
            [outbox_row(org_id, "price.updated", "price", price_id, now, {"id": price_id, "active": active})],
        )
