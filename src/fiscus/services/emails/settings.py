"""An organisation's email settings and dunning policy: reading them as one object and changing them
(validated, audited, one transaction). The retry schedule lives with the payment settings
(`organizations.retry_days`, `retry_final_action`); the dunning policy reads and writes it too, so the
schedule and the emails at each step can never disagree."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import append_audit, audit_row
from fiscus.adapters.db.email_queue import dunning_policy, email_settings
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_email import organization_email_settings
from fiscus.domain.clock import Clock
from fiscus.domain.email import ALWAYS_SENT, DunningPolicy, EmailKind
from fiscus.domain.errors import FieldConflictError, InvalidFieldError

_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
SENDER_ADDRESS = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+$")
"""A sender or reply-to address as the API document states it (the same pattern): an RFC 5322
dot-atom local part and a domain of at least two labels, ASCII only, so it goes into a header as it is.
Matched like pydantic matches field patterns (`re.match`)."""
MAX_ADDRESS = 254


def read_email_settings(conn: Connection, org_id: int) -> dict[str, Any]:
    """The settings object the API and the console show."""
    cfg = email_settings(conn, [org_id])[org_id]
    return {
        "from_address": cfg["from_address"],
        "from_name": cfg["from_name"],
        "reply_to": cfg["reply_to"],
        "brand_color": cfg["brand_color"],
        "disabled": sorted(cfg["disabled"]),
        "trial_notice_days": int(cfg["trial_notice_days"]),
        "renewal_notice_days": int(cfg["renewal_notice_days"]),
        "dunning": dunning_policy(cfg).as_dict(),
    }


def _address(field: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    if len(text) > MAX_ADDRESS or not SENDER_ADDRESS.match(text):
        raise InvalidFieldError(field, "must be an email address such as billing@example.com")
    return text


def _days(field: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 60:
        raise InvalidFieldError(field, "must be a whole number of days from 1 to 60")
    return value


def validate(current: Mapping[str, Any], changes: Mapping[str, Any]) -> tuple[dict[str, Any], DunningPolicy]:
    """The stored columns after `changes` (fields left out keep their value) and the dunning policy."""
    out = {k: current[k] for k in ("from_address", "from_name", "reply_to", "brand_color", "disabled")}
    out["trial_notice_days"] = current["trial_notice_days"]
    out["renewal_notice_days"] = current["renewal_notice_days"]
    for field in ("from_address", "reply_to"):
        if field in changes:
            out[field] = _address(field, changes[field])
    if "from_name" in changes:
        name = changes["from_name"]
        out["from_name"] = (str(name).strip() or None) if name is not None else None
        if out["from_name"] and (len(out["from_name"]) > 200 or any(ch in out["from_name"] for ch in "\r\n")):
            raise InvalidFieldError("from_name", "must be one line of at most 200 characters")
    if "brand_color" in changes:
        color = changes["brand_color"]
        if color is not None and not _COLOR.fullmatch(str(color)):
            raise InvalidFieldError("brand_color", "must be a colour as #RRGGBB")
        out["brand_color"] = color.lower() if isinstance(color, str) else None
    if "disabled" in changes:
        kinds = changes["disabled"] or []
        known = {k.value for k in EmailKind if k not in ALWAYS_SENT}
        for i, kind in enumerate(kinds):
            if kind not in known:
                raise InvalidFieldError(f"disabled.{i}", f"must be one of {', '.join(sorted(known))}")
        out["disabled"] = sorted(set(kinds))
    for field, default in (("trial_notice_days", 3), ("renewal_notice_days", 14)):
        if field in changes:
            out[field] = default if changes[field] is None else _days(field, changes[field])
    policy = dunning_policy(dict(current))
    if "dunning" in changes and changes["dunning"] is not None:
        # null leaves a field as it is (emails: null asks for the default steps).
        d = {k: v for k, v in changes["dunning"].items() if v is not None or k == "emails"}
        days = d.get("retry_days", list(policy.retry.days))
        action = d.get("final_action", policy.retry.final_action.value)
        steps = d.get("emails")
        if steps is None and "retry_days" not in d:
            steps = [s.value for s in policy.steps]
        try:
            policy = DunningPolicy.parse(days, action, steps)
        except InvalidFieldError as exc:
            names = {"retry_days": "dunning.retry_days", "retry_final_action": "dunning.final_action"}
            field = names.get(exc.field, exc.field)
            if field.startswith("dunning.emails") and "retry_days" not in d:
                # emails that do not fit the stored retry schedule: a conflict with it, not a bad body
                raise FieldConflictError(field, exc.problems[0].message) from None
            raise InvalidFieldError(field, exc.problems[0].message) from None
    return out, policy


def update_email_settings(
    db: Database, clock: Clock, org_id: int, changes: Mapping[str, Any], *, actor: str = "api"
) -> dict[str, Any]:
    """Change an organisation's email settings and dunning policy; returns them after the change."""
    with db.write() as conn:
        now = clock.now()
        conn.execute(select(t.organizations.c.id).where(t.organizations.c.id == org_id).with_for_update())
        before = read_email_settings(conn, org_id)
        current = email_settings(conn, [org_id])[org_id]
        values, policy = validate(current, changes)
        row = {**values, "dunning_emails": [s.value for s in policy.steps], "updated_at": now}
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(organization_email_settings).values(organization_id=org_id, **row)
        conn.execute(statement.on_conflict_do_update(index_elements=["organization_id"], set_=row))
        conn.execute(
            update(t.organizations)
            .where(t.organizations.c.id == org_id)
            .values(retry_days=list(policy.retry.days), retry_final_action=policy.retry.final_action.value)
        )
        after = read_email_settings(conn, org_id)
        append_audit(
            conn, [audit_row(org_id, "organization", org_id, "email_settings", actor, now, before, after)]
        )
        return after
