"""Detail pages and their actions: a document (lines, taxes, attempts with errors, audit trail; issue,
void, mark paid, retry the charge, credit note, refund), a customer, a subscription (change with the
proration preview before confirming, cancel). Every action goes through `services/operator_actions`
(the API's services behind a permission check); every destructive one has a confirm step that works
without JS; a refusal is shown next to the field the service named."""

from __future__ import annotations

import secrets
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from zoneinfo import ZoneInfo

from fastapi import Response
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from fiscus.adapters.db import tables as t
from fiscus.domain.documents import TRANSITIONS, DocumentStatus, DocumentType
from fiscus.domain.documents import DocumentAction as _A
from fiscus.domain.errors import DomainError, FieldConflictError, InvalidFieldError, InvalidStateError
from fiscus.domain.money import currency, to_minor
from fiscus.domain.payments import OutcomeUnknown, ProviderError, ProviderUnreachable
from fiscus.queries import console_customer as ccq
from fiscus.queries import console_lists as cl
from fiscus.queries.documents import DocumentFilters, DocumentView, audit_events, get_document, page_documents
from fiscus.queries.rows import get_row
from fiscus.queries.scope import Scope
from fiscus.services import operator_actions as act
from fiscus.services.collection_pause import active_pause
from fiscus.services.operators import require
from fiscus.services.subscriptions import ItemSpec
from fiscus.web.console import auth
from fiscus.web.console.routing import Ctx, org_page

ACTIONS: Final = {
    "issue": "documents.issue",
    "void": "documents.void",
    "mark_paid": "documents.mark_paid",
    "retry": "payments.retry",
    "credit_note": "credit_notes.issue",
    "refund": "refunds.create",
    "resend": "documents.resend",
}
DESTRUCTIVE: Final = frozenset({"void", "credit_note", "refund"})


def _document_context(ctx: Ctx, document_id: int) -> dict[str, Any]:
    scope = Scope(ctx.org)
    with ctx.c.db.read() as conn:
        doc = get_document(conn, scope, document_id)
        attempts = cl.payments(conn, ctx.org, status=None, document_id=document_id, limit=100, after=None)
        events = audit_events(conn, scope, "document", document_id)
        einvoices = bool(
            conn.execute(
                select(t.organizations.c.facturx_enabled).where(t.organizations.c.id == ctx.org)
            ).scalar_one()
        )
    xml = einvoices and doc.number is not None and doc.type is not DocumentType.PROFORMA
    return {
        "title": doc.number or f"#{doc.id}",
        "doc": doc,
        "attempts": attempts.rows,
        "events": events,
        "xml": xml,
    }


@org_page("/documents/{document_id}")
def document(ctx: Ctx, document_id: int) -> Response:
    context = _document_context(ctx, document_id)
    done = ctx.request.query_params.get("done")
    context["done"] = done if done in ACTIONS else None
    offered = _offered(context["doc"])
    context["actions"] = [a for a, perm in ACTIONS.items() if ctx.actor.can(perm) and a in offered]
    return ctx.page("console/document.html", context)


def _offered(doc: DocumentView) -> set[str]:
    """The actions worth offering on this document now (the domain's transitions, what is due or
    paid); only a hint for the page: the service decides when it is asked."""
    moves = {action for (status, action) in TRANSITIONS[doc.type] if status is doc.status}
    offered = {a for a, move in (("issue", _A.ISSUE), ("void", _A.VOID)) if move in moves}
    if _A.PAY in moves or _A.CONVERT in moves:
        offered.add("mark_paid")
    if doc.amount_due_minor > 0:
        offered.add("retry")
    if doc.type is DocumentType.INVOICE and doc.status in (DocumentStatus.OPEN, DocumentStatus.PAID):
        offered.add("credit_note")
    if doc.amount_paid_minor > doc.amount_refunded_minor:
        offered.add("refund")
    if doc.status is not DocumentStatus.DRAFT:
        offered.add("resend")
    return offered


def _amount(value: str) -> Decimal | None:
    text = value.strip().replace(" ", "")
    if not text:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise InvalidFieldError("amount", "must be a number such as 12.50") from None
    if not amount.is_finite() or amount <= 0:
        raise InvalidFieldError("amount", "must be greater than zero")
    return amount


def _credit_lines(form: dict[str, str]) -> list[tuple[int, Decimal | None]]:
    """The ticked lines (`line_<position>`) with their quantity (`qty_<position>`; empty: all that is
    still open on the line)."""
    chosen: list[tuple[int, Decimal | None]] = []
    for key in sorted(form):
        if not key.startswith("line_") or not key[5:].isdigit() or len(key) > 15:
            continue
        position = int(key[5:])
        text = form.get(f"qty_{position}", "").strip()
        if not text:
            chosen.append((position, None))
            continue
        try:
            qty = Decimal(text)
        except InvalidOperation:
            raise InvalidFieldError(f"qty_{position}", "must be a number such as 1.5") from None
        if not qty.is_finite():
            raise InvalidFieldError(f"qty_{position}", "must be a number such as 1.5")
        chosen.append((position, qty))
    if not chosen:
        raise InvalidFieldError("lines", "tick at least one line to credit")
    return sorted(chosen)


def _by_position(exc: InvalidFieldError, lines: list[tuple[int, Decimal | None]]) -> InvalidFieldError:
    """The service names a line by its index in the request (`lines.0.quantity`); the form names it by
    the invoice position, so the message lands next to the quantity the operator typed."""
    parts = exc.field.split(".")
    if len(parts) != 3 or parts[0] != "lines" or not parts[1].isdigit() or int(parts[1]) >= len(lines):
        return exc
    position = lines[int(parts[1])][0]
    cls = FieldConflictError if isinstance(exc, FieldConflictError) else InvalidFieldError
    return cls(f"qty_{position}", exc.problems[0].message)


def _perform(ctx: Ctx, document_id: int, action: str, currency_code: str) -> None:
    f, c, actor = ctx.form, ctx.c, ctx.actor
    if action == "issue":
        act.issue_document(c.db, c.clock, actor, document_id)
    elif action == "void":
        act.void_document(c.db, c.clock, actor, document_id)
    elif action == "resend":
        act.resend_document_email(c.db, c.clock, actor, document_id, f.get("request_key", ""))
    elif action == "mark_paid":
        reference = f.get("reference", "")
        act.mark_paid(c.db, c.clock, actor, document_id, reference=reference if reference.strip() else None)
    elif action == "credit_note":
        mode = f.get("mode", "full")
        if mode not in ("full", "lines", "amount"):
            raise InvalidFieldError("mode", "must be full, lines or amount")
        amount = _amount(f.get("amount", ""))
        if mode == "amount" and amount is None:
            raise InvalidFieldError("amount", "is required for a credit note of an amount")
        lines = _credit_lines(f) if mode == "lines" else None
        try:
            act.issue_credit_note(
                c.db,
                c.clock,
                actor,
                document_id,
                mode=mode,
                lines=lines,
                amount=amount if mode == "amount" else None,
                reason=f.get("reason", ""),
                disposition=f.get("disposition", "reduce_due"),
            )
        except InvalidFieldError as exc:
            raise _by_position(exc, lines or []) from None
    else:
        if c.payments is None:
            raise ProviderUnreachable("no payment provider is configured")
        if action == "retry":
            require(actor, "payments.retry")
            outcome = act.retry_charge(c.db, c.clock, c.payments, actor, document_id)
            if outcome.error_code:
                raise InvalidFieldError("charge", f"{outcome.error_code}: {outcome.error_message}")
        else:
            amount = _amount(f.get("amount", ""))
            try:
                minor = None if amount is None else to_minor(amount, currency(currency_code))
            except ValueError:
                raise InvalidFieldError("amount", f"has more decimals than {currency_code} allows") from None
            act.refund(
                c.db,
                c.clock,
                c.payments,
                actor,
                document_id,
                amount_minor=minor,
                reason=f.get("reason", ""),
            )


@org_page("/documents/{document_id}/act/{action}", methods=("GET", "POST"))
def document_action(ctx: Ctx, document_id: int, action: str) -> Response:
    """GET: the confirm step (and the fields the action needs). POST: do it, then back to the document
    (Post/Redirect/Get); a refusal re-renders the form with the service's message by its field."""
    if action not in ACTIONS:
        return auth.not_found(ctx.request, ctx.operator)
    require(ctx.actor, ACTIONS[action])
    context = _document_context(ctx, document_id)
    context.update(action=action, error=None, problem=None, form=ctx.form, destructive=action in DESTRUCTIVE)
    # One request key per confirm step: submitting the same form twice resends once.
    context["request_key"] = ctx.form.get("request_key") or secrets.token_urlsafe(18)
    if ctx.request.method == "POST":
        try:
            _perform(ctx, document_id, action, context["doc"].currency.code)
        except InvalidFieldError as exc:
            context["error"] = exc
            return ctx.page("console/action.html", context, status=422)
        except (ProviderError, ProviderUnreachable, OutcomeUnknown, DomainError) as exc:
            if isinstance(exc, DomainError) and exc.code == "forbidden":
                raise
            context["problem"] = str(exc) or type(exc).__name__
            return ctx.page("console/action.html", context, status=409)
        target = f"/console/{ctx.org}/documents/{document_id}?done={action}"
        return RedirectResponse(target, status_code=303, headers=auth.headers())
    return ctx.page("console/action.html", context)


@org_page("/customers/{customer_id}")
def customer(ctx: Ctx, customer_id: int) -> Response:
    scope = Scope(ctx.org)
    with ctx.c.db.read() as conn:
        row = get_row(conn, scope, t.customers, customer_id, "customer")
        docs, _ = page_documents(conn, scope, DocumentFilters(customer_id=customer_id), limit=50)
        subs = cl.subscriptions(
            conn, ctx.org, status=None, customer_id=customer_id, search=None, limit=50, after=None
        )
        pm = t.payment_methods.c
        methods = [
            dict(r)
            for r in conn.execute(
                select(t.payment_methods).where(pm.organization_id == ctx.org, pm.customer_id == customer_id)
            ).mappings()
        ]
        credits = ccq.credit_balances(conn, ctx.org, customer_id)
        wallets = ccq.wallets(conn, ctx.org, customer_id)
        timeline = ccq.timeline(conn, ctx.org, customer_id)
    vat = ctx.request.query_params.get("vat")
    return ctx.page(
        "console/customer.html",
        {
            "title": row["name"],
            "customer": row,
            "documents": docs,
            "subs": subs.rows,
            "methods": methods,
            "credits": credits,
            "wallets": wallets,
            "timeline": timeline,
            "vat_result": vat if vat in ("valid", "invalid", "unknown") else None,
        },
    )


@org_page("/customers/{customer_id}/vat-check", methods=("POST",), permission="customers.write")
def vat_check(ctx: Ctx, customer_id: int) -> Response:
    """Ask the VAT registry now (audited), then back to the customer with the answer."""
    try:
        answer = act.check_vat_id(ctx.c.db, ctx.c.clock, ctx.c.vat_registry, ctx.actor, customer_id)
        result = "unknown" if answer.valid is None else "valid" if answer.valid else "invalid"
    except InvalidStateError:
        result = "unknown"
    return RedirectResponse(
        f"/console/{ctx.org}/customers/{customer_id}?vat={result}", status_code=303, headers=auth.headers()
    )


def subscription_context(ctx: Ctx, subscription_id: int) -> dict[str, Any]:
    scope = Scope(ctx.org)
    with ctx.c.db.read() as conn:
        sub = get_row(conn, scope, t.subscriptions, subscription_id, "subscription")
        cust = get_row(conn, scope, t.customers, sub["customer_id"], "customer")
        si, p, v = t.subscription_items.c, t.prices.c, t.variants.c
        items = [
            dict(r)
            for r in conn.execute(
                select(si.id, si.price_id, si.quantity, v.name, p.unit_amount, p.currency, p.interval)
                .join(t.prices, p.id == si.price_id)
                .join(t.variants, v.id == p.variant_id)
                .where(si.subscription_id == subscription_id, si.organization_id == ctx.org)
            ).mappings()
        ]
        prices = [
            dict(r)
            for r in conn.execute(
                select(p.id, p.unit_amount, p.currency, p.interval, p.interval_count, v.name)
                .join(t.variants, v.id == p.variant_id)
                .where(
                    p.organization_id == ctx.org,
                    p.currency == sub["currency"],
                    p.active.is_(True),
                    p.interval == sub["interval"],
                )
                .order_by(p.id)
            ).mappings()
        ]
        docs, _ = page_documents(conn, scope, DocumentFilters(subscription_id=subscription_id), limit=20)
        pause = active_pause(conn, ctx.org, subscription_id, ctx.c.clock.now())
        if pause and pause["resumes_at"]:  # shown as the day in the organisation's time zone
            zone = conn.execute(select(t.organizations.c.timezone).where(t.organizations.c.id == ctx.org))
            pause["resumes_on"] = pause["resumes_at"].astimezone(ZoneInfo(zone.scalar_one())).date()
    return {
        "title": f"#{subscription_id}",
        "sub": sub,
        "pause": pause,
        "customer": cust,
        "items": items,
        "prices": prices,
        "documents": docs,
    }


@org_page("/subscriptions/{subscription_id}")
def subscription(ctx: Ctx, subscription_id: int) -> Response:
    context = subscription_context(ctx, subscription_id)
    context["done"] = ctx.request.query_params.get("done") in (
        "change", "cancel", "resume", "pause", "resume_collection",
    )  # fmt: skip
    return ctx.page("console/subscription.html", context)


def _change_items(form: dict[str, str]) -> list[ItemSpec]:
    price = form.get("price_id", "")
    if not price.isdigit() or len(price) > 18:
        raise InvalidFieldError("items/0/price_id", "choose a price")
    quantity = form.get("quantity", "1").strip() or "1"
    try:
        qty = Decimal(quantity)
    except InvalidOperation:
        raise InvalidFieldError("items/0/quantity", "must be a number") from None
    return [ItemSpec(int(price), qty)]


@org_page("/subscriptions/{subscription_id}/change", methods=("GET", "POST"))
def change(ctx: Ctx, subscription_id: int) -> Response:
    """Step 1 (GET): choose. Step 2 (POST step=preview): the proration preview, written nowhere.
    Step 3 (POST step=confirm): the change itself."""
    require(ctx.actor, "subscriptions.change")
    context = subscription_context(ctx, subscription_id)
    context.update(form=ctx.form, error=None, preview=None)
    if ctx.request.method == "POST":
        confirm = ctx.form.get("step") == "confirm"
        try:
            items = _change_items(ctx.form)
            result = act.change_subscription(
                ctx.c.db, ctx.c.clock, ctx.actor, subscription_id, items, preview=not confirm
            )
        except DomainError as exc:
            if exc.code == "forbidden":
                raise
            context["error"] = exc
            return ctx.page(
                "console/change.html", context, status=422 if isinstance(exc, InvalidFieldError) else 409
            )
        if confirm:
            return RedirectResponse(
                f"/console/{ctx.org}/subscriptions/{subscription_id}?done=change",
                status_code=303,
                headers=auth.headers(),
            )
        context["preview"] = result
    return ctx.page("console/change.html", context)


@org_page("/subscriptions/{subscription_id}/cancel", methods=("GET", "POST"))
def cancel(ctx: Ctx, subscription_id: int) -> Response:
    require(ctx.actor, "subscriptions.cancel")
    context = subscription_context(ctx, subscription_id)
    context.update(error=None)
    if ctx.request.method == "POST":
        try:
            act.cancel_subscription(
                ctx.c.db, ctx.c.clock, ctx.actor, subscription_id, at_period_end=ctx.form.get("when") != "now"
            )
        except DomainError as exc:
            if exc.code == "forbidden":
                raise
            context["error"] = exc
            return ctx.page("console/cancel.html", context, status=409)
        return RedirectResponse(
            f"/console/{ctx.org}/subscriptions/{subscription_id}?done=cancel",
            status_code=303,
            headers=auth.headers(),
        )
    return ctx.page("console/cancel.html", context)


@org_page("/subscriptions/{subscription_id}/resume", methods=("GET", "POST"))
def resume(ctx: Ctx, subscription_id: int) -> Response:
    """Withdraw a cancellation scheduled for the period end: confirm (GET), then do it (POST)."""
    require(ctx.actor, "subscriptions.cancel")
    context = subscription_context(ctx, subscription_id)
    context.update(error=None)
    if ctx.request.method == "POST":
        try:
            act.resume_subscription(ctx.c.db, ctx.c.clock, ctx.actor, subscription_id)
        except DomainError as exc:
            if exc.code == "forbidden":
                raise
            context["error"] = exc
            return ctx.page("console/resume.html", context, status=409)
        return RedirectResponse(
            f"/console/{ctx.org}/subscriptions/{subscription_id}?done=resume",
            status_code=303,
            headers=auth.headers(),
        )
    return ctx.page("console/resume.html", context)
