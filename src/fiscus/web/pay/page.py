"""The hosted payment page: `GET /pay/{id}.{signature}` shows one issued document and a card form that
posts straight to the payment gateway (the card number never reaches Fiscus); the gateway sends the
browser back to `GET /pay/{id}.{signature}/return` with a token, which is charged, and the browser is
redirected to the page again (Post/Redirect/Get) to show the outcome.

Only the signed link opens a document: an unknown id, a wrong signature, a draft and a credit note all
get the same 404 page, so the page is no oracle for which documents exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time
from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import FileResponse

from fiscus.adapters.pdf.renderer import shared_renderer
from fiscus.api.deps import container
from fiscus.api.dialects.common import public_base
from fiscus.bootstrap import Container
from fiscus.documents.view_model import build_view_model, format_minor
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.domain.errors import DomainError, InvalidFieldError, InvalidStateError, NotFoundError
from fiscus.domain.money import currency
from fiscus.domain.payments import (
    AttemptStatus,
    OutcomeUnknown,
    ProviderError,
    ProviderUnreachable,
    Trigger,
)
from fiscus.queries.documents import DocumentView, get_document
from fiscus.queries.payment_page import (
    attempt_of,
    document_organization,
    latest_attempt,
    number_and_status,
    paying_capture,
)
from fiscus.queries.scope import Scope
from fiscus.services.payment_links import (
    has_hosted_page,
    is_valid,
    link_secret,
    parse_link,
    payment_path,
)
from fiscus.services.payments.charging import charge_document
from fiscus.services.payments.methods import add_card
from fiscus.services.promotion_checkout import codes_allowed, redeem_on_document
from fiscus.services.rendering import document_links, documents_dir, ensure_pdf, frozen_logo, pdf_filename
from fiscus.web.csrf import PAY_COOKIE as CSRF_COOKIE
from fiscus.web.csrf import Csrf
from fiscus.web.i18n import language_of
from fiscus.web.pay.labels import decline_message, page_labels
from fiscus.web.pay.signing import issue_state, open_result, seal_result, state_is_valid
from fiscus.web.promo_labels import refusal_message
from fiscus.web.rendering import asset, csp_hash, html, security_headers, templates

ACTOR: Final = "hosted_page"
COLLECTABLE: Final = frozenset({DocumentStatus.OPEN, DocumentStatus.UNCOLLECTIBLE})
REFRESH_SECONDS: Final = 5
OWN_ERRORS: Final = frozenset({"card_rejected", "provider_unavailable"})
"""Error codes Fiscus itself reports; their texts are the page's own, in the customer's language."""
FIELD_OF_ERROR: Final = {
    "invalid_card_number": "card_number",
    "invalid_expiry": "expiry",
    "invalid_cvc": "cvc",
    "invalid_holder": "holder",
}
"""The gateway's card form errors and the field each is about (for aria-describedby and focus)."""

_TEMPLATES = templates("fiscus.web.pay")
CSS: Final = asset("pay.css")
"""Inlined in every page and pinned by its hash in the CSP: one request, no stylesheet from elsewhere."""
STYLE_SRC: Final = csp_hash(CSS)

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Linked:
    """A document opened by a valid link, with the key that signed the link."""

    doc: DocumentView
    secret: bytes

    @property
    def path(self) -> str:
        return payment_path(self.secret, self.doc.organization_id, self.doc.id)


# --- responses ---------------------------------------------------------------------------------------


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def _headers(form_origins: tuple[str, ...] = ()) -> dict[str, str]:
    """The surfaces' strict headers (the link is the key to the page: no referrer); the CSP allows only
    the inline stylesheet and forms posted to the gateway."""
    return security_headers(style_src=STYLE_SRC, form_origins=form_origins)


def _html(
    template: str, context: dict[str, Any], *, status: int = 200, form_origins: tuple[str, ...] = ()
) -> Response:
    context = {"css": CSS, "refresh": 0, **context}
    return html(_TEMPLATES, template, context, status=status, headers=_headers(form_origins))


def _message(
    labels: dict[str, str],
    lang: str,
    heading: str,
    text: str,
    *,
    status: int,
    back_url: str = "",
) -> Response:
    context = {
        "lang": lang,
        "title": heading,
        "heading": heading,
        "text": text,
        "alert": status >= 400,
        "back_url": back_url,
        "back_text": labels["back"],
    }
    return _html("message.html", context, status=status)


def _not_found() -> Response:
    """One answer for an unknown document, a wrong signature, a draft and a credit note."""
    labels = page_labels("en")
    return _message(labels, "en", labels["not_found_title"], labels["not_found_text"], status=404)


def _redirect(location: str) -> Response:
    return Response(status_code=303, headers={"Location": location, **_headers()})


# --- reading -----------------------------------------------------------------------------------------


def _open_link(c: Container, link: str) -> Linked | None:
    """The document a link opens, or None: malformed, unknown, wrongly signed, a draft or a credit note."""
    parsed = parse_link(link)
    if parsed is None:
        return None
    doc_id, signature = parsed
    secret = link_secret(c.db, c.clock, c.settings.secret_key)
    with c.db.read() as conn:
        org_id = document_organization(conn, doc_id)
        # The signature is checked for an unknown id too, so both cost the same.
        if not is_valid(secret, org_id or 0, doc_id, signature) or org_id is None:
            return None
        try:
            doc = get_document(conn, Scope(org_id), doc_id)
        except NotFoundError:
            return None
    if not has_hosted_page(doc.type, doc.status) or doc.number is None:  # a discarded draft has none
        return None
    return Linked(doc, secret)


# --- the page ----------------------------------------------------------------------------------------


def _receipt(row: dict[str, Any], labels: dict[str, str], loc: Locale, tz: ZoneInfo) -> dict[str, str]:
    when: datetime = row["settled_at"] or row["created_at"]
    card = ""
    if row["last4"]:
        brand = str(row["brand"] or "").replace("_", " ").title() or labels["receipt_card"]
        card = labels["card_ending"].format(brand=brand, last4=row["last4"])
    return {
        "amount": format_minor(row["amount_minor"], currency(row["currency"]), loc),
        "card": card,
        "date": _when(when, tz, loc),
        "reference": str(row["attempt_id"]),
        "invoice": str(row["number"] or ""),
    }


def _when(moment: datetime, tz: ZoneInfo, loc: Locale) -> str:
    """A moment as the seller's clock shows it: the locale's medium date with a short time (no seconds)."""
    local = moment.astimezone(tz)
    pattern = str(loc.datetime_formats["medium"]).replace("'", "")
    return pattern.replace("{1}", format_date(local, "medium", locale=loc)).replace(
        "{0}", format_time(local, "short", locale=loc)
    )


def _seller_tz(doc: DocumentView) -> ZoneInfo:
    try:
        return ZoneInfo(str(doc.seller.get("timezone") or "UTC"))
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _notice(kind: str, heading: str, text: str = "", **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "heading": heading, "text": text, "message": "", "code": "", "link": None, **extra}


def _render_page(
    c: Container,
    request: Request,
    linked: Linked,
    sealed: str,
    *,
    promo_code: str = "",
    promo_error: str = "",
    status_code: int = 200,
) -> Response:
    doc, secret = linked.doc, linked.secret
    result = open_result(secret, doc.id, sealed) if sealed else None
    with c.db.read() as conn:
        codes = codes_allowed(conn, doc.organization_id)  # issue 17: customers may enter a code
        converted_from, _ = number_and_status(conn, doc.organization_id, doc.converted_from_id)
        converted_to, converted_to_status = number_and_status(conn, doc.organization_id, doc.converted_to_id)
        replaced_by, _ = number_and_status(conn, doc.organization_id, doc.replaced_by_id)
        latest = latest_attempt(conn, doc.id)
        shown = attempt_of(conn, doc.id, result.get("a")) if result else None
        receipt_row = paying_capture(conn, doc.id)
        shown_receipt = paying_capture(conn, doc.id, shown["id"]) if shown else None
        logo = frozen_logo(conn, doc.seller.get("logo_sha256"))
    base = public_base(request)
    vm = build_view_model(
        doc, converted_from_number=converted_from, hosted_url=f"{base}{linked.path}", logo=logo
    )
    labels = page_labels(vm["language"])
    loc = Locale.parse(vm["locale"])
    tz = _seller_tz(doc)
    due = doc.amount_due_minor

    def money(minor: int) -> str:
        return format_minor(minor, doc.currency, loc)

    notice: dict[str, Any] | None = None
    receipt: dict[str, str] | None = None
    errors: dict[str, str] = {}
    refresh = 0
    can_pay = changeable = False
    if doc.status is DocumentStatus.PAID:
        notice = _notice("paid", labels["paid_heading"], labels["paid_text"])
        receipt = _receipt(receipt_row, labels, loc, tz) if receipt_row else None
    elif doc.status is DocumentStatus.CONVERTED:
        if receipt_row is not None:
            text = labels["paid_as_invoice"].format(number=receipt_row["number"] or "")
            notice = _notice("paid", labels["paid_heading"], text)
            receipt = _receipt(receipt_row, labels, loc, tz)
        else:
            link = None
            if doc.converted_to_id and converted_to_status in {s.value for s in COLLECTABLE}:
                link = {
                    "url": payment_path(secret, doc.organization_id, doc.converted_to_id),
                    "text": labels["converted_link"].format(number=converted_to or ""),
                }
            text = labels["converted_text"].format(number=converted_to or "")
            notice = _notice("info", labels["status_converted"], text, link=link)
    elif doc.status is DocumentStatus.VOID and doc.replaced_by_id is not None:
        link = {  # reissued with the customer's promotion code: its successor is the one to pay
            "url": payment_path(secret, doc.organization_id, doc.replaced_by_id),
            "text": labels["replaced_link"].format(number=replaced_by or ""),
        }
        text = labels["replaced_text"].format(number=replaced_by or "")
        notice = _notice("info", labels["status_void"], text, link=link)
    elif doc.status is DocumentStatus.VOID:
        notice = _notice("info", labels["status_void"], labels["void_text"])
    elif latest is not None and AttemptStatus(latest["status"]) in (
        AttemptStatus.PENDING,
        AttemptStatus.UNKNOWN,
    ):
        notice = _notice("confirming", labels["confirming_heading"], labels["confirming_text"])
        refresh = REFRESH_SECONDS
    elif latest is not None and AttemptStatus(latest["status"]) is AttemptStatus.AUTHORIZED:
        text = labels["authorized_text"].format(amount=money(latest["authorized_minor"]))
        notice = _notice("authorized", labels["authorized_heading"], text)
    else:
        can_pay = due > 0
        changeable = can_pay  # nothing in flight, something due: a proforma may still take a code
        status = AttemptStatus(shown["status"]) if shown else None
        if shown is not None and status in (AttemptStatus.FAILED, AttemptStatus.CANCELED):
            notice = _notice(
                "declined",
                labels["declined_heading"],
                labels["declined_text"],
                message=decline_message(
                    vm["language"], shown["error_code"] or "", shown["error_message"] or ""
                ),
                code=shown["error_code"] or "",
            )
        elif shown is not None and status is AttemptStatus.SUCCEEDED:
            notice = _notice(
                "received", labels["received_heading"], labels["received_text"].format(amount=money(due))
            )
            receipt = _receipt(shown_receipt, labels, loc, tz) if shown_receipt else None
        elif result is not None and isinstance(result.get("e"), str):
            code = str(result["e"])
            message = labels[f"error_{code}"] if code in OWN_ERRORS else str(result.get("m") or "")
            notice = _notice(
                "error", labels["error_heading"], labels["error_text"], message=message, code=code
            )
            if code in FIELD_OF_ERROR and message:
                errors[FIELD_OF_ERROR[code]] = message
        if can_pay and c.payments is None:
            can_pay = False
            notice = _notice("info", labels["payment"], labels["unavailable"])
        elif due <= 0 and notice is None:
            notice = _notice("info", labels["payment"], labels["nothing_due"])
    form: dict[str, Any] | None = None
    origins: tuple[str, ...] = ()
    gateway = c.settings.gateway_public_url or c.settings.gateway_url
    if can_pay and gateway:
        form = {
            "action": f"{gateway.rstrip('/')}/hosted/tokenize",
            "return_url": f"{base}{linked.path}/return",
            "state": issue_state(secret, doc.id, c.clock.now()),
            "button": labels["pay_button"].format(amount=money(due)),
            "errors": errors,
            "focus": next(iter(errors), None),
        }
        origins = tuple(o for o in (_origin(form["action"]), _origin(base)) if o)
    promo: dict[str, Any] | None = None
    token, fresh = _csrf_token(c, request, doc.id)
    takes_code = codes and changeable and doc.type is DocumentType.PROFORMA and not doc.amount_credited_minor
    if promo_error or takes_code:
        promo = {"action": f"{linked.path}/promotion_code", "code": promo_code, "error": promo_error}
        promo["csrf_token"] = token
        origins = tuple(dict.fromkeys((*origins, *(o for o in (_origin(base),) if o))))
    context = {
        "promo": promo,
        "promo_done": labels["promo_applied"] if result is not None and result.get("c") else "",
        "lang": vm["language"],
        "title": labels["page_title"].format(title=vm["document"]["title"], number=vm["document"]["number"]),
        "vm": vm,
        "t": labels,
        "status": doc.status.value,
        "notice": notice,
        "receipt": receipt,
        "form": form,
        "refresh": refresh,
        "show_instructions": form is None and due > 0 and notice is not None and notice["kind"] == "info",
        "pdf_url": f"{linked.path}/pdf",
    }
    response = _html("pay.html", context, status=status_code, form_origins=origins)
    if promo is not None and fresh:
        _csrf(c).set_cookie(response, token, secure=base.startswith("https://"), path=linked.path)
    return response


def _csrf(c: Container) -> Csrf:
    """The hosted page's CSRF tokens, in a cookie of its own, set for the one page (`/pay/{link}`)."""
    return Csrf(link_secret(c.db, c.clock, c.settings.secret_key), cookie=CSRF_COOKIE)


def _csrf_token(c: Container, request: Request, document_id: int) -> tuple[str, bool]:
    """The browser's token if still good for this document's page, else a fresh one (set as cookie)."""
    subject = f"pay:{document_id}"
    cookie = request.cookies.get(CSRF_COOKIE)
    if cookie and _csrf(c).is_valid(subject, cookie, cookie, c.clock.now()):
        return cookie, False
    return _csrf(c).issue(subject, c.clock.now()), True


@router.get("/pay/{link}")
def payment_page(link: str, request: Request) -> Response:
    """The document, its payment state and, while something is due, the card form."""
    c = container(request)
    linked = _open_link(c, link)
    if linked is None:
        return _not_found()
    return _render_page(c, request, linked, request.query_params.get("result", ""))


@router.get("/pay/{link}/pdf")
def payment_page_pdf(link: str, request: Request) -> Response:
    """The document's PDF for its customer: the signed link is the credential (no API key), so whoever
    may see the page may download what it shows, as `<number>.pdf`."""
    c = container(request)
    linked = _open_link(c, link)
    if linked is None:
        return _not_found()
    doc = linked.doc
    links = document_links(c.db, c.clock, public_base(request), c.settings.secret_key)
    path = ensure_pdf(
        c.db, c.clock, shared_renderer(), documents_dir(), doc.organization_id, doc.id, links=links
    )
    return FileResponse(
        path,
        media_type="application/pdf",
        filename=pdf_filename(doc.number, doc.id),
        content_disposition_type="attachment",
        headers={"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer"},
    )


@router.get("/pay/{link}/return")
def payment_return(link: str, request: Request) -> Response:
    """Where the gateway sends the browser back: check the state, attach the card, charge it, and
    redirect to the page with the sealed outcome."""
    c = container(request)
    linked = _open_link(c, link)
    if linked is None:
        return _not_found()
    doc, secret = linked.doc, linked.secret
    query = request.query_params
    if not state_is_valid(secret, doc.id, query.get("state", ""), c.clock.now()):
        lang = language_of(doc.buyer.get("locale"))
        labels = page_labels(lang)
        return _message(
            labels, lang, labels["expired_title"], labels["expired_text"], status=400, back_url=linked.path
        )

    def back(result: dict[str, Any] | None = None) -> Response:
        """To the page, scrolled to the payment section (on a phone it is below the document)."""
        if result is None:
            return _redirect(f"{linked.path}#pay")
        return _redirect(f"{linked.path}?{urlencode({'result': seal_result(secret, doc.id, result)})}#pay")

    error = query.get("error", "")
    if error:
        return back({"e": error[:64], "m": query.get("message", "")[:300]})
    provider = c.payments
    if provider is None or doc.status not in COLLECTABLE or doc.amount_due_minor <= 0:
        return back()  # the page tells why there is nothing to charge
    try:
        method_id = add_card(
            c.db,
            c.clock,
            provider,
            doc.organization_id,
            doc.customer_id,
            token=query.get("token", ""),
            make_default=False,  # a customer with no card gets this one as default all the same
            actor=ACTOR,
        )
        outcome = charge_document(
            c.db,
            c.clock,
            provider,
            doc.organization_id,
            doc.id,
            method_id=method_id,
            trigger=Trigger.HOSTED_PAGE,
            actor=ACTOR,
        )
    except InvalidFieldError:
        return back({"e": "card_rejected"})
    except InvalidStateError:
        return back()  # paid meanwhile, or a payment already in flight: the page shows which
    except (ProviderError, ProviderUnreachable, OutcomeUnknown):
        return back({"e": "provider_unavailable"})
    return back({"a": outcome.attempt_id})


@router.post("/pay/{link}/promotion_code")
def payment_page_code(
    link: str,
    request: Request,
    csrf_token: Annotated[str, Form()] = "",
    code: Annotated[str, Form()] = "",
) -> Response:
    """A promotion code entered on the page (issue 17): an open proforma is reissued with the discount
    and the browser goes to the new one's page; a refusal shows the page again with why."""
    c = container(request)
    linked = _open_link(c, link)
    if linked is None:
        return _not_found()
    doc, secret = linked.doc, linked.secret
    lang = language_of(doc.buyer.get("locale"))
    labels = page_labels(lang)
    subject = f"pay:{doc.id}"
    if not _csrf(c).check_request(request, subject, c.clock.now(), {"csrf_token": csrf_token}):
        return _message(
            labels, lang, labels["expired_title"], labels["promo_expired"], status=403, back_url=linked.path
        )
    code = code[:128]
    try:
        out = redeem_on_document(c.db, c.clock, doc.organization_id, doc.id, code, actor=ACTOR)
    except DomainError as exc:
        text, status = refusal_message(labels, exc)
        return _render_page(c, request, linked, "", promo_code=code, promo_error=text, status_code=status)
    path = payment_path(secret, doc.organization_id, out.document_id)
    return _redirect(f"{path}?{urlencode({'result': seal_result(secret, out.document_id, {'c': 1})})}#pay")
