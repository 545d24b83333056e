"""How an organisation collects: automatically or not, sale or authorise-then-capture, and its retry
schedule with the final action."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import append_audit, audit_row
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.payments import CaptureMode, RetryPolicy
from fiscus.services.common import jsonable


def update_payment_settings(
    db: Database,
    clock: Clock,
    org_id: int,
    *,
    auto_collect: bool | None = None,
    capture_mode: str | None = None,
    retry_days: Sequence[object] | None = None,
    retry_final_action: str | None = None,
    actor: str = "api",
) -> dict[str, Any]:
    """Change how an organisation collects; returns the settings after the change."""
    now = clock.now()
    with db.write() as conn:
        org = _org_row(conn, org_id)
        policy = RetryPolicy.parse(
            org["retry_days"] if retry_days is None else retry_days,
            org["retry_final_action"] if retry_final_action is None else retry_final_action,
        )
        values: dict[str, Any] = {
            "retry_days": list(policy.days),
            "retry_final_action": policy.final_action.value,
        }
        if auto_collect is not None:
            values["auto_collect"] = auto_collect
        if capture_mode is not None:
            try:
                values["capture_mode"] = CaptureMode(capture_mode).value
            except ValueError:
                raise InvalidFieldError("capture_mode", "must be sale or authorize") from None
        conn.execute(update(t.organizations).where(t.organizations.c.id == org_id).values(**values))
        keys = ("auto_collect", "capture_mode", "retry_days", "retry_final_action")
        after = {**jsonable(org, keys), **values}
        append_audit(
            conn,
            [
                audit_row(
                    org_id, "organization", org_id, "payment_settings", actor, now, jsonable(org, keys), after
                )
            ],
        )
        return after


def _org_row(conn: Connection, org_id: int) -> dict[str, Any]:
    row = (
        conn.execute(select(t.organizations).where(t.organizations.c.id == org_id).with_for_update())
        .mappings()
        .one()
    )
    return dict(row)
