"""An organisation's usage settings: the late window for events, the grace window before a period's
usage is billed, what late events after issue become (a supplementary invoice or a credit note), and
whether events may name an external customer id no customer has yet (kept until it exists).
A change is audited (`organization` / `usage_settings_updated`, before and after) like the other
organisation settings, in the transaction that writes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, select

from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.documents import append_audit, audit_row
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.upsert import insert_for
from fiscus.domain.clock import Clock, SystemClock
from fiscus.domain.errors import InvalidFieldError

DEFAULT_LATE_DAYS: Final = 7
DEFAULT_GRACE_HOURS: Final = 1
LATE_POLICIES: Final = ("invoice", "credit_note")


@dataclass(frozen=True, slots=True)
class UsageSettings:
    late_days: int = DEFAULT_LATE_DAYS
    grace_hours: int = DEFAULT_GRACE_HOURS
    late_policy: str = "invoice"
    accept_unknown_customers: bool = False

    def image(self) -> dict[str, object]:
        """The audit image."""
        return {
            "late_days": self.late_days,
            "grace_hours": self.grace_hours,
            "late_policy": self.late_policy,
            "accept_unknown_customers": self.accept_unknown_customers,
        }


def load_usage_settings(conn: Connection, org_id: int) -> UsageSettings:
    s = tu.usage_settings.c
    row = conn.execute(
        select(s.late_days, s.grace_hours, s.late_policy, s.accept_unknown_customers).where(
            s.organization_id == org_id
        )
    ).one_or_none()
    return UsageSettings(row[0], row[1], row[2], bool(row[3])) if row else UsageSettings()


def update_usage_settings(
    db: Database,
    org_id: int,
    *,
    late_days: int | None = None,
    grace_hours: int | None = None,
    late_policy: str | None = None,
    accept_unknown_customers: bool | None = None,
    clock: Clock | None = None,
    actor: str = "cli",
) -> UsageSettings:
    """Change the fields given (the others stay); audited when something changed."""
    if late_days is not None and not 0 <= late_days <= 366:
        raise InvalidFieldError("late_days", "0 to 366 days")
    if grace_hours is not None and not 0 <= grace_hours <= 720:
        raise InvalidFieldError("grace_hours", "0 to 720 hours")
    if late_policy is not None and late_policy not in LATE_POLICIES:
        raise InvalidFieldError("late_policy", "'invoice' or 'credit_note'")
    with db.write() as conn:
        current = load_usage_settings(conn, org_id)
        new = UsageSettings(
            late_days if late_days is not None else current.late_days,
            grace_hours if grace_hours is not None else current.grace_hours,
            late_policy or current.late_policy,
            current.accept_unknown_customers
            if accept_unknown_customers is None
            else accept_unknown_customers,
        )
        if new == current:
            return new
        values = new.image()
        conn.execute(
            insert_for(conn, tu.usage_settings)
            .values(organization_id=org_id, **values)
            .on_conflict_do_update(index_elements=["organization_id"], set_=values)
        )
        now = (clock or SystemClock()).now()
        before = current.image()
        append_audit(
            conn,
            [audit_row(org_id, "organization", org_id, "usage_settings_updated", actor, now, before, values)],
        )
    return new
