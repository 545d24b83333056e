"""Billable metrics: create, rename, delete. A metric's definition is fixed once created, because the
hour buckets were built with it; only its name changes. A metric still priced or counted is not deleted."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, delete, exists, insert, select, update

from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.documents import append_audit, audit_row
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.errors import FieldConflictError, InvalidFieldError, InvalidStateError, NotFoundError
from fiscus.domain.usage import Aggregation, Metric, MetricRounding
from fiscus.services import validation as v

CODE: Final = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
PROPERTY: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
MAX_FILTER_VALUES: Final = 50


@dataclass(slots=True)
class MetricSpec:
    code: str
    name: str
    aggregation: str
    field: str | None = None
    filters: Mapping[str, list[str]] = dataclasses.field(default_factory=dict)
    group_by: str | None = None
    rounding: str = "none"
    precision: int = 0


def metric_of(row: Mapping[str, Any]) -> Metric:
    """The domain metric a stored row defines."""
    return Metric(
        code=row["code"],
        aggregation=Aggregation(row["aggregation"]),
        field=row["field"],
        filters={k: tuple(vs) for k, vs in (row["filters"] or {}).items()},
        group_by=row["group_by"],
        rounding=MetricRounding(row["rounding"]),
        precision=row["precision"],
    )


def _property(name: str, value: str | None) -> str | None:
    if value is not None and not PROPERTY.match(value):
        raise InvalidFieldError(name, "a property name: 1 to 64 letters, digits, '_', '.' or '-'")
    return value


def _check(spec: MetricSpec) -> dict[str, Any]:
    if not CODE.match(spec.code):
        raise InvalidFieldError("code", "1 to 64 lower-case letters, digits, '_', '.' or '-'")
    try:
        aggregation = Aggregation(spec.aggregation)
    except ValueError:
        raise InvalidFieldError("aggregation", f"one of {', '.join(a.value for a in Aggregation)}") from None
    try:
        rounding = MetricRounding(spec.rounding)
    except ValueError:
        raise InvalidFieldError("rounding", f"one of {', '.join(r.value for r in MetricRounding)}") from None
    filters: dict[str, list[str]] = {}
    for prop, values in spec.filters.items():
        _property(f"filters.{prop}", prop)
        if not values or len(values) > MAX_FILTER_VALUES:
            raise InvalidFieldError(f"filters.{prop}", f"1 to {MAX_FILTER_VALUES} values")
        filters[prop] = [v.text(f"filters.{prop}", x, max_len=200) for x in values]
    Metric(
        spec.code,
        aggregation,
        _property("field", spec.field),
        {k: tuple(x) for k, x in filters.items()},
        _property("group_by", spec.group_by),
        rounding,
        spec.precision,
    )
    return {
        "code": spec.code,
        "name": v.text("name", spec.name),
        "aggregation": aggregation.value,
        "field": spec.field,
        "filters": filters,
        "group_by": spec.group_by,
        "rounding": rounding.value,
        "precision": spec.precision,
    }


def create_metric(db: Database, clock: Clock, org_id: int, spec: MetricSpec, *, actor: str = "cli") -> int:
    values = _check(spec)
    now = clock.now()
    m = tu.billable_metrics.c
    with db.write() as conn:
        taken = conn.execute(select(m.id).where(m.organization_id == org_id, m.code == spec.code)).first()
        if taken:
            raise FieldConflictError("code", f"a billable metric with code '{spec.code}' exists")
        mid = conn.execute(
            insert(tu.billable_metrics)
            .values(organization_id=org_id, created_at=now, updated_at=now, **values)
            .returning(m.id)
        ).scalar_one()
        append_audit(conn, [audit_row(org_id, "billable_metric", mid, "created", actor, now, None, values)])
    return int(mid)


def get_metric(conn: Connection, org_id: int, metric_id: int) -> dict[str, Any]:
    m = tu.billable_metrics.c
    row = (
        conn.execute(select(tu.billable_metrics).where(m.id == metric_id, m.organization_id == org_id))
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise NotFoundError("billable_metric", metric_id)
    return dict(row)


def rename_metric(
    db: Database, clock: Clock, org_id: int, metric_id: int, name: str, *, actor: str = "cli"
) -> None:
    now = clock.now()
    with db.write() as conn:
        before = get_metric(conn, org_id, metric_id)
        new = v.text("name", name)
        conn.execute(
            update(tu.billable_metrics)
            .where(tu.billable_metrics.c.id == metric_id)
            .values(name=new, updated_at=now)
        )
        append_audit(
            conn,
            [
                audit_row(
                    org_id,
                    "billable_metric",
                    metric_id,
                    "updated",
                    actor,
                    now,
                    {"name": before["name"]},
                    {"name": new},
                )
            ],
        )


def delete_metric(db: Database, clock: Clock, org_id: int, metric_id: int, *, actor: str = "cli") -> None:
    """Only a metric no price uses and no event was counted against (its events must stay billable)."""
    with db.write() as conn:
        before = get_metric(conn, org_id, metric_id)
        e, p = tu.usage_events.c, tu.usage_prices.c
        if conn.execute(
            select(exists().where(p.organization_id == org_id, p.metric_id == metric_id))
        ).scalar():
            raise InvalidStateError("a price bills this metric; archive the price instead", metric=metric_id)
        if conn.execute(
            select(exists().where(e.organization_id == org_id, e.metric_id == metric_id))
        ).scalar():
            raise InvalidStateError("events were counted against this metric; it stays", metric=metric_id)
        conn.execute(delete(tu.billable_metrics).where(tu.billable_metrics.c.id == metric_id))
        append_audit(
            conn,
            [
                audit_row(
                    org_id, "billable_metric", metric_id, "deleted", actor, clock.now(), before["code"], None
                )
            ],
        )


def metrics_by_code(conn: Connection, org_id: int, codes: Iterable[str]) -> dict[str, dict[str, Any]]:
    m = tu.billable_metrics.c
    rows = conn.execute(
        select(tu.billable_metrics).where(m.organization_id == org_id, m.code.in_(sorted(set(codes))))
    ).mappings()
    return {r["code"]: dict(r) for r in rows}
