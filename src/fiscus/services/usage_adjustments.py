"""Events that arrive after their period's usage was billed: never a silent change, never a silent drop.

The ingesting transaction marks each billed period a new event falls in, and the billed periods after
it (a weighted sum carries its level forward) (`usage_late`). The billing
run then measures the period again with the code that billed it and compares each charge (price and
group) with what its documents already billed (`usage_lines`, summed over the original and any earlier
adjustment). A difference becomes a document of its own, by the organisation's `late_policy`:

* `invoice`: the net change; more usage is a supplementary invoice whose lines are the new parts and
  the billed parts taken back (negative quantities), so every line still reads quantity × price; less
  usage (a negative increment) is a credit note for the difference against the original invoice;
* `credit_note`: the original usage invoice is credited in full and the period invoiced again whole.

The mark is removed in the transaction that issues the adjustment, so a crash leaves it for the next run.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, literal, select, tuple_, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.context import load_customers, load_orgs, load_prices
from fiscus.adapters.db.documents import NewDocument, persist_documents
from fiscus.adapters.db.types import UtcDateTime
from fiscus.adapters.db.upsert import insert_for
from fiscus.domain.clock import Clock
from fiscus.domain.credit_notes import CreditMode, CreditRequest
from fiscus.domain.documents import ComputedDocument, DocumentType, LineInput, LineKind, compute_document
from fiscus.domain.money import currency, from_minor
from fiscus.domain.periods import Period
from fiscus.services.credit_notes import credit_disposition_for, credit_invoice
from fiscus.services.discount_billing import apply_discounts
from fiscus.services.payments.collection import schedule_collection
from fiscus.services.usage_adjustment_discounts import coupon_allowances, period_discounts, taken_back
from fiscus.services.usage_charges import usage_lines_for
from fiscus.services.usage_prices import load_usage_prices
from fiscus.services.usage_settings import load_usage_settings

log = logging.getLogger(__name__)

_CARRIED = (
    "organization_id",
    "subscription_id",
    "price_id",
    "metric_id",
    "group_value",
    "period_start",
    "period_end",
    "quantity",
    "events",
)


def mark_late(conn: Connection, org_id: int, rows: list[dict[str, Any]], now: datetime) -> None:
    """Mark the billed usage periods the newly stored events fall in, and the billed periods after them
    (a weighted sum's level carries over), inside the ingesting transaction."""
    if not rows:
        return
    customers = sorted({r["customer_id"] for r in rows})
    earliest = min(r["occurred_at"] for r in rows)
    p, s = tu.usage_periods.c, t.subscriptions.c
    billed = conn.execute(
        select(p.subscription_id, p.period_start, p.period_end, s.customer_id)
        .join(t.subscriptions, s.id == p.subscription_id)
        .where(p.organization_id == org_id, s.customer_id.in_(customers), p.period_end > earliest)
    ).all()
    if not billed:
        return
    marks = set()
    for r in rows:
        for sid, start, end, cid in billed:
            # a later billed period too: a weighted sum carries the level an increment changes forward
            if cid == r["customer_id"] and r["occurred_at"] < end:
                marks.add((sid, start))
    if marks:
        values = [
            {"organization_id": org_id, "subscription_id": sid, "period_start": start, "marked_at": now}
            for sid, start in sorted(marks)
        ]
        conn.execute(insert_for(conn, tu.usage_late).values(values).on_conflict_do_nothing())


def adjust_late(
    conn: Connection,
    clock: Clock,
    org_id: int | None,
    limit: int,
    actor: str,
    run_id: int | None,
    after: tuple[int, int, datetime] | None = None,
) -> tuple[int, int, datetime] | None:
    """Adjust up to `limit` marked periods after the key `after` (in the caller's transaction); the last
    key handled, or None when there was none (a mark that cannot be adjusted yet stays, and is passed)."""
    lt = tu.usage_late.c
    mark_key = tuple_(lt.organization_id, lt.subscription_id, lt.period_start)
    query = (
        select(tu.usage_late).order_by(lt.organization_id, lt.subscription_id, lt.period_start).limit(limit)
    )
    if org_id is not None:
        query = query.where(lt.organization_id == org_id)
    if after is not None:
        query = query.where(
            mark_key > tuple_(literal(after[0]), literal(after[1]), literal(after[2], UtcDateTime()))
        )
    marks = [dict(r) for r in conn.execute(query.with_for_update(skip_locked=True)).mappings()]
    now = clock.now()
    for mark in marks:
        sub = dict(
            conn.execute(select(t.subscriptions).where(t.subscriptions.c.id == mark["subscription_id"]))
            .mappings()
            .one()
        )
        up = tu.usage_periods.c
        period_row = (
            conn.execute(
                select(tu.usage_periods).where(
                    up.subscription_id == sub["id"], up.period_start == mark["period_start"]
                )
            )
            .mappings()
            .one()
        )
        period = Period(period_row["period_start"], period_row["period_end"])
        si = t.subscription_items.c
        price_ids = list(conn.execute(select(si.price_id).where(si.subscription_id == sub["id"])).scalars())
        usage = load_usage_prices(conn, price_ids)
        org = load_orgs(conn, [sub["organization_id"]])[sub["organization_id"]]
        customer = load_customers(conn, org.id, [sub["customer_id"]])[sub["customer_id"]]
        prices = load_prices(conn, org.id, set(usage))
        lines, measured = usage_lines_for(
            conn, sub, org, customer, [usage[p] for p in price_ids if p in usage], prices, period
        )
        cur = currency(sub["currency"])
        fresh = compute_document(cur, lines, org.rounding)
        ul = tu.usage_lines.c
        billed_rows = (
            conn.execute(
                select(tu.usage_lines)
                .where(ul.subscription_id == sub["id"], ul.period_start == period.start)
                .order_by(ul.id)
            )
            .mappings()
            .all()
        )
        billed: dict[tuple[int, str], int] = defaultdict(int)
        current_parts: dict[tuple[int, str], list[dict[str, Any]]] = {}
        current_doc: dict[tuple[int, str], int] = {}  # the document the current parts are lines of
        for r in billed_rows:
            billed[(r["price_id"], r["group_value"])] += r["amount_minor"]
            current_parts[(r["price_id"], r["group_value"])] = [
                p for p in r["breakdown"] if not p.get("replaced")
            ]
            current_doc[(r["price_id"], r["group_value"])] = r["document_id"]
        off = coupon_allowances(conn, current_doc.values())  # billed parts go back at what was charged
        adj_lines: list[LineInput] = []
        adj_usage: list[dict[str, Any]] = []
        for m in measured:
            key = (m.price_id, m.group)
            amount = sum(fresh.lines[m.first_line + k].amount_minor for k in range(len(m.parts)))
            if amount == billed.get(key, 0):
                continue
            first = len(adj_lines)
            new_lines = lines[m.first_line : m.first_line + len(m.parts)]
            adj_lines.extend(new_lines)
            template = new_lines[0]
            replaced = []
            for old in current_parts.get(key, []):
                reduced = old.get("discount_minor", off.get((current_doc[key], old.get("position", 0)), 0))
                quantity, unit_price, suffix = taken_back(old, reduced, cur)
                adj_lines.append(
                    LineInput(
                        description=f"{old['description']}{suffix}",
                        quantity=quantity,
                        unit_price=unit_price,
                        tax=template.tax,
                        tax_inclusive=template.tax_inclusive,
                        kind=LineKind.USAGE,
                        product_id=template.product_id,
                        variant_id=template.variant_id,
                        price_id=template.price_id,
                        period_start=period.start,
                        period_end=period.end,
                    )
                )
                replaced.append({**old, "replaced": True})
            adj_usage.append(
                {
                    "first": first,
                    "count": len(adj_lines) - first,
                    "amount": amount - billed.get(key, 0),  # undiscounted, as every usage_lines row
                    "row": {
                        "organization_id": org.id,
                        "subscription_id": sub["id"],
                        "price_id": m.price_id,
                        "metric_id": m.metric_id,
                        "group_value": m.group,
                        "period_start": period.start,
                        "period_end": period.end,
                        "quantity": m.quantity,
                        "events": m.events,
                    },
                    "parts": m.parts + replaced,
                }
            )
        conn.execute(
            delete(tu.usage_late).where(
                lt.organization_id == mark["organization_id"],
                lt.subscription_id == mark["subscription_id"],
                lt.period_start == mark["period_start"],
            )
        )
        if not adj_lines:
            continue
        original = period_row["document_id"]
        # the period's own discounts (usage_adjustment_discounts.py); none billed yet: the run's, below
        discounts = [] if original is None else period_discounts(conn, original)
        computed = compute_document(cur, adj_lines, org.rounding, discounts)
        policy = load_usage_settings(conn, org.id).late_policy
        if computed.total_minor < 0 or policy == "credit_note":
            note_id = (
                None
                if original is None
                else _credit(conn, clock, org.id, original, computed.total_minor, policy, actor, now)
            )
            if note_id is None:
                log.warning("late usage of subscription %s not adjusted: nothing to credit", sub["id"])
                # kept visible: the mark stays for an operator (and is passed by this run)
                conn.execute(insert_for(conn, tu.usage_late).values(**mark).on_conflict_do_nothing())
                continue
            if policy != "credit_note":  # less usage: the credit note is the adjustment
                _usage_rows(conn, note_id, adj_usage, computed)
                continue
            last_rows = {(r["price_id"], r["group_value"]): r for r in billed_rows}
            credited = [
                {
                    **{k: r[k] for k in _CARRIED},
                    "document_id": note_id,
                    "amount_minor": -billed[key],
                    "breakdown": [{**p, "replaced": True} for p in current_parts.get(key, [])],
                }
                for key, r in last_rows.items()
                if billed[key]
            ]
            if credited:
                conn.execute(tu.usage_lines.insert(), credited)
            # the period invoiced again, whole, with its discounts
            computed = compute_document(cur, lines, org.rounding, discounts)
            adj_usage = [
                {
                    "first": m.first_line,
                    "count": len(m.parts),
                    "amount": sum(fresh.lines[m.first_line + k].amount_minor for k in range(len(m.parts))),
                    "row": {
                        "organization_id": org.id,
                        "subscription_id": sub["id"],
                        "price_id": m.price_id,
                        "metric_id": m.metric_id,
                        "group_value": m.group,
                        "period_start": period.start,
                        "period_end": period.end,
                        "quantity": m.quantity,
                        "events": m.events,
                    },
                    "parts": m.parts,
                }
                for m in measured
            ]
        doc = NewDocument(
            org=org,
            customer=customer,
            doc_type=DocumentType(org.row["subscription_document"]),
            computed=computed,
            subscription_id=sub["id"],
            period=period,
        )
        # the period's first document: discounted (and counted) as the run's documents are
        consumption = apply_discounts(conn, [doc], now) if original is None else None
        [doc_id] = persist_documents(
            conn,
            [doc],
            now=now,
            issue=bool(org.row["auto_issue"]),
            actor=actor,
            issued_at_fn=clock.now,
            billing_run_id=run_id,
        )
        if consumption is not None:
            consumption.record(conn, [(doc, doc_id)], now)
        if org.row["auto_issue"]:
            schedule_collection(conn, [doc_id], now)
        _usage_rows(conn, doc_id, adj_usage, doc.computed)
        if policy == "credit_note" or original is None:  # the next correction credits the one that stands
            conn.execute(
                update(tu.usage_periods)
                .where(tu.usage_periods.c.id == period_row["id"])
                .values(document_id=doc_id)
            )
    if not marks:
        return None
    last = marks[-1]
    return (last["organization_id"], last["subscription_id"], last["period_start"])


def _usage_rows(
    conn: Connection, doc_id: int, adj_usage: list[dict[str, Any]], computed: ComputedDocument
) -> None:
    """What an adjustment document changed per charge and group: its net amount before discounts
    (negative on a credit), so the next comparison is like with like; each new part states what
    coupons took off it (`discount_minor`), which is what a later adjustment gives back with it (a
    credit note by amount has no line allowances to read it from)."""
    if not adj_usage:
        return
    off = [0] * len(computed.lines)
    for d in computed.discounts:
        if d.grant_id is None:
            off = [a + b for a, b in zip(off, d.parts, strict=True)]

    def part(a: dict[str, Any], k: int, p: dict[str, Any]) -> dict[str, Any]:
        position = a["first"] + k
        if p.get("replaced") or not off[position]:
            return {**p, "position": position + 1}
        return {**p, "position": position + 1, "discount_minor": off[position]}

    conn.execute(
        tu.usage_lines.insert(),
        [
            {
                **a["row"],
                "document_id": doc_id,
                "amount_minor": a["amount"],
                "breakdown": [part(a, k, p) for k, p in enumerate(a["parts"])],
            }
            for a in adj_usage
        ],
    )


def _credit(
    conn: Connection,
    clock: Clock,
    org_id: int,
    invoice_id: int,
    delta_minor: int,
    policy: str,
    actor: str,
    now: datetime,
) -> int | None:
    """Credit the original usage invoice: the difference (less usage) or in full (credit_note policy)."""
    d = t.documents.c
    invoice = conn.execute(select(t.documents).where(d.id == invoice_id)).mappings().one()
    full = policy == "credit_note"
    amount_minor = invoice["total_minor"] - invoice["amount_credited_minor"] if full else -delta_minor
    disposition = credit_disposition_for(conn, org_id, invoice_id, amount_minor)
    if disposition is None:
        return None
    cur = currency(invoice["currency"])
    request = (
        CreditRequest(CreditMode.FULL)
        if full
        else CreditRequest(CreditMode.AMOUNT, amount=from_minor(amount_minor, cur))
    )
    reason = "usage reported after the period was billed" + ("; invoiced again" if full else "")
    return credit_invoice(conn, clock, org_id, invoice_id, request, reason, disposition, actor, now)
