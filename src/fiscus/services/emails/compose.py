"""Composing customers' emails from stored data: the words (`labels.py`, in the customer's language), the
organisation's name, logo and colour, the document's figures as its PDF and hosted page show them
(`queries/documents.py`), and the MIME message (text and HTML alternatives, inline logo, attachments).

Reads only; the PDF attachment is added by the caller (`delivery.py`) from the same stored file that
`GET /api/v1/documents/{id}/pdf` serves.
"""

from __future__ import annotations

import email.policy
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from email.message import EmailMessage
from email.utils import formataddr, parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy import Connection, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.email_queue import email_settings
from fiscus.documents.view_model import format_minor, format_money
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.domain.email import (
    DOCUMENT_KINDS,
    FINAL_ACTION_EMAILS,
    TRANSACTIONAL,
    Attachment,
    EmailKind,
    OutgoingEmail,
    email_locale,
)
from fiscus.domain.errors import InvalidFieldError, NotFoundError
from fiscus.domain.money import Currency
from fiscus.queries.documents import get_document
from fiscus.queries.scope import Scope
from fiscus.services.emails.labels import LABELS
from fiscus.services.payment_links import has_hosted_page, payment_url
from fiscus.web.pay.labels import decline_message

DEFAULT_COLOR = "#1f4b99"
_ENV = Environment(
    loader=PackageLoader("fiscus.services.emails", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True, slots=True)
class Links:
    """Where links in emails point: the instance's public URL and the key that signs hosted page links
    (the same as the API's `hosted_url`)."""

    base_url: str
    secret: bytes

    def hosted(self, org_id: int, document_id: int) -> str:
        return payment_url(self.base_url, self.secret, org_id, document_id)

    def cards(self, org_slug: str) -> str:
        """The customer's cards in the portal: a card-expiring email is about no document, so it has no
        hosted page of its own; the portal asks for the sign-in link first when there is no session."""
        return f"{self.base_url.rstrip('/')}/portal/{org_slug}/payment-methods"

    def unsubscribe(self, org_id: int, address: str) -> str:
        token = unsubscribe_token(self.secret, org_id, address)
        return f"{self.base_url.rstrip('/')}/email/unsubscribe/{org_id}/{token}"


def unsubscribe_token(secret: bytes, org_id: int, address: str) -> str:
    """An address's unsubscribe token: the address (hex) and its MAC, so the link needs no lookup table."""
    mac = hmac.new(secret, f"unsub:v1:{org_id}:{address.lower()}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{address.lower().encode().hex()}.{mac}"


def address_of_token(secret: bytes, org_id: int, token: str) -> str | None:
    """The address an unsubscribe token names, or None when it is not one of ours."""
    hex_address, _, mac = token.partition(".")
    try:
        address = bytes.fromhex(hex_address).decode()
    except ValueError:
        return None
    good = unsubscribe_token(secret, org_id, address).partition(".")[2]
    return address if hmac.compare_digest(good, mac) else None


@dataclass(frozen=True, slots=True)
class Content:
    """What a message says, before it has a sender and a recipient."""

    kind: EmailKind
    lang: str
    subject: str
    text: str
    html: str
    logo: Attachment | None = None
    document_id: int | None = None
    unsubscribe_url: str | None = None
    org_name: str = ""
    reply_to: str | None = None
    from_address: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def compose(
    conn: Connection,
    organization_id: int,
    kind: EmailKind,
    *,
    customer_id: int,
    document_id: int | None,
    data: dict[str, Any],
    locale: str | None,
    links: Links,
    recipient: str | None = None,
) -> Content:
    """The content of one email. NotFoundError for another organisation's customer or document."""
    o = t.organizations.c
    org = conn.execute(select(t.organizations).where(o.id == organization_id)).mappings().one_or_none()
    if org is None:
        raise NotFoundError("organization", organization_id)
    c = t.customers.c
    customer = (
        conn.execute(select(t.customers).where(c.id == customer_id, c.organization_id == organization_id))
        .mappings()
        .one_or_none()
    )
    if customer is None:
        raise NotFoundError("customer", customer_id, field="customer_id")
    cfg = email_settings(conn, [organization_id])[organization_id]
    lang = email_locale(locale or customer["locale"])
    loc = Locale.parse(lang)
    words = LABELS[lang]
    org_name = str(org["trading_name"] or org["legal_name"])
    tz = _zone(customer["timezone"])
    values: dict[str, Any] = {"org": org_name, "name": customer["name"]}
    facts: list[tuple[str, str]] = []
    paragraphs: list[str] = []
    button: dict[str, str] | None = None
    test_mode = org["mode"] == "test"
    label = kind.value
    if kind is EmailKind.FINAL_ACTION:  # what dunning did: the words are per action
        action = str(data.get("action") or "")
        label = f"{kind.value}.{action if action in FINAL_ACTION_EMAILS else FINAL_ACTION_EMAILS[0]}"
    if kind in DOCUMENT_KINDS:
        if document_id is None:
            raise InvalidFieldError("document_id", f"a {kind.value} email is about a document")
        doc = get_document(conn, Scope(organization_id), document_id, lines=False)
        if doc.customer_id != customer_id:
            raise NotFoundError("document", document_id)
        test_mode = not doc.livemode

        def money(minor: int) -> str:
            return format_minor(minor, doc.currency, loc)

        values.update(
            number=doc.number or f"#{doc.id}",
            total=money(doc.total_minor),
            amount_due=money(doc.amount_due_minor),
            due_date=_day(doc.due_date, loc),
            amount=(data.get("amount") and _amount(data, doc.currency, loc)) or money(doc.amount_paid_minor),
        )
        facts = [(words["number"], values["number"]), (words["total"], values["total"])]
        if kind in (EmailKind.INVOICE_ISSUED, EmailKind.PROFORMA_ISSUED) and doc.amount_due_minor > 0:
            facts += [(words["amount_due"], values["amount_due"]), (words["due_date"], values["due_date"])]
        hosted = has_hosted_page(doc.type, doc.status)
        if kind in (EmailKind.PAYMENT_FAILED, EmailKind.FINAL_NOTICE):
            next_at = data.get("next_payment_attempt_at")
            values["next_try"] = _moment(datetime.fromisoformat(next_at), tz, loc) if next_at else ""
            paragraphs.append(words[f"{kind.value}.intro"].format(**values))
            code = str(data.get("error_code") or "")
            if code:
                paragraphs.append(words["reason"].format(reason=decline_message(lang, code, code)))
            if kind is EmailKind.PAYMENT_FAILED:
                paragraphs.append(words["next_try" if next_at else "no_retry"].format(**values))
            if hosted and doc.status is DocumentStatus.OPEN:
                button = {"label": words["update_card"], "url": links.hosted(organization_id, doc.id)}
        else:
            paragraphs.append(words[f"{label}.intro"].format(**values))
            if hosted:
                owed = doc.status in (DocumentStatus.OPEN, DocumentStatus.UNCOLLECTIBLE)
                payable = owed and doc.amount_due_minor > 0
                button = {
                    "label": words["pay" if payable else "view"],
                    "url": links.hosted(organization_id, doc.id),
                }
        if doc.type is DocumentType.CREDIT_NOTE:
            button = None
    elif kind is EmailKind.PORTAL_LOGIN:
        values["until"] = _moment(datetime.fromisoformat(str(data["expires_at"])), tz, loc)
        paragraphs += [words["portal_login.intro"].format(**values), words["portal_login.ignore"]]
        button = {"label": words["portal_login.button"], "url": str(data["url"])}
    else:
        values.update(_customer_values(conn, kind, data, loc, tz))
        paragraphs.append(words[f"{kind.value}.intro"].format(**values))
        if kind is EmailKind.CARD_EXPIRING:  # like the payment-failed email: a way to give a new card
            button = {"label": words["update_card"], "url": links.cards(str(org["slug"]))}
    address = ", ".join(
        p for p in (org["address_line1"], org["postal_code"], org["city"], org["country"]) if p
    )
    unsubscribe_url = (
        links.unsubscribe(organization_id, recipient or customer["email"])
        if kind not in TRANSACTIONAL
        else None
    )
    logo = _logo(conn, org["logo_sha256"])
    context = {
        "lang": lang,
        "subject": words[f"{label}.subject"].format(**values),
        "org": org_name,
        "color": cfg["brand_color"] or DEFAULT_COLOR,
        "logo_cid": "logo@fiscus" if logo else None,
        "test_mode": words["test_mode"] if test_mode else "",
        "greeting": words["greeting"].format(**values),
        "paragraphs": paragraphs,
        "facts": facts,
        "button": button,
        "sent_by": words["sent_by"].format(**values),
        "address": address,
        "unsubscribe_url": unsubscribe_url,
        "unsubscribe": words["unsubscribe"],
    }
    context["paragraphs"] = [_one_stop(p) for p in paragraphs]
    return Content(
        kind=kind,
        lang=lang,
        subject=str(context["subject"]),
        text=_ENV.get_template("email.txt").render(context),
        html=_ENV.get_template("email.html").render(context),
        logo=logo,
        document_id=document_id,
        unsubscribe_url=unsubscribe_url,
        org_name=org_name,
        reply_to=cfg["reply_to"] or org["email"],
        from_address=_sender(cfg, org_name),
    )


def _one_stop(text: str) -> str:
    """A sentence ending in an abbreviated date ("29 януари 2026 г.") gets one full stop, not two."""
    return re.sub(r"\.\.(?=\s|$)", ".", text)


def _sender(cfg: dict[str, Any], org_name: str) -> str | None:
    if not cfg["from_address"]:
        return None
    return formataddr((cfg["from_name"] or org_name, cfg["from_address"]))


def build_message(
    content: Content,
    *,
    recipient: str,
    message_id: str,
    default_from: str,
    attachments: tuple[Attachment, ...] = (),
) -> OutgoingEmail:
    """The message for one recipient: the organisation's sender (else the instance's, in the
    organisation's name), its reply-to, and `List-Unsubscribe` on reminders only."""
    sender = content.from_address or formataddr(
        (content.org_name, parseaddr(default_from)[1] or default_from)
    )
    headers: tuple[tuple[str, str], ...] = (("Content-Language", content.lang),)
    if content.logo is not None:
        attachments = (content.logo, *attachments)
        headers += (("X-Fiscus-Inline-Logo", "1"),)
    return OutgoingEmail(
        sender=sender,
        recipient=recipient,
        subject=content.subject,
        text=content.text,
        html=content.html,
        message_id=message_id,
        reply_to=content.reply_to,
        list_unsubscribe=content.unsubscribe_url,
        attachments=attachments,
        headers=headers,
    )


def to_mime(message: OutgoingEmail, *, date_header: str) -> bytes:
    """The RFC 5322 bytes: multipart/mixed of a multipart/alternative (text, then HTML with the logo
    inline as a related part) and the attachments."""
    mime = EmailMessage()
    mime["Subject"] = message.subject
    mime["From"] = message.sender
    mime["To"] = message.recipient
    mime["Date"] = date_header
    mime["Message-ID"] = message.message_id
    if message.reply_to:
        mime["Reply-To"] = message.reply_to
    if message.list_unsubscribe:
        mime["List-Unsubscribe"] = f"<{message.list_unsubscribe}>"
        mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    inline_logo = any(name == "X-Fiscus-Inline-Logo" for name, _ in message.headers)
    mime.set_content(message.text)
    mime.add_alternative(message.html, subtype="html")
    attachments = list(message.attachments)
    if inline_logo and attachments:
        logo = attachments.pop(0)
        html_part = mime.get_body(("html",))
        assert isinstance(html_part, EmailMessage)
        maintype, subtype = logo.content_type.split("/", 1)
        html_part.add_related(logo.data, maintype=maintype, subtype=subtype, cid="<logo@fiscus>")
    for a in attachments:
        maintype, subtype = a.content_type.split("/", 1)
        mime.add_attachment(a.data, maintype=maintype, subtype=subtype, filename=a.filename)
    for name, value in message.headers:  # after the body: setting content clears Content-* headers
        if name != "X-Fiscus-Inline-Logo":
            mime[name] = value
    return bytes(mime.as_bytes(policy=email.policy.SMTP))  # CRLF: SMTP sends bytes as they are


def _logo(conn: Connection, sha256: str | None) -> Attachment | None:
    """The organisation's PNG logo for inline use; an SVG logo is left out (most mail clients do not
    show SVG), the name stands in."""
    if not sha256:
        return None
    lg = t.organization_logos.c
    row = conn.execute(select(lg.content_type, lg.data).where(lg.sha256 == sha256).limit(1)).first()
    if row is None or row.content_type != "image/png":
        return None
    return Attachment("logo.png", "image/png", bytes(row.data))


def _customer_values(
    conn: Connection, kind: EmailKind, data: dict[str, Any], loc: Locale, tz: ZoneInfo
) -> dict[str, str]:
    if kind is EmailKind.CARD_EXPIRING:
        expiry = date(int(data["exp_year"]), int(data["exp_month"]), 1)
        return {
            "brand": str(data.get("brand") or "").title(),
            "last4": str(data.get("last4") or ""),
            "expiry": format_date(expiry, "LLLL yyyy", locale=loc),
        }
    return {"date": _moment(datetime.fromisoformat(str(data["at"])), tz, loc, with_time=False)}


def _amount(data: dict[str, Any], cur: Currency, loc: Locale) -> str:
    return format_money(Decimal(str(data["amount"])), cur, loc)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _day(day: date | None, loc: Locale) -> str:
    return "" if day is None else format_date(day, "long", locale=loc)


def _moment(moment: datetime, tz: ZoneInfo, loc: Locale, *, with_time: bool = True) -> str:
    local = moment.astimezone(tz)
    if not with_time:
        return format_date(local.date(), "long", locale=loc)
    return format_datetime(local, "d MMMM y, HH:mm", locale=loc)
