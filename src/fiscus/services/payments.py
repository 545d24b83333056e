"""Collecting money for documents: payment methods, attempts, captures, refunds, retries, settlement.

A provider call is never made inside a database transaction. Each money move is three steps:
(1) one transaction writes the intent (an attempt, capture or refund row, `pending`, with the
idempotency key the provider will get), (2) the provider is called with that key, (3) one transaction
settles the row from the provider's answer. A crash or timeout between (1) and (3) leaves the row
`pending`/`unknown`; `settle_unknown` asks the provider by key later, so nothing is charged twice and
nothing is marked paid without a capture. At most one unsettled attempt exists per document (a partial
unique index), so two processes can never charge one document at once.

`apply_charge_snapshot` is the one rule that moves Fiscus's records to what the provider says; the call's
own answer, a lookup by key and an inbound webhook all go through it, in any order.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import append_audit, append_outbox, audit_row, outbox_row
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.credit_notes import CreditDisposition, CreditMode, CreditRequest
from fiscus.domain.documents import DocumentAction, DocumentStatus, DocumentType
from fiscus.domain.errors import FieldConflictError, InvalidFieldError, InvalidStateError, NotFoundError
from fiscus.domain.money import currency, from_minor
from fiscus.domain.payments import (
    IN_FLIGHT,
    UNSETTLED,
    AttemptStatus,
    CaptureMode,
    CardDetails,
    ChargeSnapshot,
    FinalAction,
    InboundEvent,
    OutcomeUnknown,
    PaymentProvider,
    ProviderError,
    ProviderUnreachable,
    RetryPolicy,
    Trigger,
    amount_due,
    attempt_status,
    check_capture,
    check_refund,
    is_hard_decline,
)
from fiscus.domain.subscriptions import SubscriptionStatus
from fiscus.services.common import get_scoped, jsonable

COLLECTABLE = frozenset({DocumentStatus.OPEN, DocumentStatus.UNCOLLECTIBLE})
UNREACHABLE_CODE = "provider_unreachable"
NOT_PROCESSED_CODE = "not_processed"
SETTLE_GRACE = timedelta(seconds=60)
"""How long after its call an unsettled attempt is left alone: past it, no call can still be in flight
(client timeouts are seconds), so a provider with no charge for the key never received it."""

METHOD_KEYS = ("type", "network", "brand", "last4", "exp_month", "exp_year", "status")
ATTEMPT_KEYS = ("status", "amount_minor", "authorized_minor", "provider_charge_id", "error_code")


# --- payment methods ---------------------------------------------------------------------------------


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


def _active_method(
    conn: Connection, org_id: int, method_id: int, customer_id: int, field: str
) -> dict[str, Any]:
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
        _active_method(conn, org_id, method_id, customer_id, "payment_method_id")
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
            _active_method(conn, org_id, method_id, sub["customer_id"], "payment_method_id")
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


# --- charging a document -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    attempt_id: int
    status: AttemptStatus
    error_code: str | None
    error_message: str | None
    document_id: int
    paid_document_id: int | None
    """The document the money paid: the invoice itself, or the invoice a paid proforma became."""


def _resolve_method(conn: Connection, doc: dict[str, Any], method_id: int | None) -> dict[str, Any] | None:
    org_id = doc["organization_id"]
    if method_id is not None:
        return _active_method(conn, org_id, method_id, doc["customer_id"], "payment_method_id")
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


def due_of(doc: dict[str, Any]) -> int:
    if DocumentStatus(doc["status"]) not in COLLECTABLE or doc["type"] == DocumentType.CREDIT_NOTE.value:
        return 0
    return amount_due(
        doc["total_minor"],
        doc["amount_paid_minor"],
        doc["amount_refunded_minor"],
        doc["amount_credited_minor"],
    )


def charge_document(
    db: Database,
    clock: Clock,
    provider: PaymentProvider,
    org_id: int,
    document_id: int,
    *,
    method_id: int | None = None,
    trigger: Trigger = Trigger.API,
    actor: str = "api",
) -> AttemptOutcome:
    """Charge what is due on an issued invoice or proforma to a payment method (the given one, else the
    subscription's, else the customer's default). Sale or authorisation per the organisation's setting."""
    now = clock.now()
    key = f"fiscus_att_{secrets.token_urlsafe(18)}"
    with db.write() as conn:
        doc = get_scoped(conn, t.documents, org_id, document_id, lock=True)
        if doc["type"] == DocumentType.CREDIT_NOTE.value:
            raise InvalidStateError("a credit note is not charged", type=doc["type"])
        if DocumentStatus(doc["status"]) not in COLLECTABLE:
            raise InvalidStateError(
                f"a {doc['type']} in status '{doc['status']}' cannot be charged", status=doc["status"]
            )
        due = due_of(doc)
        if due <= 0:
            raise InvalidStateError("nothing is due on this document", status=doc["status"])
        method = _resolve_method(conn, doc, method_id)
        if method is None:
            raise FieldConflictError("payment_method_id", "the customer has no active payment method")
        capture_mode = conn.execute(
            select(t.organizations.c.capture_mode).where(t.organizations.c.id == org_id)
        ).scalar_one()
        values = {
            "organization_id": org_id,
            "document_id": document_id,
            "customer_id": doc["customer_id"],
            "payment_method_id": method["id"],
            "currency": doc["currency"],
            "amount_minor": due,
            "capture_mode": capture_mode,
            "status": AttemptStatus.PENDING.value,
            "idempotency_key": key,
            "provider": method["provider"],
            "trigger": trigger.value,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with conn.begin_nested():
                attempt_id = int(
                    conn.execute(
                        insert(t.payment_attempts).values(**values).returning(t.payment_attempts.c.id)
                    ).scalar_one()
                )
        except IntegrityError:
            raise InvalidStateError(
                "a payment for this document is already in progress; try again once it has settled",
                status=doc["status"],
            ) from None
        planned = {"next_payment_attempt_at": None} if trigger in (Trigger.AUTOMATIC, Trigger.RETRY) else {}
        _touch_document(conn, document_id, now, **planned)
        append_audit(
            conn,
            [
                audit_row(
                    org_id,
                    "payment_attempt",
                    attempt_id,
                    "started",
                    actor,
                    now,
                    None,
                    jsonable(values, ATTEMPT_KEYS),
                )
            ],
        )
    token = method["provider_token"]
    try:
        snapshot = provider.charge(
            token=token,
            amount_minor=due,
            currency=doc["currency"],
            capture=capture_mode == CaptureMode.SALE.value,
            reference=key,
            key=key,
        )
    except OutcomeUnknown as exc:
        return _mark_unknown(db, clock, attempt_id, str(exc), actor)
    except ProviderUnreachable as exc:
        return _fail_unsent(db, clock, attempt_id, UNREACHABLE_CODE, str(exc), actor)
    except ProviderError as exc:
        return _fail_unsent(db, clock, attempt_id, exc.code, exc.message, actor)
    with db.write() as conn:
        attempt = _locked_attempt(conn, attempt_id)
        apply_charge_snapshot(conn, clock, attempt, snapshot, actor)
        return _outcome(conn, attempt_id)


def _locked_attempt(conn: Connection, attempt_id: int) -> dict[str, Any]:
    row = (
        conn.execute(
            select(t.payment_attempts).where(t.payment_attempts.c.id == attempt_id).with_for_update()
        )
        .mappings()
        .one()
    )
    return dict(row)


def _outcome(conn: Connection, attempt_id: int) -> AttemptOutcome:
    a = conn.execute(select(t.payment_attempts).where(t.payment_attempts.c.id == attempt_id)).mappings().one()
    paid_doc = conn.execute(
        select(t.payment_captures.c.document_id).where(t.payment_captures.c.attempt_id == attempt_id).limit(1)
    ).scalar_one_or_none()
    return AttemptOutcome(
        a["id"], AttemptStatus(a["status"]), a["error_code"], a["error_message"], a["document_id"], paid_doc
    )


def _mark_unknown(db: Database, clock: Clock, attempt_id: int, why: str, actor: str) -> AttemptOutcome:
    now = clock.now()
    with db.write() as conn:
        attempt = _locked_attempt(conn, attempt_id)
        if AttemptStatus(attempt["status"]) is AttemptStatus.PENDING:
            conn.execute(
                update(t.payment_attempts)
                .where(t.payment_attempts.c.id == attempt_id)
                .values(status=AttemptStatus.UNKNOWN.value, error_message=why[:500], updated_at=now)
            )
            _touch_document(conn, attempt["document_id"], now)
            append_audit(
                conn,
                [
                    audit_row(
                        attempt["organization_id"],
                        "payment_attempt",
                        attempt_id,
                        "unknown",
                        actor,
                        now,
                        {"status": "pending"},
                        {"status": "unknown", "why": why[:200]},
                    )
                ],
            )
        return _outcome(conn, attempt_id)


def _fail_unsent(
    db: Database, clock: Clock, attempt_id: int, code: str, message: str, actor: str
) -> AttemptOutcome:
    """The provider refused the call or never got it: no money moved."""
    with db.write() as conn:
        attempt = _locked_attempt(conn, attempt_id)
        if AttemptStatus(attempt["status"]) in UNSETTLED:
            _settle_failed(conn, clock.now(), attempt, code, message, actor)
        return _outcome(conn, attempt_id)


def _touch_document(conn: Connection, document_id: int, now: datetime, **values: Any) -> None:
    conn.execute(update(t.documents).where(t.documents.c.id == document_id).values(updated_at=now, **values))


# --- settlement: the one place records follow the provider ----------------------------------------


def apply_charge_snapshot(
    conn: Connection, clock: Clock, attempt: dict[str, Any], snapshot: ChargeSnapshot, actor: str
) -> None:
    """Bring one (locked) attempt and its document in line with what the provider says about the charge.
    Idempotent and order-independent: amounts only grow, and only the growth is recorded."""
    now = clock.now()
    current = AttemptStatus(attempt["status"])
    target = attempt_status(snapshot)
    attempt_id = attempt["id"]
    org_id = attempt["organization_id"]
    if attempt["provider_charge_id"] is None:
        conn.execute(
            update(t.payment_attempts)
            .where(t.payment_attempts.c.id == attempt_id)
            .values(provider_charge_id=snapshot.charge_id, updated_at=now)
        )
    elif attempt["provider_charge_id"] != snapshot.charge_id:
        return
    if target is AttemptStatus.FAILED:
        if current in UNSETTLED:
            _settle_failed(
                conn, now, attempt, snapshot.decline_code or "declined", snapshot.message or "", actor
            )
        return
    if current in UNSETTLED or (
        current is AttemptStatus.AUTHORIZED and target is not AttemptStatus.AUTHORIZED
    ):
        authorized = min(snapshot.amount_minor, attempt["amount_minor"])
        conn.execute(
            update(t.payment_attempts)
            .where(t.payment_attempts.c.id == attempt_id)
            .values(status=target.value, authorized_minor=authorized, settled_at=now, updated_at=now)
        )
        append_audit(
            conn,
            [
                audit_row(
                    org_id,
                    "payment_attempt",
                    attempt_id,
                    target.value,
                    actor,
                    now,
                    {"status": current.value},
                    {"status": target.value, "provider_charge_id": snapshot.charge_id},
                )
            ],
        )
        _touch_document(conn, attempt["document_id"], now)
        attempt = {**attempt, "status": target.value, "authorized_minor": authorized}
        if target is AttemptStatus.AUTHORIZED:
            _event(conn, attempt, "payment.authorized", now)
    _follow_captures(conn, clock, attempt, snapshot.captured_minor, actor, now)
    _follow_refunds(conn, clock, attempt, snapshot, actor, now)


def _sum(conn: Connection, table: Any, attempt_id: int, statuses: tuple[str, ...]) -> int:
    return int(
        conn.execute(
            select(func.coalesce(func.sum(table.c.amount_minor), 0)).where(
                table.c.attempt_id == attempt_id, table.c.status.in_(statuses)
            )
        ).scalar_one()
    )


def _follow_captures(
    conn: Connection, clock: Clock, attempt: dict[str, Any], captured: int, actor: str, now: datetime
) -> None:
    pc = t.payment_captures.c
    recorded = _sum(conn, t.payment_captures, attempt["id"], ("succeeded",))
    if captured <= recorded:
        return
    pending = (
        conn.execute(select(t.payment_captures).where(pc.attempt_id == attempt["id"], pc.status == "pending"))
        .mappings()
        .first()
    )
    delta = captured - recorded
    target_doc = _payable_document(conn, clock, attempt, actor, now)
    if pending is not None:
        conn.execute(
            update(t.payment_captures)
            .where(pc.id == pending["id"])
            .values(status="succeeded", amount_minor=delta, document_id=target_doc["id"], settled_at=now)
        )
    else:
        conn.execute(
            insert(t.payment_captures).values(
                organization_id=attempt["organization_id"],
                attempt_id=attempt["id"],
                document_id=target_doc["id"],
                amount_minor=delta,
                status="succeeded",
                idempotency_key=f"{attempt['idempotency_key']}:capture:{recorded}",
                created_at=now,
                settled_at=now,
            )
        )
    if attempt["status"] != AttemptStatus.SUCCEEDED.value:
        conn.execute(
            update(t.payment_attempts)
            .where(t.payment_attempts.c.id == attempt["id"])
            .values(status=AttemptStatus.SUCCEEDED.value, settled_at=now, updated_at=now)
        )
    _event(conn, attempt, "payment.succeeded", now, amount_minor=delta)
    record_payment(conn, clock, target_doc, delta, actor, now)


def _payable_document(
    conn: Connection, clock: Clock, attempt: dict[str, Any], actor: str, now: datetime
) -> dict[str, Any]:
    """The document money for this attempt pays: the attempt's invoice; for a proforma, the final invoice
    it converts into on its first payment (with its own number, linked to the proforma and its orders)."""
    from fiscus.services.documents import convert_within

    doc = dict(
        conn.execute(select(t.documents).where(t.documents.c.id == attempt["document_id"]).with_for_update())
        .mappings()
        .one()
    )
    if doc["type"] != DocumentType.PROFORMA.value:
        return doc
    invoice_id = conn.execute(
        select(t.documents.c.id).where(t.documents.c.converted_from_id == doc["id"])
    ).scalar_one_or_none()
    if invoice_id is None:
        invoice_id = convert_within(conn, clock, doc, actor, now)
    return dict(
        conn.execute(select(t.documents).where(t.documents.c.id == invoice_id).with_for_update())
        .mappings()
        .one()
    )


def record_payment(
    conn: Connection, clock: Clock, doc: dict[str, Any], amount_minor: int, actor: str, now: datetime
) -> None:
    """Money received for a (locked) document: raise what is paid; paid in full once what is kept and
    credited covers the total. A partial payment leaves it open with the remainder due."""
    from fiscus.services.documents import apply_document_action

    paid = doc["amount_paid_minor"] + amount_minor
    status = DocumentStatus(doc["status"])
    due = amount_due(doc["total_minor"], paid, doc["amount_refunded_minor"], doc["amount_credited_minor"])
    if due == 0 and status in COLLECTABLE:
        apply_document_action(
            conn,
            doc,
            DocumentAction.PAY,
            {"amount_paid_minor": paid, "paid_at": now, "next_payment_attempt_at": None},
            actor,
            now,
        )
        _subscription_recovered(conn, doc, actor, now)
        return
    _touch_document(conn, doc["id"], now, amount_paid_minor=paid)
    append_audit(
        conn,
        [
            audit_row(
                doc["organization_id"],
                "document",
                doc["id"],
                "payment_recorded",
                actor,
                now,
                {"amount_paid_minor": doc["amount_paid_minor"]},
                {"amount_paid_minor": paid, "amount_due_minor": due},
            )
        ],
    )


def refuse_while_card_payment_in_flight(conn: Connection, doc: dict[str, Any], why: str) -> None:
    """A charge that is pending, unknown or authorised may have moved (or holds) the customer's money:
    until it settles, nothing else may decide what the document is owed."""
    pa = t.payment_attempts.c
    in_flight = conn.execute(
        select(pa.status).where(pa.document_id == doc["id"], pa.status.in_([s.value for s in IN_FLIGHT]))
    ).scalar_one_or_none()
    if in_flight is not None:
        raise InvalidStateError(
            f"a card payment for this document is {in_flight} ({why}); wait until it has settled"
            + (" or void the authorisation" if in_flight == AttemptStatus.AUTHORIZED.value else ""),
            status=doc["status"],
        )


def record_external_payment(
    conn: Connection, clock: Clock, doc: dict[str, Any], actor: str, now: datetime
) -> None:
    """A payment received outside Fiscus (bank transfer, cash) for everything due: recorded as an
    external attempt with its capture, so paid = Σ captures holds for every document."""
    due = due_of(doc)
    if due <= 0:
        raise InvalidStateError("nothing is due on this document", status=doc["status"])
    refuse_while_card_payment_in_flight(conn, doc, "recording a payment as well would collect twice")
    key = f"fiscus_ext_{secrets.token_urlsafe(18)}"
    attempt_id = int(
        conn.execute(
            insert(t.payment_attempts)
            .values(
                organization_id=doc["organization_id"],
                document_id=doc["id"],
                customer_id=doc["customer_id"],
                payment_method_id=None,
                currency=doc["currency"],
                amount_minor=due,
                capture_mode=CaptureMode.SALE.value,
                status=AttemptStatus.SUCCEEDED.value,
                idempotency_key=key,
                provider="external",
                authorized_minor=due,
                trigger=Trigger.MANUAL.value,
                created_at=now,
                settled_at=now,
                updated_at=now,
            )
            .returning(t.payment_attempts.c.id)
        ).scalar_one()
    )
    conn.execute(
        insert(t.payment_captures).values(
            organization_id=doc["organization_id"],
            attempt_id=attempt_id,
            document_id=doc["id"],
            amount_minor=due,
            status="succeeded",
            idempotency_key=f"{key}:capture",
            created_at=now,
            settled_at=now,
        )
    )
    record_payment(conn, clock, doc, due, actor, now)


def _follow_refunds(
    conn: Connection,
    clock: Clock,
    attempt: dict[str, Any],
    snapshot: ChargeSnapshot,
    actor: str,
    now: datetime,
) -> None:
    """Refunds the provider reports that Fiscus has not recorded (made in the provider's dashboard) are
    recorded, each with its credit note, like one Fiscus made. Refunds the provider lists are matched by
    id, or by the idempotency key of one of Fiscus's own still pending, so reports in any order record
    the same refunds; what the list leaves out of the total (a provider that lists none, or only the
    latest) is recorded as one refund."""
    recorded = _sum(conn, t.payment_refunds, attempt["id"], ("succeeded", "pending"))
    if snapshot.refunded_minor <= recorded and not snapshot.refunds:
        return
    doc_id = conn.execute(
        select(t.payment_captures.c.document_id)
        .where(t.payment_captures.c.attempt_id == attempt["id"])
        .limit(1)
    ).scalar_one_or_none()
    if doc_id is None:
        return
    if snapshot.refunds:
        _follow_listed_refunds(conn, clock, attempt, doc_id, snapshot, actor, now)
        recorded = _sum(conn, t.payment_refunds, attempt["id"], ("succeeded", "pending"))
    if snapshot.refunded_minor > recorded:
        key = f"{attempt['idempotency_key']}:external-refund:{recorded}"
        amount = snapshot.refunded_minor - recorded
        _record_provider_refund(conn, clock, attempt, doc_id, amount, None, key, actor)


def _follow_listed_refunds(
    conn: Connection,
    clock: Clock,
    attempt: dict[str, Any],
    doc_id: int,
    snapshot: ChargeSnapshot,
    actor: str,
    now: datetime,
) -> None:
    pr = t.payment_refunds.c
    lines = snapshot.refunds or ()
    ours = conn.execute(
        select(pr.id, pr.status, pr.amount_minor, pr.idempotency_key, pr.provider_refund_id).where(
            pr.attempt_id == attempt["id"]
        )
    ).all()
    by_id = {r.provider_refund_id: r for r in ours if r.provider_refund_id}
    by_key = {r.idempotency_key: r for r in ours}
    fresh = []
    for line in lines:
        mine = by_id.get(line.refund_id) or (by_key.get(line.reference) if line.reference else None)
        if mine is None:
            fresh.append(line)
        elif mine.status == "pending":
            _settle_refund(conn, clock, mine.id, line.refund_id, actor, now)
    listed = {line.refund_id for line in lines}
    references = {line.reference for line in lines}
    unlisted = sum(
        r.amount_minor
        for r in ours
        if r.status == "succeeded"
        and r.provider_refund_id not in listed
        and r.idempotency_key not in references
    )
    known = sum(line.amount_minor for line in lines if line not in fresh)
    room = snapshot.refunded_minor - known - unlisted  # refunds once recorded from a total count too
    for line in fresh:
        if line.amount_minor > room:
            break
        key = f"{attempt['idempotency_key']}:refund:{line.refund_id}"
        _record_provider_refund(conn, clock, attempt, doc_id, line.amount_minor, line.refund_id, key, actor)
        room -= line.amount_minor


def _record_provider_refund(
    conn: Connection,
    clock: Clock,
    attempt: dict[str, Any],
    doc_id: int,
    amount_minor: int,
    provider_refund_id: str | None,
    key: str,
    actor: str,
) -> None:
    refund_id = int(
        conn.execute(
            insert(t.payment_refunds)
            .values(
                organization_id=attempt["organization_id"],
                attempt_id=attempt["id"],
                document_id=doc_id,
                amount_minor=amount_minor,
                status="pending",
                idempotency_key=key,
                reason="refunded at the payment provider",
                created_at=clock.now(),
            )
            .returning(t.payment_refunds.c.id)
        ).scalar_one()
    )
    _settle_refund(conn, clock, refund_id, provider_refund_id, actor, clock.now())


def _settle_failed(
    conn: Connection, now: datetime, attempt: dict[str, Any], code: str, message: str, actor: str
) -> None:
    """A failed attempt: record the error, plan the next retry (never after a hard decline), and after
    the last one apply the organisation's final action."""
    hard = is_hard_decline(code)
    conn.execute(
        update(t.payment_attempts)
        .where(t.payment_attempts.c.id == attempt["id"])
        .values(
            status=AttemptStatus.FAILED.value,
            error_code=code[:64],
            error_message=message[:500],
            hard_decline=hard,
            settled_at=now,
            updated_at=now,
        )
    )
    org_id = attempt["organization_id"]
    append_audit(
        conn,
        [
            audit_row(
                org_id,
                "payment_attempt",
                attempt["id"],
                "failed",
                actor,
                now,
                {"status": attempt["status"]},
                {"status": "failed", "error_code": code, "hard_decline": hard},
            )
        ],
    )
    _event(conn, attempt, "payment.failed", now, error_code=code, error_message=message)
    doc = dict(
        conn.execute(select(t.documents).where(t.documents.c.id == attempt["document_id"]).with_for_update())
        .mappings()
        .one()
    )
    values: dict[str, Any] = {}
    final = False
    if Trigger(attempt["trigger"]) in (Trigger.AUTOMATIC, Trigger.RETRY):
        org = conn.execute(
            select(t.organizations.c.retry_days, t.organizations.c.retry_final_action).where(
                t.organizations.c.id == org_id
            )
        ).one()
        policy = RetryPolicy(tuple(org.retry_days), FinalAction(org.retry_final_action))
        pa = t.payment_attempts.c
        failures = conn.execute(
            select(func.count(), func.min(pa.created_at)).where(
                pa.document_id == doc["id"],
                pa.status == AttemptStatus.FAILED.value,
                pa.trigger.in_((Trigger.AUTOMATIC.value, Trigger.RETRY.value)),
            )
        ).one()
        next_at = policy.next_attempt_at(failures[1], int(failures[0]), code) if due_of(doc) > 0 else None
        values["next_payment_attempt_at"] = next_at
        final = next_at is None
        payload = {
            "id": doc["id"],
            "number": doc["number"],
            "attempt_id": attempt["id"],
            "error_code": code,
            "hard_decline": hard,
            "attempt_count": int(failures[0]),
            "next_payment_attempt_at": next_at.isoformat() if next_at else None,
        }
        append_outbox(
            conn, [outbox_row(org_id, f"{doc['type']}.payment_failed", "document", doc["id"], now, payload)]
        )
        _subscription_past_due(conn, doc, actor, now)
        if final:
            _final_action(conn, doc, policy.final_action, actor, now)
    _touch_document(conn, doc["id"], now, **values)


def _final_action(
    conn: Connection, doc: dict[str, Any], action: FinalAction, actor: str, now: datetime
) -> None:
    from fiscus.services.documents import apply_document_action

    if (
        action is FinalAction.MARK_UNCOLLECTIBLE
        and doc["type"] == DocumentType.INVOICE.value
        and doc["status"] == DocumentStatus.OPEN.value
    ):
        apply_document_action(conn, doc, DocumentAction.MARK_UNCOLLECTIBLE, {}, actor, now)
    elif action is FinalAction.CANCEL_SUBSCRIPTION and doc["subscription_id"] is not None:
        sub = (
            conn.execute(
                select(t.subscriptions)
                .where(t.subscriptions.c.id == doc["subscription_id"])
                .with_for_update()
            )
            .mappings()
            .one()
        )
        if sub["status"] in (
            SubscriptionStatus.ACTIVE.value,
            SubscriptionStatus.PAST_DUE.value,
            SubscriptionStatus.TRIALING.value,
        ):
            _subscription_status(
                conn, dict(sub), SubscriptionStatus.CANCELED, actor, now, canceled_at=now, ended_at=now
            )


def _subscription_status(
    conn: Connection, sub: dict[str, Any], status: SubscriptionStatus, actor: str, now: datetime, **extra: Any
) -> None:
    values = {"status": status.value, "updated_at": now, **extra}
    conn.execute(update(t.subscriptions).where(t.subscriptions.c.id == sub["id"]).values(**values))
    org_id = sub["organization_id"]
    append_audit(
        conn,
        [
            audit_row(
                org_id,
                "subscription",
                sub["id"],
                status.value,
                actor,
                now,
                {"status": sub["status"]},
                {"status": status.value, "reason": "payment"},
            )
        ],
    )
    append_outbox(
        conn,
        [
            outbox_row(
                org_id,
                f"subscription.{status.value}",
                "subscription",
                sub["id"],
                now,
                {"id": sub["id"], "status": status.value},
            )
        ],
    )


def _locked_subscription(conn: Connection, doc: dict[str, Any]) -> dict[str, Any] | None:
    """The subscription a document bills, locked; None for a document of orders."""
    if doc["subscription_id"] is None:
        return None
    return dict(
        conn.execute(
            select(t.subscriptions).where(t.subscriptions.c.id == doc["subscription_id"]).with_for_update()
        )
        .mappings()
        .one()
    )


def _subscription_past_due(conn: Connection, doc: dict[str, Any], actor: str, now: datetime) -> None:
    sub = _locked_subscription(conn, doc)
    if sub is not None and sub["status"] == SubscriptionStatus.ACTIVE.value:
        _subscription_status(conn, sub, SubscriptionStatus.PAST_DUE, actor, now)


def _subscription_recovered(conn: Connection, doc: dict[str, Any], actor: str, now: datetime) -> None:
    """A past-due subscription is active again once none of its documents is still owed."""
    sub = _locked_subscription(conn, doc)
    if sub is None or sub["status"] != SubscriptionStatus.PAST_DUE.value:
        return
    d, pa = t.documents.c, t.payment_attempts.c
    failed_docs = select(pa.document_id).where(pa.status == AttemptStatus.FAILED.value)
    still_owed = conn.execute(
        select(func.count()).where(
            d.subscription_id == sub["id"],
            d.id != doc["id"],
            d.status == DocumentStatus.OPEN.value,
            d.type.in_((DocumentType.INVOICE.value, DocumentType.PROFORMA.value)),
            d.id.in_(failed_docs),
        )
    ).scalar_one()
    if not still_owed:
        _subscription_status(conn, sub, SubscriptionStatus.ACTIVE, actor, now)


def _event(conn: Connection, attempt: dict[str, Any], type_: str, now: datetime, **extra: Any) -> None:
    cur = currency(attempt["currency"])
    payload = {
        "id": attempt["id"],
        "document_id": attempt["document_id"],
        "customer_id": attempt["customer_id"],
        "payment_method_id": attempt["payment_method_id"],
        "currency": cur.code,
        "amount": str(from_minor(extra.pop("amount_minor", attempt["amount_minor"]), cur)),
        "status": attempt["status"],
        **extra,
    }
    append_outbox(
        conn, [outbox_row(attempt["organization_id"], type_, "payment_attempt", attempt["id"], now, payload)]
    )


# --- captures and voids of authorisations -----------------------------------------------------------


def capture_payment(
    db: Database,
    clock: Clock,
    provider: PaymentProvider,
    org_id: int,
    attempt_id: int,
    *,
    amount_minor: int | None = None,
    actor: str = "api",
) -> AttemptOutcome:
    """Capture an authorisation, fully or partly (once; the rest is released)."""
    now = clock.now()
    with db.write() as conn:
        attempt = get_scoped(conn, t.payment_attempts, org_id, attempt_id, lock=True)
        if attempt["status"] != AttemptStatus.AUTHORIZED.value:
            raise InvalidStateError(
                f"a payment in status '{attempt['status']}' cannot be captured", status=attempt["status"]
            )
        amount = check_capture(amount_minor, attempt["authorized_minor"])
        key = f"{attempt['idempotency_key']}:capture"
        existing = conn.execute(
            select(t.payment_captures.c.id).where(t.payment_captures.c.idempotency_key == key)
        ).scalar_one_or_none()
        if existing is None:
            conn.execute(
                insert(t.payment_captures).values(
                    organization_id=org_id,
                    attempt_id=attempt_id,
                    document_id=attempt["document_id"],
                    amount_minor=amount,
                    status="pending",
                    idempotency_key=key,
                    created_at=now,
                )
            )
        else:
            amount = conn.execute(
                select(t.payment_captures.c.amount_minor).where(t.payment_captures.c.id == existing)
            ).scalar_one()
    return _send_capture(db, clock, provider, attempt, key, amount, actor)


def _send_capture(
    db: Database,
    clock: Clock,
    provider: PaymentProvider,
    attempt: dict[str, Any],
    key: str,
    amount: int,
    actor: str,
) -> AttemptOutcome:
    try:
        snapshot = provider.capture(charge_id=attempt["provider_charge_id"], amount_minor=amount, key=key)
    except (OutcomeUnknown, ProviderUnreachable) as exc:
        raise OutcomeUnknown(
            f"the capture's outcome is not known yet ({exc}); it is settled automatically"
        ) from None
    except ProviderError as exc:
        with db.write() as conn:
            conn.execute(
                update(t.payment_captures)
                .where(t.payment_captures.c.idempotency_key == key, t.payment_captures.c.status == "pending")
                .values(status="failed", settled_at=clock.now())
            )
        raise InvalidStateError(
            f"the payment provider refused the capture: {exc.message}", status=attempt["status"]
        ) from None
    with db.write() as conn:
        locked = _locked_attempt(conn, attempt["id"])
        apply_charge_snapshot(conn, clock, locked, snapshot, actor)
        return _outcome(conn, attempt["id"])


def void_payment(
    db: Database, clock: Clock, provider: PaymentProvider, org_id: int, attempt_id: int, *, actor: str = "api"
) -> AttemptOutcome:
    """Release an authorisation that will not be captured."""
    with db.read() as conn:
        attempt = get_scoped(conn, t.payment_attempts, org_id, attempt_id)
    if attempt["status"] != AttemptStatus.AUTHORIZED.value:
        raise InvalidStateError(
            f"a payment in status '{attempt['status']}' cannot be voided", status=attempt["status"]
        )
    try:
        snapshot = provider.void(
            charge_id=attempt["provider_charge_id"], key=f"{attempt['idempotency_key']}:void"
        )
    except ProviderError as exc:
        raise InvalidStateError(
            f"the payment provider refused the void: {exc.message}", status=attempt["status"]
        ) from None
    with db.write() as conn:
        locked = _locked_attempt(conn, attempt_id)
        apply_charge_snapshot(conn, clock, locked, snapshot, actor)
        return _outcome(conn, attempt_id)


# --- refunds ------------------------------------------------------------------------------------------


def refund_payment(
    db: Database,
    clock: Clock,
    provider: PaymentProvider,
    org_id: int,
    document_id: int,
    *,
    amount_minor: int | None = None,
    reason: str = "",
    actor: str = "api",
) -> list[int]:
    """Give back money captured for a document (all that is refundable by default), newest capture
    first; any number of partial refunds up to what was captured. On a final invoice each refund goes
    with a credit note issued when the money has gone back. Returns the refund ids."""
    now = clock.now()
    reason = reason.strip()[:1000]
    planned: list[tuple[int, str, str, int]] = []
    with db.write() as conn:
        doc = get_scoped(conn, t.documents, org_id, document_id, lock=True)
        pc, pa = t.payment_captures.c, t.payment_attempts.c
        rows = conn.execute(
            select(pa.id, pa.idempotency_key, pa.provider_charge_id, pa.provider, func.sum(pc.amount_minor))
            .join(t.payment_captures, pc.attempt_id == pa.id)
            .where(pc.document_id == document_id, pc.status == "succeeded", pa.organization_id == org_id)
            .group_by(pa.id, pa.idempotency_key, pa.provider_charge_id, pa.provider)
            .order_by(pa.id.desc())
        ).all()
        refundable: list[tuple[int, str, str, int]] = []
        for attempt_id, key, charge_id, provider_name, captured in rows:
            if provider_name != provider.name:
                continue
            left = int(captured) - _sum(conn, t.payment_refunds, attempt_id, ("succeeded", "pending"))
            if left > 0:
                refundable.append((attempt_id, key, charge_id, left))
        available = sum(r[3] for r in refundable)
        if amount_minor is None:
            amount_minor = available
            if amount_minor == 0:
                raise InvalidStateError(
                    "nothing captured on this document is left to refund", status=doc["status"]
                )
        cur = currency(doc["currency"])
        if amount_minor > available:
            raise FieldConflictError(
                "amount",
                f"exceeds what can be refunded: {from_minor(available, cur)} {cur.code} "
                "captured and not yet refunded",
            )
        check_refund(amount_minor, available)
        remaining = amount_minor
        for attempt_id, key, charge_id, left in refundable:
            take = min(left, remaining)
            if take <= 0:
                break
            refund_key = f"{key}:refund:{secrets.token_urlsafe(9)}"
            refund_id = int(
                conn.execute(
                    insert(t.payment_refunds)
                    .values(
                        organization_id=org_id,
                        attempt_id=attempt_id,
                        document_id=document_id,
                        amount_minor=take,
                        status="pending",
                        idempotency_key=refund_key,
                        reason=reason,
                        created_at=now,
                    )
                    .returning(t.payment_refunds.c.id)
                ).scalar_one()
            )
            planned.append((refund_id, refund_key, charge_id, take))
            remaining -= take
        append_audit(
            conn,
            [
                audit_row(
                    org_id,
                    "document",
                    document_id,
                    "refund_requested",
                    actor,
                    now,
                    None,
                    {"amount_minor": amount_minor, "refund_ids": [p[0] for p in planned]},
                )
            ],
        )
    for refund_id, refund_key, charge_id, take in planned:
        send_refund(db, clock, provider, refund_id, refund_key, charge_id, take, actor)
    return [p[0] for p in planned]


def send_refund(
    db: Database,
    clock: Clock,
    provider: PaymentProvider,
    refund_id: int,
    key: str,
    charge_id: str,
    amount_minor: int,
    actor: str,
) -> None:
    """Send one recorded refund (again: the key makes a re-send harmless) and settle it."""
    try:
        result = provider.refund(charge_id=charge_id, amount_minor=amount_minor, key=key)
    except (OutcomeUnknown, ProviderUnreachable):
        return
    except ProviderError as exc:
        with db.write() as conn:
            conn.execute(
                update(t.payment_refunds)
                .where(t.payment_refunds.c.id == refund_id, t.payment_refunds.c.status == "pending")
                .values(status="failed", error_message=exc.message[:500], settled_at=clock.now())
            )
        raise InvalidFieldError("amount", f"the payment provider refused the refund: {exc.message}") from None
    with db.write() as conn:
        _settle_refund(conn, clock, refund_id, result.refund_id, actor, clock.now())


def _settle_refund(
    conn: Connection, clock: Clock, refund_id: int, provider_refund_id: str | None, actor: str, now: datetime
) -> None:
    from fiscus.services.credit_notes import credit_invoice

    refund = dict(
        conn.execute(select(t.payment_refunds).where(t.payment_refunds.c.id == refund_id).with_for_update())
        .mappings()
        .one()
    )
    if refund["status"] != "pending":
        return
    doc = dict(
        conn.execute(select(t.documents).where(t.documents.c.id == refund["document_id"]).with_for_update())
        .mappings()
        .one()
    )
    org_id = doc["organization_id"]
    cur = currency(doc["currency"])
    credit_note_id = None
    if doc["type"] == DocumentType.INVOICE.value:
        credit_note_id = credit_invoice(
            conn,
            clock,
            org_id,
            doc["id"],
            CreditRequest(CreditMode.AMOUNT, [], amount=from_minor(refund["amount_minor"], cur)),
            refund["reason"] or "refund of a payment",
            CreditDisposition.REFUND,
            actor,
            now,
        )
    conn.execute(
        update(t.payment_refunds)
        .where(t.payment_refunds.c.id == refund_id)
        .values(
            status="succeeded",
            provider_refund_id=provider_refund_id,
            credit_note_id=credit_note_id,
            settled_at=now,
        )
    )
    refunded = doc["amount_refunded_minor"] + refund["amount_minor"]
    _touch_document(conn, doc["id"], now, amount_refunded_minor=refunded)
    append_audit(
        conn,
        [
            audit_row(
                org_id,
                "document",
                doc["id"],
                "refunded",
                actor,
                now,
                {"amount_refunded_minor": doc["amount_refunded_minor"]},
                {"amount_refunded_minor": refunded, "refund_id": refund_id, "credit_note_id": credit_note_id},
            )
        ],
    )
    attempt = (
        conn.execute(select(t.payment_attempts).where(t.payment_attempts.c.id == refund["attempt_id"]))
        .mappings()
        .one()
    )
    _event(
        conn,
        dict(attempt),
        "payment.refunded",
        now,
        amount_minor=refund["amount_minor"],
        refund_id=refund_id,
        credit_note_id=credit_note_id,
    )


# --- the worker's jobs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CollectionSummary:
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0


def schedule_collection(conn: Connection, document_ids: Sequence[int], at: datetime) -> None:
    """Plan the automatic charge of just-issued documents whose organisation collects automatically."""
    if not document_ids:
        return
    d, o = t.documents.c, t.organizations.c
    conn.execute(
        update(t.documents)
        .where(
            d.id.in_(list(document_ids)),
            d.type.in_((DocumentType.INVOICE.value, DocumentType.PROFORMA.value)),
            d.status == DocumentStatus.OPEN.value,
            d.total_minor > 0,
            d.organization_id.in_(select(o.id).where(o.auto_collect.is_(True))),
        )
        .values(next_payment_attempt_at=at)
    )


def run_collection(
    db: Database, clock: Clock, provider: PaymentProvider, *, limit: int = 500, actor: str = "worker"
) -> CollectionSummary:
    """Charge every document whose automatic charge or retry is due. Documents whose customer has no
    usable method are taken off the schedule (the hosted payment page remains)."""
    now = clock.now()
    d = t.documents.c
    with db.read() as conn:
        due = conn.execute(
            select(d.id, d.organization_id)
            .where(d.next_payment_attempt_at.is_not(None), d.next_payment_attempt_at <= now)
            .order_by(d.next_payment_attempt_at, d.id)
            .limit(limit)
        ).all()
    counts = {"attempted": 0, "succeeded": 0, "failed": 0, "unknown": 0, "skipped": 0}
    pa = t.payment_attempts.c
    for doc_id, org_id in due:
        with db.read() as conn:
            tried = conn.execute(
                select(func.count()).where(
                    pa.document_id == doc_id,
                    pa.trigger.in_((Trigger.AUTOMATIC.value, Trigger.RETRY.value)),
                )
            ).scalar_one()
            unsettled = conn.execute(
                select(pa.id).where(pa.document_id == doc_id, pa.status.in_([s.value for s in UNSETTLED]))
            ).first()
        if unsettled is not None:
            # A charge from the API or the hosted page is in flight: come back once the janitor has
            # settled it, rather than dropping the document from the schedule (if that charge never
            # happened, nothing else would collect the document).
            _postpone(db, clock, doc_id, now + SETTLE_GRACE)
            counts["skipped"] += 1
            continue
        trigger = Trigger.RETRY if tried else Trigger.AUTOMATIC
        try:
            outcome = charge_document(db, clock, provider, org_id, doc_id, trigger=trigger, actor=actor)
        except (InvalidStateError, InvalidFieldError, NotFoundError):
            _unschedule(db, clock, doc_id)
            counts["skipped"] += 1
            continue
        counts["attempted"] += 1
        if outcome.status in (AttemptStatus.SUCCEEDED, AttemptStatus.AUTHORIZED):
            counts["succeeded"] += 1
        elif outcome.status is AttemptStatus.FAILED:
            counts["failed"] += 1
        else:
            counts["unknown"] += 1
    return CollectionSummary(**counts)


def _postpone(db: Database, clock: Clock, document_id: int, at: datetime) -> None:
    with db.write() as conn:
        conn.execute(
            update(t.documents)
            .where(t.documents.c.id == document_id, t.documents.c.next_payment_attempt_at.is_not(None))
            .values(next_payment_attempt_at=at, updated_at=clock.now())
        )


def _unschedule(db: Database, clock: Clock, document_id: int) -> None:
    with db.write() as conn:
        conn.execute(
            update(t.documents)
            .where(t.documents.c.id == document_id, t.documents.c.next_payment_attempt_at.is_not(None))
            .values(next_payment_attempt_at=None, updated_at=clock.now())
        )


def settle_unknown(
    db: Database,
    clock: Clock,
    provider: PaymentProvider,
    *,
    grace: timedelta = SETTLE_GRACE,
    actor: str = "janitor",
) -> int:
    """The janitor: settle attempts left pending or unknown (a timeout, a crash) by asking the provider
    for the charge their key created, and re-send captures and refunds left pending (their keys make
    that harmless). Returns how many rows it settled."""
    cutoff = clock.now() - grace
    pa = t.payment_attempts.c
    with db.read() as conn:
        attempts = conn.execute(
            select(pa.id, pa.idempotency_key, pa.provider).where(
                pa.status.in_((AttemptStatus.PENDING.value, AttemptStatus.UNKNOWN.value)),
                pa.created_at <= cutoff,
            )
        ).all()
        captures = conn.execute(
            select(t.payment_captures.c.idempotency_key, t.payment_captures.c.amount_minor, pa.id)
            .join(t.payment_attempts, pa.id == t.payment_captures.c.attempt_id)
            .where(t.payment_captures.c.status == "pending", t.payment_captures.c.created_at <= cutoff)
        ).all()
        refunds = conn.execute(
            select(
                t.payment_refunds.c.id,
                t.payment_refunds.c.idempotency_key,
                t.payment_refunds.c.amount_minor,
                pa.provider_charge_id,
            )
            .join(t.payment_attempts, pa.id == t.payment_refunds.c.attempt_id)
            .where(t.payment_refunds.c.status == "pending", t.payment_refunds.c.created_at <= cutoff)
        ).all()
    settled = 0
    for attempt_id, key, provider_name in attempts:
        if provider_name != provider.name:
            continue
        try:
            snapshot = provider.find_charge(key)
        except ProviderUnreachable:
            return settled
        with db.write() as conn:
            attempt = _locked_attempt(conn, attempt_id)
            if AttemptStatus(attempt["status"]) not in UNSETTLED:
                continue
            if snapshot is None:
                _settle_failed(
                    conn,
                    clock.now(),
                    attempt,
                    NOT_PROCESSED_CODE,
                    "the payment provider never received the charge",
                    actor,
                )
            else:
                apply_charge_snapshot(conn, clock, attempt, snapshot, actor)
        settled += 1
    for key, amount, attempt_id in captures:
        with db.read() as conn:
            attempt = dict(
                conn.execute(select(t.payment_attempts).where(pa.id == attempt_id)).mappings().one()
            )
        try:
            _send_capture(db, clock, provider, attempt, key, amount, actor)
            settled += 1
        except (OutcomeUnknown, InvalidStateError):
            continue
    for refund_id, key, amount, charge_id in refunds:
        try:
            send_refund(db, clock, provider, refund_id, key, charge_id, amount, actor)
            settled += 1
        except InvalidFieldError:
            continue
    return settled


def handle_provider_event(db: Database, clock: Clock, provider_name: str, event: InboundEvent) -> bool:
    """Apply a verified provider webhook. Each event id is applied once (a replay is acknowledged and
    ignored); the event's charge snapshot decides, so events may come in any order. Returns whether it
    was new."""
    now = clock.now()
    with db.write() as conn:
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(t.inbound_events).values(
                        provider=provider_name, event_id=event.event_id, type=event.type, received_at=now
                    )
                )
        except IntegrityError:
            return False
        pa = t.payment_attempts.c
        attempt_id = conn.execute(
            select(pa.id).where(pa.provider == provider_name, pa.provider_charge_id == event.charge.charge_id)
        ).scalar_one_or_none()
        if attempt_id is None and event.charge.reference:
            attempt_id = conn.execute(
                select(pa.id).where(
                    pa.provider == provider_name, pa.idempotency_key == event.charge.reference
                )
            ).scalar_one_or_none()
        if attempt_id is None:
            return True
        attempt = _locked_attempt(conn, attempt_id)
        apply_charge_snapshot(conn, clock, attempt, event.charge, "provider")
    return True
