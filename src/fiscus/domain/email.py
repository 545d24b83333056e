"""The email port: what a message is, which messages exist, and the pure rules around them (message
keys and ids, backoff, the dunning policy). No I/O here: adapters in `adapters/email/` send, the
worker (`services/emails/delivery.py`) decides when."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Final, Protocol

from fiscus.domain.errors import InvalidFieldError
from fiscus.domain.payments import FinalAction, RetryPolicy


class EmailKind(StrEnum):
    INVOICE_ISSUED = "invoice_issued"
    PROFORMA_ISSUED = "proforma_issued"
    CREDIT_NOTE_ISSUED = "credit_note_issued"
    PAYMENT_RECEIPT = "payment_receipt"
    PAYMENT_FAILED = "payment_failed"
    FINAL_NOTICE = "final_notice"
    FINAL_ACTION = "final_action"
    CARD_EXPIRING = "card_expiring"
    TRIAL_ENDING = "trial_ending"
    RENEWAL_UPCOMING = "renewal_upcoming"
    PORTAL_LOGIN = "portal_login"


TRANSACTIONAL: Final = frozenset(
    {
        EmailKind.INVOICE_ISSUED,
        EmailKind.PROFORMA_ISSUED,
        EmailKind.CREDIT_NOTE_ISSUED,
        EmailKind.PAYMENT_RECEIPT,
        EmailKind.FINAL_ACTION,
        EmailKind.PORTAL_LOGIN,
    }
)
"""Documents, receipts, the notice that dunning ended in an action (the invoice written off, the
subscription cancelled: a change to the customer's account, not a reminder) and login links the
customer is owed or asked for: no `List-Unsubscribe`, and an unsubscribe never stops them (only a bounce
does). Every other kind is a reminder: it carries `List-Unsubscribe` (RFC 8058)."""

ALWAYS_SENT: Final = frozenset({EmailKind.PORTAL_LOGIN})
"""Kinds an organisation cannot switch off: a login link the customer just asked for must arrive."""

DOCUMENT_KINDS: Final = frozenset(
    {
        EmailKind.INVOICE_ISSUED,
        EmailKind.PROFORMA_ISSUED,
        EmailKind.CREDIT_NOTE_ISSUED,
        EmailKind.PAYMENT_RECEIPT,
        EmailKind.PAYMENT_FAILED,
        EmailKind.FINAL_NOTICE,
        EmailKind.FINAL_ACTION,
    }
)
"""Kinds about one document (previewed with a document id); the others are about a customer."""

FINAL_ACTION_EMAILS: Final = ("mark_uncollectible", "cancel_subscription")
"""The dunning final actions a `final_action` email announces (`leave_open` changes nothing to tell)."""

LOCALES: Final = ("en", "bg", "ru", "kk")


def email_locale(locale: str | None) -> str:
    """The template language for a customer's locale (`bg-BG` → `bg`); English when we have none."""
    lang = (locale or "en").split("-")[0].split("_")[0].lower()
    return lang if lang in LOCALES else "en"


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """One composed message for one recipient, independent of how it is sent."""

    sender: str
    recipient: str
    subject: str
    text: str
    html: str
    message_id: str
    reply_to: str | None = None
    list_unsubscribe: str | None = None
    attachments: tuple[Attachment, ...] = ()
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class PermanentFailure(Exception):
    """The server refused for good (SMTP 5xx). `address`: it refused the recipient (the address bounces
    and gets no more mail); otherwise it refused this message only (it fails, the address stays)."""

    def __init__(self, code: int, message: str, *, address: bool) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.address = address


class TemporaryFailure(Exception):
    """Try again later (SMTP 4xx, connection refused, timeout)."""


class Mailer(Protocol):
    """Hands one message to the mail system; returns once it was accepted, raises PermanentFailure or
    TemporaryFailure otherwise."""

    def send(self, message: OutgoingEmail, raw: bytes) -> None: ...


def message_key(kind: EmailKind, entity: str, entity_id: int, suffix: str = "") -> str:
    """The key of one message whatever its recipients: the outbox is UNIQUE on (org, key, recipient),
    so the same cause can never queue it twice (`invoice_issued:document:42`)."""
    return f"{kind.value}:{entity}:{entity_id}" + (f":{suffix}" if suffix else "")


def message_id(key: str, organization_id: int, recipient: str, domain: str) -> str:
    """A stable `Message-ID` for (key, recipient): a resend after a crash carries the same id, which
    receiving systems (and the tests) use to spot a duplicate."""
    digest = hashlib.sha256(f"{organization_id}|{key}|{recipient.lower()}".encode()).hexdigest()[:24]
    local = re.sub(r"[^A-Za-z0-9.-]+", ".", key)[:60].strip(".")
    return f"<{local}.{digest}@{domain}>"


BACKOFF: Final = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(hours=24),
)
"""The wait after the n-th temporary failure; after the last the message is failed (about 2 days)."""


def retry_delay(failures: int) -> timedelta | None:
    """The wait before another try after `failures` temporary failures; None: give up."""
    return BACKOFF[failures - 1] if 1 <= failures <= len(BACKOFF) else None


class StepEmail(StrEnum):
    PAYMENT_FAILED = "payment_failed"
    FINAL_NOTICE = "final_notice"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class DunningPolicy:
    """One organisation's dunning: the retry schedule (days after the first failure), the email after
    each failed try (`steps[i]` after failure i + 1, so one more step than retries) and the final action
    after the last try."""

    retry: RetryPolicy
    steps: tuple[StepEmail, ...]

    @staticmethod
    def default_steps(retries: int) -> tuple[StepEmail, ...]:
        """A failure email after each try, the final notice before the last retry."""
        steps = [StepEmail.PAYMENT_FAILED] * (retries + 1)
        if retries:
            steps[retries - 1] = StepEmail.FINAL_NOTICE
        return tuple(steps)

    @staticmethod
    def parse(days: Sequence[object], final_action: str, steps: Sequence[object] | None) -> DunningPolicy:
        retry = RetryPolicy.parse(days, final_action)
        if steps is None:
            return DunningPolicy(retry, DunningPolicy.default_steps(len(retry.days)))
        if not isinstance(steps, list | tuple) or len(steps) != len(retry.days) + 1:
            raise InvalidFieldError(
                "dunning.emails",
                f"must list one email per failed try: {len(retry.days) + 1} for {len(retry.days)} retries",
            )
        parsed: list[StepEmail] = []
        for i, s in enumerate(steps):
            try:
                parsed.append(StepEmail(str(s)))
            except ValueError:
                raise InvalidFieldError(
                    f"dunning.emails.{i}", "must be one of payment_failed, final_notice, none"
                ) from None
        if StepEmail.FINAL_NOTICE in parsed[len(retry.days) :]:
            raise InvalidFieldError("dunning.emails", "a final notice needs a retry after it")
        return DunningPolicy(retry, tuple(parsed))

    def email_after(self, failures: int, retrying: bool) -> EmailKind | None:
        """The email after the `failures`-th failed try; a final notice only while a retry follows (a
        hard decline ends the schedule early: then it is a plain failure email)."""
        if failures < 1:
            return None
        step = self.steps[min(failures, len(self.steps)) - 1]
        if step is StepEmail.NONE:
            return None
        if step is StepEmail.FINAL_NOTICE and retrying:
            return EmailKind.FINAL_NOTICE
        return EmailKind.PAYMENT_FAILED

    def as_dict(self) -> dict[str, object]:
        return {
            "retry_days": list(self.retry.days),
            "final_action": self.retry.final_action.value,
            "emails": [s.value for s in self.steps],
        }


FINAL_ACTIONS: Final = tuple(a.value for a in FinalAction)
