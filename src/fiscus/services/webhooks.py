"""Webhook endpoints and deliveries: registering, changing, rotating, deleting, redelivering.

Each use case is one transaction with its audit row. Secrets never enter audit rows. Endpoint URLs
pass the static half of the SSRF guard when saved (no DNS: a name may resolve differently later, so
the full check runs again before every attempt).
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import append_audit, audit_row
from fiscus.adapters.db.engine import Database
from fiscus.adapters.webhooks import ssrf
from fiscus.domain.clock import Clock
from fiscus.domain.errors import InvalidFieldError, InvalidStateError, NotFoundError
from fiscus.services import validation as v
from fiscus.services.common import get_scoped

SECRET_PREFIX: Final = "whsec_"
SECRET_BYTES: Final = 24
MAX_EVENT_TYPES: Final = 100
EVENT_TYPE: Final = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$")


def new_secret() -> str:
    """`whsec_` + base64 of 24 random bytes, the form the standardwebhooks libraries decode."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def parse_event_types(value: object) -> list[str]:
    """Subscribed types: exact (`invoice.issued`), a prefix wildcard (`invoice.*`) or `*` for all."""
    if not isinstance(value, list) or not value:
        raise InvalidFieldError("event_types", 'must be a non-empty list, ["*"] for every event')
    if len(value) > MAX_EVENT_TYPES:
        raise InvalidFieldError("event_types", f"must have at most {MAX_EVENT_TYPES} entries")
    out: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or len(item) > 64 or not EVENT_TYPE.match(item):
            raise InvalidFieldError(
                f"event_types.{i}", "must be an event type such as invoice.issued, invoice.* or *"
            )
        if item not in out:
            out.append(item)
    return out


def matches(subscribed: list[str], event_type: str) -> bool:
    for pattern in subscribed:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def _url(url: str, allow_private: bool) -> str:
    url = v.text("url", url, max_len=ssrf.MAX_URL_LENGTH)
    ssrf.check_static(url, allow_private=allow_private)
    return url


def _snapshot(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "url": row["url"],
        "event_types": list(row["event_types"]),
        "description": row["description"],
        "enabled": bool(row["enabled"]),
    }


def create_endpoint(
    db: Database,
    clock: Clock,
    org_id: int,
    *,
    url: str,
    event_types: list[str],
    description: str = "",
    enabled: bool = True,
    actor: str = "cli",
    allow_private: bool = False,
) -> tuple[int, str]:
    """Register an endpoint; returns its id and its signing secret (shown to the caller only now)."""
    values: dict[str, Any] = {
        "organization_id": org_id,
        "url": _url(url, allow_private),
        "event_types": parse_event_types(event_types),
        "description": v.text("description", description, max_len=500, allow_empty=True),
        "enabled": bool(enabled),
        "secret": new_secret(),
    }
    now = clock.now()
    with db.write() as conn:
        endpoint_id = int(
            conn.execute(
                t.webhook_endpoints.insert()
                .values(**values, created_at=now, updated_at=now)
                .returning(t.webhook_endpoints.c.id)
            ).scalar_one()
        )
        after = _snapshot({**values, "id": endpoint_id})
        append_audit(
            conn, [audit_row(org_id, "webhook_endpoint", endpoint_id, "created", actor, now, None, after)]
        )
    return endpoint_id, str(values["secret"])


def update_endpoint(
    db: Database,
    clock: Clock,
    org_id: int,
    endpoint_id: int,
    *,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    actor: str = "cli",
    allow_private: bool = False,
) -> None:
    """Change what is given; None leaves a field as it is. Queued deliveries keep their events."""
    values: dict[str, Any] = {}
    if url is not None:
        values["url"] = _url(url, allow_private)
    if event_types is not None:
        values["event_types"] = parse_event_types(event_types)
    if description is not None:
        values["description"] = v.text("description", description, max_len=500, allow_empty=True)
    if enabled is not None:
        values["enabled"] = bool(enabled)
    now = clock.now()
    with db.write() as conn:
        row = get_scoped(conn, t.webhook_endpoints, org_id, endpoint_id, lock=True)
        if not values:
            return
        conn.execute(
            update(t.webhook_endpoints)
            .where(t.webhook_endpoints.c.id == endpoint_id)
            .values(**values, updated_at=now)
        )
        before, after = _snapshot(row), _snapshot({**row, **values})
        append_audit(
            conn, [audit_row(org_id, "webhook_endpoint", endpoint_id, "updated", actor, now, before, after)]
        )


def rotate_secret(
    db: Database,
    clock: Clock,
    org_id: int,
    endpoint_id: int,
    *,
    keep_old_for: timedelta = timedelta(hours=24),
    actor: str = "cli",
) -> str:
    """Issue a new secret; the current one keeps signing too (a second signature) for `keep_old_for`,
    so receivers can switch without dropping a delivery. Returns the new secret, shown only now."""
    if keep_old_for < timedelta(0):
        raise InvalidFieldError("keep_old_for", "must not be negative")
    secret = new_secret()
    now = clock.now()
    with db.write() as conn:
        row = get_scoped(conn, t.webhook_endpoints, org_id, endpoint_id, lock=True)
        keep = keep_old_for > timedelta(0)
        expires = now + keep_old_for if keep else None
        conn.execute(
            update(t.webhook_endpoints)
            .where(t.webhook_endpoints.c.id == endpoint_id)
            .values(
                secret=secret,
                previous_secret=row["secret"] if keep else None,
                previous_secret_expires_at=expires,
                updated_at=now,
            )
        )
        after = {"previous_secret_expires_at": expires.isoformat() if expires else None}
        append_audit(
            conn,
            [audit_row(org_id, "webhook_endpoint", endpoint_id, "secret_rotated", actor, now, None, after)],
        )
    return secret


def delete_endpoint(db: Database, clock: Clock, org_id: int, endpoint_id: int, *, actor: str = "cli") -> None:
    """Disable the endpoint and fail its queued deliveries; its deliveries and attempts stay as history
    (and a failed delivery can still be redelivered should the endpoint be enabled again)."""
    now = clock.now()
    d = t.webhook_deliveries.c
    with db.write() as conn:
        row = get_scoped(conn, t.webhook_endpoints, org_id, endpoint_id, lock=True)
        conn.execute(
            update(t.webhook_endpoints)
            .where(t.webhook_endpoints.c.id == endpoint_id)
            .values(enabled=False, updated_at=now)
        )
        canceled = conn.execute(
            update(t.webhook_deliveries)
            .where(d.endpoint_id == endpoint_id, d.status == "pending")
            .values(status="failed", next_attempt_at=None)
        ).rowcount
        after = {**_snapshot({**row, "enabled": False}), "canceled_deliveries": canceled}
        append_audit(
            conn,
            [
                audit_row(
                    org_id, "webhook_endpoint", endpoint_id, "deleted", actor, now, _snapshot(row), after
                )
            ],
        )


def redeliver(db: Database, clock: Clock, org_id: int, delivery_id: int, *, actor: str = "cli") -> None:
    """Attempt a delivery again now. A pending one keeps its retry schedule; a failed or succeeded one
    gets one more attempt (a failure puts it back to failed, it starts no new retry series)."""
    now = clock.now()
    d = t.webhook_deliveries.c
    with db.write() as conn:
        try:
            row = get_scoped(conn, t.webhook_deliveries, org_id, delivery_id, lock=True)
        except NotFoundError:
            raise NotFoundError("webhook_delivery", delivery_id) from None
        endpoint = get_scoped(conn, t.webhook_endpoints, org_id, row["endpoint_id"])
        if not endpoint["enabled"]:
            raise InvalidStateError(
                f"webhook endpoint {endpoint['id']} is disabled; enable it before redelivering",
                endpoint_id=endpoint["id"],
            )
        conn.execute(
            update(t.webhook_deliveries)
            .where(d.id == delivery_id)
            .values(status="pending", next_attempt_at=now)
        )
        append_audit(
            conn,
            [
                audit_row(
                    org_id,
                    "webhook_delivery",
                    delivery_id,
                    "redelivered",
                    actor,
                    now,
                    {"status": row["status"], "attempts": row["attempts"]},
                    {"status": "pending", "next_attempt_at": now.isoformat()},
                )
            ],
        )
