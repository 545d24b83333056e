"""What an organisation lets its customers do in the portal (Stripe's portal "configuration"): change
plan, change quantity, cancel at period end, which plans are offered, and the portal's brand colour.
Everything is off until the organisation turns it on; seeing documents, paying, cards and billing
details are always there."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from sqlalchemy import Connection, insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_portal as tp
from fiscus.adapters.db.documents import append_audit, append_outbox, audit_row, outbox_row
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.errors import FieldConflictError, InvalidFieldError
from fiscus.services.common import get_scoped

FLAGS: Final = ("allow_plan_change", "allow_quantity_change", "allow_cancel")
MAX_PLANS: Final = 20
_COLOR: Final = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True, slots=True)
class PortalSettings:
    allow_plan_change: bool = False
    allow_quantity_change: bool = False
    allow_cancel: bool = False
    plans: list[int] = field(default_factory=list)
    brand_color: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def portal_settings(conn: Connection, org_id: int) -> PortalSettings:
    """The organisation's portal settings (all off when never set)."""
    row = (
        conn.execute(select(tp.portal_settings).where(tp.portal_settings.c.organization_id == org_id))
        .mappings()
        .one_or_none()
    )
    if row is None:
        return PortalSettings()
    return PortalSettings(
        bool(row["allow_plan_change"]),
        bool(row["allow_quantity_change"]),
        bool(row["allow_cancel"]),
        [int(p) for p in row["plans"]],
        row["brand_color"],
    )


def _plans(conn: Connection, org_id: int, raw: object) -> list[int]:
    if not isinstance(raw, list) or len(raw) > MAX_PLANS:
        raise InvalidFieldError("plans", f"must be a list of at most {MAX_PLANS} price ids")
    plans: list[int] = []
    for i, price_id in enumerate(raw):
        if not isinstance(price_id, int) or isinstance(price_id, bool):
            raise InvalidFieldError(f"plans.{i}", "must be a price id")
        price = get_scoped(conn, t.prices, org_id, price_id)
        if price["interval"] is None:
            raise FieldConflictError(f"plans.{i}", "must be a recurring price (a plan)")
        if price_id not in plans:
            plans.append(price_id)
    return plans


def update_portal_settings(
    db: Database, clock: Clock, org_id: int, changes: Mapping[str, Any], *, actor: str = "cli"
) -> PortalSettings:
    """Change some of the settings; audited and announced as `organization.updated` (`portal`)."""
    now = clock.now()
    with db.write() as conn:
        before = portal_settings(conn, org_id)
        values = before.as_json()
        for key, raw in changes.items():
            if key in FLAGS:
                if not isinstance(raw, bool):
                    raise InvalidFieldError(key, "must be true or false")
                values[key] = raw
            elif key == "plans":
                values[key] = _plans(conn, org_id, raw)
            elif key == "brand_color":
                if raw is not None and (not isinstance(raw, str) or not _COLOR.match(raw)):
                    raise InvalidFieldError(key, "must be a colour as #rrggbb, or null for the default")
                values[key] = raw.lower() if isinstance(raw, str) else None
            else:
                raise InvalidFieldError(key, "is not a portal setting")
        after = PortalSettings(**values)
        if after == before:
            return before
        ps = tp.portal_settings.c
        exists = conn.execute(select(ps.organization_id).where(ps.organization_id == org_id)).first()
        row = {**values, "updated_at": now}
        if exists:
            conn.execute(update(tp.portal_settings).where(ps.organization_id == org_id).values(**row))
        else:
            conn.execute(insert(tp.portal_settings).values(organization_id=org_id, **row))
        append_audit(
            conn,
            [
                audit_row(
                    org_id,
                    "organization",
                    org_id,
                    "portal_updated",
                    actor,
                    now,
                    {"portal": before.as_json()},
                    {"portal": after.as_json()},
                )
            ],
        )
        payload = {"id": org_id, "object": "organization", "changed": ["portal"], "portal": after.as_json()}
        append_outbox(
            conn, [outbox_row(org_id, "organization.updated", "organization", org_id, now, payload)]
        )
    return after
