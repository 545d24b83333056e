"""Payments: customers' payment methods, charges of documents (attempts), captures, voids, refunds, the
organisation's collection settings, and the payment provider's inbound webhooks.

Ownership is checked by dependencies, which FastAPI solves before it validates the body: another
tenant's (or customer's) id is a 404 whatever the body says. Calls that need the payment provider answer
409 `payments_not_configured` when none is configured, after that check, so it tells nothing about other
tenants' ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from fiscus.adapters.db import tables as t
from fiscus.adapters.payments.gateway import InvalidWebhook
from fiscus.api import payment_presenters as pp
from fiscus.api import presenters as p
from fiscus.api.deps import ContainerDep, OrgDep, PrincipalDep
from fiscus.api.errors import ApiError
from fiscus.api.payment_schemas import (
    CaptureIn,
    ChargeIn,
    DefaultPaymentMethodIn,
    InboundWebhookOut,
    PaymentMethodIn,
    PaymentMethodOut,
    PaymentOut,
    PaymentSettingsIn,
    PaymentSettingsOut,
    RefundIn,
    RefundOut,
    SubscriptionPaymentMethodIn,
)
from fiscus.api.routes.common import (
    IDEMPOTENCY_HEADER,
    PROBLEMS,
    PageDep,
    envelope,
    router,
)
from fiscus.api.routes.subscriptions import present as present_subscription
from fiscus.api.schemas import Id, ListOut, SubscriptionOut
from fiscus.bootstrap import Container
from fiscus.domain.errors import FieldConflictError, InvalidFieldError, NotFoundError
from fiscus.domain.money import Currency, currency, to_minor
from fiscus.domain.payments import OutcomeUnknown, PaymentProvider, ProviderError, ProviderUnreachable
from fiscus.queries.documents import document_stamp
from fiscus.queries.payments import (
    attempts_page,
    document_attempts,
    document_refunds,
    payment_methods_page,
    payment_settings,
    refunds_by_id,
)
from fiscus.queries.rows import get_row
from fiscus.queries.scope import Scope
from fiscus.services.access import Principal
from fiscus.services.payments import captures, charging, methods, provider_events, refunds, settings

api = router("payments")
inbound = APIRouter(prefix="/api/v1", tags=["payments"], responses=PROBLEMS)
"""The provider's webhooks: no API credential (the provider signs them); no `Idempotency-Key` layer."""

NOT_CONFIGURED = "payments are not configured (FISCUS_GATEWAY_URL)"
PROVIDER_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    409: {**PROBLEMS[409], "description": "Conflict with the current state, or `payments_not_configured`"},
    502: {**PROBLEMS[400], "description": "The payment provider refused the call"},
    503: {**PROBLEMS[400], "description": "The payment provider is unreachable right now; try again"},
}
WEBHOOK_HEADERS: list[dict[str, Any]] = [
    {
        "name": name,
        "in": "header",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
        "description": text,
    }
    for name, text in (
        ("webhook-id", "the event's id (replays of one id are applied once)"),
        ("webhook-timestamp", "Unix seconds when it was signed (the signature covers it)"),
        ("webhook-signature", "`v1,<base64 HMAC-SHA256>` over id.timestamp.body with the shared secret"),
    )
]
ACCEPTED = {
    "description": "The provider's answer did not arrive (a timeout); the outcome is settled automatically",
    "model": PaymentOut,
}
PaymentStatus = Literal["pending", "unknown", "authorized", "succeeded", "failed", "canceled"]


# --- access: who may touch which object, decided before the body is read ---------------------------


def _scope(principal: Principal) -> Scope:
    return Scope(principal.organization_id, principal.customer_id)


def _customer_access(customer_id: Id, principal: PrincipalDep, c: ContainerDep) -> Principal:
    """The organisation, or that customer's own token."""
    with c.db.read() as conn:
        get_row(conn, _scope(principal), t.customers, customer_id, "customer")
    return principal


def _org_customer(customer_id: Id, principal: OrgDep, c: ContainerDep) -> Principal:
    with c.db.read() as conn:
        get_row(conn, Scope(principal.organization_id), t.customers, customer_id, "customer")
    return principal


def _document_access(document_id: Id, principal: PrincipalDep, c: ContainerDep) -> Principal:
    """The organisation, or the token of the document's customer."""
    with c.db.read() as conn:
        if document_stamp(conn, _scope(principal), document_id) is None:
            raise NotFoundError("document", document_id)
    return principal


def _org_document(document_id: Id, principal: OrgDep, c: ContainerDep) -> dict[str, Any]:
    with c.db.read() as conn:
        return get_row(conn, Scope(principal.organization_id), t.documents, document_id, "document")


def _org_subscription(subscription_id: Id, principal: OrgDep, c: ContainerDep) -> Principal:
    with c.db.read() as conn:
        get_row(conn, Scope(principal.organization_id), t.subscriptions, subscription_id, "subscription")
    return principal


def _org_payment(payment_id: Id, principal: OrgDep, c: ContainerDep) -> dict[str, Any]:
    with c.db.read() as conn:
        return get_row(conn, Scope(principal.organization_id), t.payment_attempts, payment_id, "payment")


CustomerAccess = Annotated[Principal, Depends(_customer_access)]
OrgCustomer = Annotated[Principal, Depends(_org_customer)]
DocumentAccess = Annotated[Principal, Depends(_document_access)]
OrgDocument = Annotated[dict[str, Any], Depends(_org_document)]
OrgSubscription = Annotated[Principal, Depends(_org_subscription)]
OrgPayment = Annotated[dict[str, Any], Depends(_org_payment)]


def _provider(c: Container) -> PaymentProvider:
    """409, not 503: a server without a gateway stays that way until its operator configures one, so
    "try again later" would be wrong; the request conflicts with the server's configured state (501 is
    a 5xx, a server fault, and 403/404 would blame the credential or the object)."""
    if c.payments is None:
        raise ApiError(409, NOT_CONFIGURED, code="payments_not_configured")
    return c.payments


@contextmanager
def _provider_errors() -> Iterator[None]:
    """Provider failures the services let through, as problems: unreachable (nothing happened, try
    again) or refused."""
    try:
        yield
    except ProviderUnreachable as exc:
        raise ApiError(
            503, f"the payment provider is unreachable; try again ({exc})", code="provider_unreachable"
        ) from None
    except ProviderError as exc:
        raise ApiError(502, f"the payment provider refused: {exc.message}", code="provider_error") from None


def _minor(amount: Decimal | None, cur: Currency) -> int | None:
    """An API amount (major units) in the currency's minor units; more decimals than it has are refused."""
    if amount is None:
        return None
    if amount <= 0:
        raise InvalidFieldError("amount", "must be greater than zero")
    try:
        return to_minor(amount, cur)
    except ValueError:  # the document's currency decides: 409, like every refusal that depends on data
        raise FieldConflictError(
            "amount", f"has more decimals than {cur.code} allows ({cur.exponent})"
        ) from None


def _method_response(c: Container, org_id: int, method_id: int, status: int = 200) -> Response:
    """A payment method the service just wrote, as the API shows it."""
    with c.db.read() as conn:
        row = get_row(conn, Scope(org_id), t.payment_methods, method_id, "payment_method")
        return p.json_response(pp.payment_methods(conn, [row])[0], status)


def _payment_response(c: Container, org_id: int, attempt_id: int, status: int = 200) -> Response:
    """An attempt the service just wrote or settled, as the API shows it."""
    with c.db.read() as conn:
        row = get_row(conn, Scope(org_id), t.payment_attempts, attempt_id, "payment")
        return p.json_response(pp.payments(conn, [row])[0], status)


# --- payment methods -----------------------------------------------------------------------------------


@api.post(
    "/customers/{customer_id}/payment_methods",
    status_code=201,
    response_model=PaymentMethodOut,
    openapi_extra=IDEMPOTENCY_HEADER,
    responses=PROVIDER_RESPONSES,
)
def add_payment_method(
    customer_id: Id, principal: CustomerAccess, body: PaymentMethodIn, c: ContainerDep
) -> Response:
    """Attach a card the provider tokenised (its hosted form or API took the number). A customer token
    may add a card to its own customer."""
    provider = _provider(c)
    with _provider_errors():
        method_id = methods.add_card(
            c.db,
            c.clock,
            provider,
            principal.organization_id,
            customer_id,
            token=body.token,
            holder=body.holder,
            make_default=body.make_default,
            actor=principal.actor,
        )
    return _method_response(c, principal.organization_id, method_id, 201)


@api.get("/customers/{customer_id}/payment_methods", response_model=ListOut[PaymentMethodOut])
def list_payment_methods(
    customer_id: Id,
    request: Request,
    principal: CustomerAccess,
    c: ContainerDep,
    page: PageDep,
    status: Annotated[Literal["active", "detached"] | None, Query()] = None,
) -> Response:
    """The customer's payment methods, newest first; a customer token sees its own only."""
    with c.db.read() as conn:
        rows, more = payment_methods_page(
            conn,
            _scope(principal),
            customer_id,
            status=status,
            limit=page.limit,
            starting_after=page.starting_after,
            ending_before=page.ending_before,
        )
        return p.json_response(envelope(request, pp.payment_methods(conn, rows), more))


@api.get("/payment_methods/{payment_method_id}", response_model=PaymentMethodOut)
def get_payment_method(payment_method_id: Id, principal: PrincipalDep, c: ContainerDep) -> Response:
    with c.db.read() as conn:
        row = get_row(conn, _scope(principal), t.payment_methods, payment_method_id, "payment_method")
        return p.json_response(pp.payment_methods(conn, [row])[0])


@api.delete("/payment_methods/{payment_method_id}", response_model=PaymentMethodOut)
def detach_payment_method(payment_method_id: Id, principal: OrgDep, c: ContainerDep) -> Response:
    """Never charge this method again; it stays on record for the attempts that used it."""
    with c.db.read() as conn:
        get_row(
            conn, Scope(principal.organization_id), t.payment_methods, payment_method_id, "payment_method"
        )
    methods.detach_payment_method(
        c.db, c.clock, principal.organization_id, payment_method_id, actor=principal.actor
    )
    return _method_response(c, principal.organization_id, payment_method_id)


@api.post(
    "/customers/{customer_id}/default_payment_method",
    response_model=PaymentMethodOut,
    openapi_extra=IDEMPOTENCY_HEADER,
)
def set_default_payment_method(
    customer_id: Id, principal: OrgCustomer, body: DefaultPaymentMethodIn, c: ContainerDep
) -> Response:
    """Charge this method when nothing more specific is named; returns it."""
    methods.set_default_payment_method(
        c.db, c.clock, principal.organization_id, customer_id, body.payment_method_id, actor=principal.actor
    )
    return _method_response(c, principal.organization_id, body.payment_method_id)


@api.post(
    "/subscriptions/{subscription_id}/payment_method",
    response_model=SubscriptionOut,
    openapi_extra=IDEMPOTENCY_HEADER,
)
def set_subscription_payment_method(
    subscription_id: Id, principal: OrgSubscription, body: SubscriptionPaymentMethodIn, c: ContainerDep
) -> Response:
    """Charge this subscription's documents to a method of its own (null: the customer's default)."""
    org = principal.organization_id
    methods.set_subscription_payment_method(
        c.db, c.clock, org, subscription_id, body.payment_method_id, actor=principal.actor
    )
    with c.db.read() as conn:
        row = get_row(conn, Scope(org), t.subscriptions, subscription_id, "subscription")
        return p.json_response(present_subscription(conn, Scope(org), row, [], c.clock.now()))


# --- charges -------------------------------------------------------------------------------------------


@api.post(
    "/documents/{document_id}/payments",
    status_code=201,
    response_model=PaymentOut,
    openapi_extra=IDEMPOTENCY_HEADER,
    responses=PROVIDER_RESPONSES,
)
def charge_document(document_id: Id, principal: DocumentAccess, body: ChargeIn, c: ContainerDep) -> Response:
    """Charge what is due now. The attempt is returned whatever the outcome: `succeeded`, `authorized`
    (capture mode authorize), `failed` with the decline in `error`, or `unknown` when the provider's
    answer was lost (settled automatically; the document is never charged twice)."""
    if body.payment_method_id is not None:
        with c.db.read() as conn:  # a customer's token names only its own methods
            get_row(conn, _scope(principal), t.payment_methods, body.payment_method_id, "payment_method")
    provider = _provider(c)
    with _provider_errors():
        outcome = charging.charge_document(
            c.db,
            c.clock,
            provider,
            principal.organization_id,
            document_id,
            method_id=body.payment_method_id,
            actor=principal.actor,
        )
    return _payment_response(c, principal.organization_id, outcome.attempt_id, 201)


@api.get("/documents/{document_id}/payments", response_model=ListOut[PaymentOut])
def list_document_payments(
    document_id: Id, request: Request, principal: DocumentAccess, c: ContainerDep
) -> Response:
    """Every attempt to collect this document, oldest first (for an invoice a paid proforma became, the
    proforma's attempts too)."""
    with c.db.read() as conn:
        rows = document_attempts(conn, _scope(principal), document_id)
        return p.json_response(envelope(request, pp.payments(conn, rows), False))


@api.get("/payments", response_model=ListOut[PaymentOut])
def list_payments(
    request: Request,
    principal: PrincipalDep,
    c: ContainerDep,
    page: PageDep,
    document_id: Annotated[Id | None, Query()] = None,
    customer_id: Annotated[Id | None, Query()] = None,
    status: Annotated[PaymentStatus | None, Query()] = None,
) -> Response:
    """Payment attempts, newest first; a customer token sees its own only."""
    with c.db.read() as conn:
        rows, more = attempts_page(
            conn,
            _scope(principal),
            document_id=document_id,
            customer_id=customer_id,
            status=status,
            limit=page.limit,
            starting_after=page.starting_after,
            ending_before=page.ending_before,
        )
        return p.json_response(envelope(request, pp.payments(conn, rows), more))


@api.get("/payments/{payment_id}", response_model=PaymentOut)
def get_payment(payment_id: Id, principal: PrincipalDep, c: ContainerDep) -> Response:
    with c.db.read() as conn:
        row = get_row(conn, _scope(principal), t.payment_attempts, payment_id, "payment")
        return p.json_response(pp.payments(conn, [row])[0])


@api.post(
    "/payments/{payment_id}/capture",
    response_model=PaymentOut,
    openapi_extra=IDEMPOTENCY_HEADER,
    responses={**PROVIDER_RESPONSES, 202: ACCEPTED},
)
def capture_payment(payment_id: Id, attempt: OrgPayment, body: CaptureIn, c: ContainerDep) -> Response:
    """Capture an authorisation, all of it or part (once; the rest is released)."""
    amount = _minor(body.amount, currency(attempt["currency"]))
    provider = _provider(c)
    try:
        with _provider_errors():
            captures.capture_payment(
                c.db, c.clock, provider, attempt["organization_id"], payment_id, amount_minor=amount
            )
    except OutcomeUnknown:
        return _payment_response(c, attempt["organization_id"], payment_id, 202)
    return _payment_response(c, attempt["organization_id"], payment_id)


@api.post(
    "/payments/{payment_id}/void",
    response_model=PaymentOut,
    openapi_extra=IDEMPOTENCY_HEADER,
    responses={**PROVIDER_RESPONSES, 202: ACCEPTED},
)
def void_payment(payment_id: Id, attempt: OrgPayment, c: ContainerDep) -> Response:
    """Release an authorisation that will not be captured."""
    provider = _provider(c)
    try:
        with _provider_errors():
            captures.void_payment(c.db, c.clock, provider, attempt["organization_id"], payment_id)
    except OutcomeUnknown:
        return _payment_response(c, attempt["organization_id"], payment_id, 202)
    return _payment_response(c, attempt["organization_id"], payment_id)


# --- refunds -------------------------------------------------------------------------------------------


@api.post(
    "/documents/{document_id}/refunds",
    status_code=201,
    response_model=ListOut[RefundOut],
    openapi_extra=IDEMPOTENCY_HEADER,
    responses={
        **PROVIDER_RESPONSES,
        202: {"description": "Some refunds await the provider's answer", "model": ListOut[RefundOut]},
    },
)
def refund_document(
    document_id: Id, request: Request, doc: OrgDocument, body: RefundIn, c: ContainerDep, principal: OrgDep
) -> Response:
    """Give money back (all that is refundable by default; any number of partial refunds up to what was
    captured). On a final invoice each refund goes with a credit note (`credit_note_id`)."""
    amount = _minor(body.amount, currency(doc["currency"]))
    provider = _provider(c)
    with _provider_errors():
        ids = refunds.refund_payment(
            c.db,
            c.clock,
            provider,
            principal.organization_id,
            document_id,
            amount_minor=amount,
            reason=body.reason,
            actor=principal.actor,
        )
    with c.db.read() as conn:
        data = pp.refunds(conn, refunds_by_id(conn, ids))
    status = 202 if any(r["status"] == "pending" for r in data) else 201
    return p.json_response(envelope(request, data, False), status)


@api.get("/documents/{document_id}/refunds", response_model=ListOut[RefundOut])
def list_refunds(document_id: Id, request: Request, principal: DocumentAccess, c: ContainerDep) -> Response:
    """Refunds of money paid for this document, oldest first."""
    with c.db.read() as conn:
        rows = document_refunds(conn, principal.organization_id, document_id)
        return p.json_response(envelope(request, pp.refunds(conn, rows), False))


# --- collection settings -------------------------------------------------------------------------------


@api.get("/payment_settings", response_model=PaymentSettingsOut)
def get_payment_settings(principal: OrgDep, c: ContainerDep) -> Response:
    """How the organisation collects: automatically at issue or not, sale or authorise-then-capture,
    the retry schedule after a failed automatic charge and what happens after the last retry."""
    with c.db.read() as conn:
        row = payment_settings(conn, principal.organization_id)
    return p.json_response(pp.payment_settings(row))


def _update_settings(body: PaymentSettingsIn, principal: Principal, c: Container) -> Response:
    after = settings.update_payment_settings(
        c.db,
        c.clock,
        principal.organization_id,
        auto_collect=body.auto_collect,
        capture_mode=body.capture_mode,
        retry_days=body.retry_days,
        retry_final_action=body.retry_final_action,
        actor=principal.actor,
    )
    return p.json_response(pp.payment_settings(after))


@api.patch("/payment_settings", response_model=PaymentSettingsOut)
def patch_payment_settings(body: PaymentSettingsIn, principal: OrgDep, c: ContainerDep) -> Response:
    """Change the fields given; the others stay."""
    return _update_settings(body, principal, c)


@api.post("/payment_settings", response_model=PaymentSettingsOut, openapi_extra=IDEMPOTENCY_HEADER)
def update_payment_settings(body: PaymentSettingsIn, principal: OrgDep, c: ContainerDep) -> Response:
    """The same as PATCH, for clients that update with POST like the rest of this API."""
    return _update_settings(body, principal, c)


# --- the provider's webhooks ---------------------------------------------------------------------------


@inbound.post(
    "/webhooks/gateway",
    response_model=InboundWebhookOut,
    responses={
        401: {**PROBLEMS[401], "description": "The signature does not verify (`invalid_webhook`)"},
        409: {**PROBLEMS[409], "description": "Payments not configured (`payments_not_configured`)"},
    },
    openapi_extra={"parameters": WEBHOOK_HEADERS},
    summary="Receive a payment provider event",
)
async def gateway_webhook(request: Request, c: ContainerDep) -> Response:
    """Charge updates from the payment provider, signed the Standard Webhooks way (401 if the
    signature does not verify). Each event is applied once (a replay answers `duplicate: true`) and
    in any order."""
    provider = _provider(c)
    body = await request.body()
    try:
        event = provider.parse_webhook(body, request.headers)
    except InvalidWebhook as exc:
        raise ApiError(401, f"the webhook does not verify: {exc}", code="invalid_webhook") from None
    new = await run_in_threadpool(provider_events.handle_provider_event, c.db, c.clock, provider.name, event)
    return p.json_response({"received": True, "duplicate": not new})
