"""What the three compatibility dialects share: who is calling, which documents they may see, and the
absolute base URL their links are built from. Each dialect is a thin presenter over
`fiscus.queries.documents` and `fiscus.queries.payments`; none of them computes anything."""

from __future__ import annotations

from datetime import datetime

from fastapi import Request

from fiscus.api.deps import resolve_principal
from fiscus.api.errors import ApiError
from fiscus.api.links import HostedLink, hosted_links, public_base
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.queries.documents import DocumentFilters, DocumentView, LineView
from fiscus.queries.scope import Scope
from fiscus.services.access import Principal

BILLED_TYPES = (DocumentType.INVOICE, DocumentType.PROFORMA)

__all__ = [
    "BILLED_TYPES",
    "HostedLink",
    "billed_documents",
    "billed_listed",
    "billed_period",
    "bounded_int",
    "caller",
    "hosted_links",
    "line_period",
    "public_base",
    "scope_of",
]


def caller(request: Request) -> Principal | ApiError:
    """The authenticated caller, or the refusal for the dialect to render in its own error shape."""
    try:
        return resolve_principal(request)
    except ApiError as exc:
        return exc


def scope_of(principal: Principal) -> Scope:
    return Scope(principal.organization_id, principal.customer_id)


def billed_documents(*, issued_only: bool) -> DocumentFilters:
    """Invoices and proformas (drafts too unless `issued_only`), never a draft discarded unissued: the
    seeds' clients know a void document only as one that was issued (it has a number)."""
    return DocumentFilters(types=BILLED_TYPES, issued_only=issued_only, discarded=False)


def billed_listed(doc: DocumentView) -> bool:
    """Whether a dialect shows the document at all (`billed_documents` without its draft filter)."""
    return doc.type in BILLED_TYPES and not (doc.status is DocumentStatus.VOID and doc.sequence is None)


def billed_period(doc: DocumentView) -> tuple[datetime, datetime]:
    """The period a dialect shows for a document (seed 000 `start_at`/`end_at`, seed 001
    `periodStart`/`periodEnd`, which their documents show as date-times). A subscription document bills
    its period. A one-off order has no period of its own: it is billed for the instant it was placed, so
    its document shows the first order's instant to the last one's (both ends the same instant for one
    order). A document with neither (none is made today) shows its own creation instant."""
    if doc.period_start is not None and doc.period_end is not None:
        return doc.period_start, doc.period_end
    if doc.ordered_at:
        return min(doc.ordered_at.values()), max(doc.ordered_at.values())
    return doc.created_at, doc.created_at


def line_period(doc: DocumentView, line: LineView) -> tuple[datetime, datetime]:
    """A line's period: its own (a subscription or proration line), else the instant its order was
    placed, else its document's period (`billed_period`)."""
    if line.period_start is not None and line.period_end is not None:
        return line.period_start, line.period_end
    placed = doc.ordered_at.get(line.order_id) if line.order_id is not None else None
    if placed is not None:
        return placed, placed
    return billed_period(doc)


def bounded_int(text: str, max_digits: int = 4300) -> int | None:
    """Python's `int(text)` (surrounding whitespace, a sign, `_` between digits), or None where it
    fails, without ever raising: a value with more than `max_digits` significant digits is None before
    `int()` sees it, so Python's int-string limit (4,300 digits, a ValueError deep inside a handler) is
    never reached and no caller needs a special case for it. Every integer a dialect reads from a path
    or query that its own grammar (a bounded regex) does not already bound goes through here."""
    body = text.strip().lstrip("+-").replace("_", "").lstrip("0")
    if len(body) > max_digits:
        return None
    try:
        return int(text)
    except ValueError:
        return None
