"""Downgrade credits (ADR 0003): proration credits that would turn a subscription's next document
negative are held off it and issued as credit notes on the invoices that billed the credited periods, so
the customer's credit pays the new document; where no invoice can take them, they go back on it."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.context import OrgContext
from fiscus.adapters.db.documents import NewDocument
from fiscus.domain.clock import Clock
from fiscus.domain.credit_notes import CreditMode, CreditRequest
from fiscus.domain.documents import ComputedDocument, DocumentType, LineInput, compute_document
from fiscus.domain.errors import DomainError
from fiscus.domain.money import Currency, from_minor
from fiscus.services.credit_notes import credit_disposition_for, credit_invoice

log = logging.getLogger(__name__)


@dataclass(slots=True)
class HeldCredits:
    """Proration credits kept off a subscription document they would turn negative (a downgrade whose
    unused time is worth more than the next charge). Each group is issued as a credit note on the invoice
    that billed its period, as Lago does, and the customer's credit then pays the new invoice; where no
    invoice can take it (a proforma not yet paid, a draft-only organisation, too little left to credit)
    the lines go back on the document as before."""

    document: NewDocument
    with_credits: ComputedDocument
    """The document with the credit lines, for when they go back on it."""
    groups: list[tuple[datetime, int, list[int]]]
    """(end of the credited period, credit in minor units incl. tax, its pending item ids)."""


def hold_credits(
    doc: NewDocument,
    carried: list[dict[str, Any]],
    lines: list[LineInput],
    periodic: int,
    cur: Currency,
    org: OrgContext,
) -> HeldCredits:
    """Take the credit lines off a document that would be negative (see `HeldCredits`); `lines` are its
    `periodic` subscription lines followed by one line per carried pending item."""
    kept = lines[:periodic]
    credits: dict[datetime, list[tuple[dict[str, Any], LineInput]]] = defaultdict(list)
    for p, line in zip(carried, lines[periodic:], strict=True):
        if p["sign"] < 0:
            credits[p["period_end"]].append((p, line))
        else:
            kept.append(line)
    groups = [
        (
            period_end,
            -compute_document(cur, [line for _p, line in group], org.rounding).total_minor,
            [p["id"] for p, _line in group],
        )
        for period_end, group in sorted(credits.items())
    ]
    with_credits = doc.computed
    credited = {pid for _end, _amount, ids in groups for pid in ids}
    doc.computed = compute_document(cur, kept, org.rounding)
    doc.pending_item_ids = [pid for pid in doc.pending_item_ids if pid not in credited]
    return HeldCredits(doc, with_credits, groups)


def issue_held_credits(conn: Connection, clock: Clock, held: HeldCredits, actor: str, now: datetime) -> None:
    doc = held.document
    cur = doc.computed.currency
    try:
        with conn.begin_nested():
            for period_end, amount, pending_ids in held.groups:
                invoice_id = _period_invoice(conn, doc.subscription_id, period_end)
                disposition = (
                    None
                    if invoice_id is None
                    else credit_disposition_for(conn, doc.org.id, invoice_id, amount)
                )
                if invoice_id is None or disposition is None:
                    raise _NoInvoiceToCredit
                note_id = credit_invoice(
                    conn,
                    clock,
                    doc.org.id,
                    invoice_id,
                    CreditRequest(CreditMode.AMOUNT, amount=from_minor(amount, cur)),
                    "Unused time after a change of plan",
                    disposition,
                    actor,
                    now,
                )
                conn.execute(
                    update(t.pending_items)
                    .where(t.pending_items.c.id.in_(pending_ids))
                    .values(document_id=note_id)
                )
    except (_NoInvoiceToCredit, DomainError) as exc:
        log.info("proration credit of subscription %s stays on its document: %r", doc.subscription_id, exc)
        doc.computed = held.with_credits
        doc.pending_item_ids += [pid for _end, _amount, ids in held.groups for pid in ids]


class _NoInvoiceToCredit(Exception):
    """No final invoice of the credited period can take the whole credit."""


def _period_invoice(conn: Connection, subscription_id: int | None, period_end: datetime) -> int | None:
    """The final invoice that billed a subscription period: its document, or the invoice its proforma
    became."""
    sp, d = t.subscription_periods.c, t.documents.c
    row = conn.execute(
        select(d.id, d.type)
        .join(t.subscription_periods, sp.document_id == d.id)
        .where(sp.subscription_id == subscription_id, sp.period_end == period_end)
    ).first()
    if row is None or row.type == DocumentType.INVOICE.value:
        return None if row is None else int(row.id)
    converted = conn.execute(
        select(d.id).where(d.converted_from_id == row.id, d.type == DocumentType.INVOICE.value)
    ).scalar_one_or_none()
    return None if converted is None else int(converted)
