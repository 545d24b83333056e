"""What an operator may do, as services: each checks the actor's permission (`require`) and then calls
the very service the API calls, with the operator as the audit actor. The console calls only these for
writes, so a role's limits hold whatever a page shows, and a console action leaves the same rows, audit
entries and events as the API call."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.payments import PaymentProvider, Trigger
from fiscus.domain.tax import VatCheck, VatRegistry
from fiscus.services import (
    collection_pause,
    credit_notes,
    document_emails,
    documents,
    subscriptions,
    vat_checks,
)
from fiscus.services.billing_requests import request_run
from fiscus.services.operators import Actor, require
from fiscus.services.payments import charging, refunds
from fiscus.services.payments.attempts import AttemptOutcome


def issue_document(db: Database, clock: Clock, actor: Actor, document_id: int) -> str:
    require(actor, "documents.issue")
    return documents.issue_document(db, clock, actor.organization_id, document_id, actor=actor.audit)


def void_document(db: Database, clock: Clock, actor: Actor, document_id: int) -> None:
    require(actor, "documents.void")
    documents.void_document(db, clock, actor.organization_id, document_id, actor=actor.audit)


def mark_paid(
    db: Database, clock: Clock, actor: Actor, document_id: int, *, reference: str | None = None
) -> int:
    require(actor, "documents.mark_paid")
    return documents.mark_paid(
        db, clock, actor.organization_id, document_id, reference=reference, actor=actor.audit
    )


def resend_document_email(
    db: Database, clock: Clock, actor: Actor, document_id: int, request_key: str
) -> str:
    """The document's email again (one message per request key: a replayed form queues once)."""
    require(actor, "documents.resend")
    return document_emails.resend_document_email(
        db, clock, actor.organization_id, document_id, request_key=request_key, actor=actor.audit
    )


def retry_charge(
    db: Database, clock: Clock, provider: PaymentProvider, actor: Actor, document_id: int
) -> AttemptOutcome:
    """Charge what is due now with the customer's saved card (an operator's manual retry)."""
    require(actor, "payments.retry")
    return charging.charge_document(
        db, clock, provider, actor.organization_id, document_id, trigger=Trigger.MANUAL, actor=actor.audit
    )


def issue_credit_note(
    db: Database,
    clock: Clock,
    actor: Actor,
    invoice_id: int,
    *,
    mode: str,
    amount: Decimal | None,
    reason: str,
    disposition: str,
    lines: Sequence[tuple[int, Decimal | None]] | None = None,
) -> int:
    require(actor, "credit_notes.issue")
    return credit_notes.issue_credit_note(
        db,
        clock,
        actor.organization_id,
        invoice_id,
        mode=mode,
        lines=lines,
        amount=amount,
        reason=reason,
        disposition=disposition,
        actor=actor.audit,
    )


def refund(
    db: Database,
    clock: Clock,
    provider: PaymentProvider,
    actor: Actor,
    document_id: int,
    *,
    amount_minor: int | None,
    reason: str,
) -> list[int]:
    require(actor, "refunds.create")
    return refunds.refund_payment(
        db,
        clock,
        provider,
        actor.organization_id,
        document_id,
        amount_minor=amount_minor,
        reason=reason,
        actor=actor.audit,
    )


def change_subscription(
    db: Database,
    clock: Clock,
    actor: Actor,
    subscription_id: int,
    items: Sequence[subscriptions.ItemSpec],
    *,
    preview: bool,
) -> subscriptions.ProrationPreview:
    """The change, or with `preview` what it would prorate (written nowhere; reading needs only
    `console.read`, but the preview is the first step of a change, so it asks for the change's right)."""
    require(actor, "subscriptions.change")
    return subscriptions.change_subscription(
        db, clock, actor.organization_id, subscription_id, items, preview=preview, actor=actor.audit
    )


def cancel_subscription(
    db: Database, clock: Clock, actor: Actor, subscription_id: int, *, at_period_end: bool
) -> None:
    require(actor, "subscriptions.cancel")
    subscriptions.cancel_subscription(
        db, clock, actor.organization_id, subscription_id, at_period_end=at_period_end, actor=actor.audit
    )


def resume_subscription(db: Database, clock: Clock, actor: Actor, subscription_id: int) -> None:
    """Withdraw a cancellation scheduled for the period end (the same right as cancelling)."""
    require(actor, "subscriptions.cancel")
    subscriptions.resume_subscription(db, clock, actor.organization_id, subscription_id, actor=actor.audit)


def pause_collection(
    db: Database, clock: Clock, actor: Actor, subscription_id: int, *, resumes_at: datetime | None
) -> None:
    """Stop the automatic charges of a subscription (invoices are still issued), until `resumes_at`."""
    require(actor, "subscriptions.pause_collection")
    collection_pause.pause_collection(
        db, clock, actor.organization_id, subscription_id, resumes_at=resumes_at, actor=actor.audit
    )


def resume_collection(db: Database, clock: Clock, actor: Actor, subscription_id: int) -> None:
    require(actor, "subscriptions.pause_collection")
    collection_pause.resume_collection(db, clock, actor.organization_id, subscription_id, actor=actor.audit)


def check_vat_id(
    db: Database, clock: Clock, registry: VatRegistry | None, actor: Actor, customer_id: int
) -> VatCheck:
    """Ask the VAT registry about a customer's VAT ID; the answer is audited."""
    require(actor, "customers.write")
    return vat_checks.check_vat_id(db, clock, registry, actor.organization_id, customer_id, actor=actor.audit)


def start_billing_run(db: Database, clock: Clock, actor: Actor) -> int:
    """Request a billing run of the actor's organisation as of now (carried out like the API's)."""
    require(actor, "billing_runs.start")
    return request_run(db, clock, at=None, organization_id=actor.organization_id, actor=actor.audit)
