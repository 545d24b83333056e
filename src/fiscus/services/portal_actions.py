"""What a signed-in customer may do in the portal, each through the same use case the API calls, with
the customer as the audit actor. This module adds only the portal's own rules: the object must be the
session's customer's (anything else is "not found", whoever's it is), and plan, quantity and
cancellation changes must be allowed by the organisation's portal settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Connection, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.context import load_customers, load_org
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.errors import DomainError, InvalidFieldError, NotFoundError
from fiscus.domain.money import Currency, currency
from fiscus.services import customers as customer_svc
from fiscus.services.billing_run import _bill_one, _billing_inputs
from fiscus.services.discount_billing import apply_discounts
from fiscus.services.payments.methods import detach_payment_method, set_default_payment_method
from fiscus.services.portal import PortalSession
from fiscus.services.portal_settings import PortalSettings, portal_settings
from fiscus.services.subscriptions import (
    ItemSpec,
    ProrationPreview,
    cancel_subscription,
    change_subscription,
)

MAX_REASON: Final = 500
CANCEL_REASONS: Final = ("too_expensive", "missing_features", "switched_service", "unused", "other")
"""Stripe's portal offers a similar short list; `other` takes the customer's own words."""


class PortalActionNotAllowedError(DomainError):
    """The organisation's portal settings do not let customers do this."""

    code = "not_allowed"
    title = "Not allowed in the portal"


# --- ownership ---------------------------------------------------------------------------------------


def owned(conn: Connection, session: PortalSession, table: Any, ident: int, entity: str) -> dict[str, Any]:
    """A row of the session's customer, or NotFoundError (another customer's or organisation's too)."""
    row = (
        conn.execute(
            select(table).where(
                table.c.id == ident,
                table.c.organization_id == session.organization_id,
                table.c.customer_id == session.customer_id,
            )
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise NotFoundError(entity, ident)
    return dict(row)


# --- subscriptions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NextInvoice:
    """The document the next billing run will issue for a subscription (not written anywhere)."""

    period_start: datetime | None
    period_end: datetime | None
    currency: Currency
    subtotal_minor: int
    tax_minor: int
    total_minor: int


def next_invoice(
    db: Database, session: PortalSession, subscription_id: int, *, now: datetime | None = None
) -> NextInvoice | None:
    """What the subscription's next period will be billed, by the billing run's own code; None when
    no period follows (cancelled at its end, or over). With `now`, the discounts and promotional credit
    in force come off it as the run would take them (nothing written)."""
    with db.read() as conn:
        sub = owned(conn, session, t.subscriptions, subscription_id, "subscription")
        if sub["status"] not in ("trialing", "active", "past_due"):
            return None
        items, pending, prices = _billing_inputs(conn, session.organization_id, [subscription_id])
        org = load_org(conn, session.organization_id)
        customer = load_customers(conn, session.organization_id, [session.customer_id])[session.customer_id]
        try:
            docs, _change, _held = _bill_one(
                sub,
                org,
                customer,
                items[subscription_id],
                pending[subscription_id],
                prices,
                sub["next_period_start"],
            )
        except DomainError:
            return None
        if docs and now is not None:
            apply_discounts(conn, docs[:1], now, record=False)  # issue 17: a redeemed code shows here
    if not docs:
        return None
    doc = docs[0]
    c = doc.computed
    return NextInvoice(
        doc.period.start if doc.period else None,
        doc.period.end if doc.period else None,
        c.currency,
        c.subtotal_minor,
        c.tax_minor,
        c.total_minor,
    )


def _single_item(conn: Connection, subscription_id: int) -> tuple[int, Decimal]:
    si = t.subscription_items.c
    rows = conn.execute(
        select(si.price_id, si.quantity).where(si.subscription_id == subscription_id).order_by(si.id)
    ).all()
    if len(rows) != 1:
        raise PortalActionNotAllowedError("a subscription of several items is changed by the seller")
    return int(rows[0].price_id), Decimal(rows[0].quantity)


def _check_change(
    settings: PortalSettings, current: tuple[int, Decimal], price_id: int, quantity: Decimal
) -> None:
    if price_id != current[0]:
        if not settings.allow_plan_change:
            raise PortalActionNotAllowedError("changing plan is not offered in this portal")
        if price_id not in settings.plans:
            raise InvalidFieldError("price_id", "this plan is not offered")
    if quantity != current[1] and not settings.allow_quantity_change:
        raise PortalActionNotAllowedError("changing the quantity is not offered in this portal")


def parse_quantity(raw: str) -> Decimal:
    """A quantity typed in the portal: a whole number from 1 to 10,000."""
    text = (raw or "").strip()
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise InvalidFieldError("quantity", "must be a whole number from 1 to 10000")
    return Decimal(int(text))


def change_plan(
    db: Database,
    clock: Clock,
    session: PortalSession,
    subscription_id: int,
    price_id: int,
    quantity: Decimal,
    *,
    preview: bool,
) -> ProrationPreview:
    """Preview (nothing written) or make a plan/quantity change, if the portal allows it."""
    with db.read() as conn:
        owned(conn, session, t.subscriptions, subscription_id, "subscription")
        current = _single_item(conn, subscription_id)
        _check_change(portal_settings(conn, session.organization_id), current, price_id, quantity)
    return change_subscription(
        db,
        clock,
        session.organization_id,
        subscription_id,
        [ItemSpec(price_id, quantity)],
        preview=preview,
        actor=session.actor,
    )


def cancel_at_period_end(
    db: Database, clock: Clock, session: PortalSession, subscription_id: int, reason: str, comment: str = ""
) -> None:
    """Cancel at the end of the current period, with the customer's reason, if the portal allows it."""
    if reason not in CANCEL_REASONS:
        raise InvalidFieldError("reason", "choose a reason")
    comment = (comment or "").strip()
    if len(comment) > MAX_REASON:
        raise InvalidFieldError("comment", f"must be at most {MAX_REASON} characters")
    with db.read() as conn:
        owned(conn, session, t.subscriptions, subscription_id, "subscription")
        if not portal_settings(conn, session.organization_id).allow_cancel:
            raise PortalActionNotAllowedError("cancelling is not offered in this portal")
    text = reason if not comment else f"{reason}: {comment}"
    cancel_subscription(
        db,
        clock,
        session.organization_id,
        subscription_id,
        at_period_end=True,
        actor=session.actor,
        reason=text,
    )


# --- payment methods and billing details -------------------------------------------------------------


def _owned_method(db: Database, session: PortalSession, method_id: int) -> None:
    with db.read() as conn:
        method = owned(conn, session, t.payment_methods, method_id, "payment_method")
    if method["status"] != "active":
        raise NotFoundError("payment_method", method_id)


def make_default_card(db: Database, clock: Clock, session: PortalSession, method_id: int) -> None:
    _owned_method(db, session, method_id)
    set_default_payment_method(
        db, clock, session.organization_id, session.customer_id, method_id, actor=session.actor
    )


def remove_card(db: Database, clock: Clock, session: PortalSession, method_id: int) -> None:
    _owned_method(db, session, method_id)
    detach_payment_method(db, clock, session.organization_id, method_id, actor=session.actor)


def update_billing_details(
    db: Database, clock: Clock, session: PortalSession, fields: dict[str, str]
) -> None:
    """Name, email, VAT ID and address for the next documents (issued ones keep theirs), checked by
    the customers use case as for the API; an empty VAT ID removes it."""
    patch = customer_svc.CustomerPatch(
        name=fields.get("name"),
        email=fields.get("email"),
        vat_id=fields.get("vat_id"),
        address_line1=fields.get("address_line1"),
        address_line2=fields.get("address_line2"),
        city=fields.get("city"),
        postal_code=fields.get("postal_code"),
    )
    customer_svc.update_customer(
        db, clock, session.organization_id, session.customer_id, patch, actor=session.actor
    )


def customer_currency(db: Database, session: PortalSession) -> Currency:
    with db.read() as conn:
        code = conn.execute(
            select(t.customers.c.currency).where(t.customers.c.id == session.customer_id)
        ).scalar_one()
    return currency(str(code))
