"""Payment methods: cards the provider tokenised, the customer's default, a subscription's own card,
and detaching; and which method a charge uses (the given one, else the subscription's, else the
default)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import append_audit, append_outbox, audit_row, outbox_row
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.errors import InvalidFieldError, NotFoundError
from fiscus.domain.payments import CardDetails, PaymentProvider, ProviderError
from fiscus.services.common import get_scoped, jsonable

METHOD_KEYS = ("type", "network", "brand", "last4", "exp_month", "exp_year", "status")


def add_card(
    db: Database,
    clock: Clock,
    provider: PaymentProvider,
    org_id: int,
    customer_id: int,
    *,
    token: str,
    holder: str = "",
    make_default: bool = True,
    actor: str = "api",
) -> int:
    """Attach a card the provider tokenised (the number went to the provider, never here); returns the
    payment method id. Attaching the same token twice returns the existing method."""
    if not token or len(token) > 100:
        raise InvalidFieldError("token", "must be the provider's payment method token")
    try:
        card = provider.describe_card(token)
    except ProviderError as exc:
        if exc.status == 404:
            raise NotFoundError("payment method", "with this token at the provider", field="token") from None
        raise
    for _ in range(2):
        try:
            return _attach_card(
                db, clock, provider.name, org_id, customer_id, card, holder, make_default, actor
            )
        except IntegrityError:
            continue  # attached at the same moment by another request: the second pass sees it
    raise InvalidFieldError("token", "this payment method is being attached elsewhere; try again")


def _attach_card(
    db: Database,
    clock: Clock,
    provider: str,
    org_id: int,
    customer_id: int,
    card: CardDetails,
    holder: str,
    make_default: bool,
    actor: str,
) -> int:
    now = clock.now()
    pm = t.payment_methods.c
    with db.write() as conn:
        customer = get_scoped(conn, t.customers, org_id, customer_id, field="customer_id", lock=True)
        # Any organisation's: one gateway serves them all, so a token is one customer's card wherever
        # it was attached (the same card tokenised again gets a new token). A unique constraint makes
        # this hold under concurrency too.
        existing = conn.execute(
            select(pm.id, pm.customer_id, pm.organization_id, pm.status).where(
                pm.provider == provider, pm.provider_token == card.token
            )
        ).first()
        if existing is not None and (
            existing.organization_id != org_id or existing.customer_id != customer_id
        ):
            raise InvalidFieldError("token", "this payment method belongs to another customer")
        if existing is not None and existing.status == "active":
            return int(existing.id)
        values = {
            "organization_id": org_id,
            "customer_id": customer_id,
            "type": "card",
            "network": card.brand,
            "provider": provider,
            "provider_token": card.token,
            "brand": card.brand,
            "last4": card.last4,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
            "fingerprint": card.fingerprint,
            "holder": holder[:200],
            "status": "active",
            "updated_at": now,
        }
        if existing is None:
            values["created_at"] = now
            method_id = int(
                conn.execute(insert(t.payment_methods).values(**values).returning(pm.id)).scalar_one()
            )
            before, action = None, "attached"
        else:  # detached earlier and attached again: the same record, in use again
            method_id = int(existing.id)
            conn.execute(update(t.payment_methods).where(pm.id == method_id).values(**values))
            before, action = {"status": "detached"}, "reattached"
        audit = [
            audit_row(
                org_id, "payment_method", method_id, action, actor, now, before, jsonable(values, METHOD_KEYS)
            )
        ]
        if make_default or customer["default_payment_method_id"] is None:
            _set_default(conn, org_id, customer, method_id, actor, now, audit)
        append_audit(conn, audit)
        payload = {"id": method_id, "customer_id": customer_id, **jsonable(values, METHOD_KEYS)}
        append_outbox(
            conn, [outbox_row(org_id, "payment_method.attached", "payment_method", method_id, now, payload)]
        )
    return method_id


def _set_default(
    conn: Connection,
    org_id: int,
    customer: dict[str, Any],
    method_id: int | None,
    actor: str,
    now: datetime,
    audit: list[dict[str, Any]],
) -> None:
    conn.execute(
        update(t.customers)
        .where(t.customers.c.id == customer["id"])
        .values(default_payment_method_id=method_id, updated_at=now)
    )
    audit.append(
        audit_row(
            org_id,
            "customer",
            customer["id"],
            "default_payment_method",
            actor,
            now,
            {"default_payment_method_id": customer["default_payment_method_id"]},
            {"default_payment_method_id": method_id},
        )
    )


def active_method(
    conn: Connection, org_id: int, method_id: int, customer_id: int, field: str
) -> dict[str, Any]:
    """A method of this customer that may still be charged, or an error on `field`."""
    method = get_scoped(conn, t.payment_methods, org_id, method_id, field=field)
    if method["customer_id"] != customer_id:
        raise InvalidFieldError(field, "the payment method belongs to another customer")
    if method["status"] != "active":
        raise InvalidFieldError(field, "the payment method is detached")
    return method


def set_default_payment_method(
    db: Database, clock: Clock, org_id: int, customer_id: int, method_id: int, *, actor: str = "api"
) -> None:
    now = clock.now()
    with db.write() as conn:
        customer = get_scoped(conn, t.customers, org_id, customer_id, lock=True)
        active_method(conn, org_id, method_id, customer_id, "payment_method_id")
        audit: list[dict[str, Any]] = []
        _set_default(conn, org_id, customer, method_id, actor, now, audit)
        append_audit(conn, audit)


def detach_payment_method(
    db: Database, clock: Clock, org_id: int, method_id: int, *, actor: str = "api"
) -> None:
    """Stop using a method: it stays on record (past attempts name it) but is never charged again."""
    now = clock.now()
    with db.write() as conn:
        method = get_scoped(conn, t.payment_methods, org_id, method_id, lock=True)
        if method["status"] == "detached":
            return
        conn.execute(
            update(t.payment_methods)
            .where(t.payment_methods.c.id == method_id)
            .values(status="detached", updated_at=now)
        )
        audit = [
            audit_row(
                org_id,
                "payment_method",
                method_id,
                "detached",
                actor,
                now,
                {"status": "active"},
                {"status": "detached"},
            )
        ]
        customer = get_scoped(conn, t.customers, org_id, method["customer_id"], lock=True)
        if customer["default_payment_method_id"] == method_id:
            _set_default(conn, org_id, customer, None, actor, now, audit)
        conn.execute(
            update(t.subscriptions)
            .where(
                t.subscriptions.c.organization_id == org_id, t.subscriptions.c.payment_method_id == method_id
            )
            .values(payment_method_id=None, updated_at=now)
        )
        append_audit(conn, audit)
        append_outbox(
            conn,
            [
                outbox_row(
                    org_id, "payment_method.detached", "payment_method", method_id, now, {"id": method_id}
                )
            ],
        )


def set_subscription_payment_method(
    db: Database,
    clock: Clock,
    org_id: int,
    subscription_id: int,
    method_id: int | None,
    *,
    actor: str = "api",
) -> None:
    """Charge this subscription's documents to `method_id` instead of the customer's default (None:
    back to the default)."""
    now = clock.now()
    with db.write() as conn:
        sub = get_scoped(conn, t.subscriptions, org_id, subscription_id, lock=True)
        if method_id is not None:
            active_method(conn, org_id, method_id, sub["customer_id"], "payment_method_id")
        conn.execute(
            update(t.subscriptions)
            .where(t.subscriptions.c.id == subscription_id)
            .values(payment_method_id=method_id, updated_at=now)
        )
        append_audit(
            conn,
            [
                audit_row(
                    org_id,
                    "subscription",
                    subscription_id,
                    "payment_method",
                    actor,
                    now,
                    {"payment_method_id": sub["payment_method_id"]},
                    {"payment_method_id": method_id},
                )
            ],
        )


def resolve_method(conn: Connection, doc: dict[str, Any], method_id: int | None) -> dict[str, Any] | None:
    """The method a charge uses: the given one, else the subscription's, else the customer's
    default (a detached one is skipped); None when there is none."""
    org_id = doc["organization_id"]
    if method_id is not None:
        return active_method(conn, org_id, method_id, doc["customer_id"], "payment_method_id")
    candidates: list[int] = []
    if doc["subscription_id"] is not None:
        sub_method = conn.execute(
            select(t.subscriptions.c.payment_method_id).where(t.subscriptions.c.id == doc["subscription_id"])
        ).scalar_one_or_none()
        if sub_method is not None:
            candidates.append(sub_method)
    default = conn.execute(
        select(t.customers.c.default_payment_method_id).where(t.customers.c.id == doc["customer_id"])
    ).scalar_one()
    if default is not None:
        candidates.append(default)
    for candidate in candidates:
        row = (
            conn.execute(
                select(t.payment_methods).where(
                    t.payment_methods.c.id == candidate,
                    t.payment_methods.c.organization_id == org_id,
                    t.payment_methods.c.status == "active",
                )
            )
            .mappings()
            .one_or_none()
        )
        if row is not None:
            return dict(row)
    return None
