"""What a billing run at a given instant would issue, computed by the run's own code and written
nowhere (`fiscus bill --dry-run`): the documents per subscription period and per pending order."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, text

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.context import load_customers, load_orgs
from fiscus.adapters.db.engine import Database
from fiscus.domain.errors import DomainError
from fiscus.domain.money import from_minor
from fiscus.services.billing_run import BillingRunSummary, _bill_one, _billing_inputs, build_order_documents
from fiscus.services.discount_billing import apply_discounts

PAGE = 500


@dataclass(frozen=True, slots=True)
class PlannedDocument:
    organization_id: int
    customer_id: int
    subscription_id: int | None
    order_id: int | None
    doc_type: str
    period_start: datetime | None
    period_end: datetime | None
    currency: str
    total: Decimal


@dataclass(slots=True)
class RunPreview:
    at: datetime
    documents: list[PlannedDocument] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def totals(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = defaultdict(Decimal)
        for d in self.documents:
            out[d.currency] += d.total
        return dict(sorted(out.items()))


def preview_run(db: Database, at: datetime, organization_id: int | None = None) -> RunPreview:
    """Every document `run_billing(at=at)` would create now, in one read transaction."""
    preview = RunPreview(at)
    s, o = t.subscriptions.c, t.orders.c
    with db.read() as conn:
        after = 0
        while True:
            query = select(t.subscriptions).where(text(t.BILLABLE), s.next_period_start <= at, s.id > after)
            if organization_id is not None:
                query = query.where(s.organization_id == organization_id)
            subs = [dict(r) for r in conn.execute(query.order_by(s.id).limit(PAGE)).mappings()]
            if not subs:
                break
            after = subs[-1]["id"]
            items, pending, prices = _billing_inputs(conn, None, [r["id"] for r in subs])
            orgs = load_orgs(conn, {r["organization_id"] for r in subs})
            customers = load_customers(conn, None, {r["customer_id"] for r in subs})
            for sub in subs:
                try:
                    docs, _change, _held = _bill_one(
                        sub,
                        orgs[sub["organization_id"]],
                        customers[sub["customer_id"]],
                        items[sub["id"]],
                        pending[sub["id"]],
                        prices,
                        at,
                    )
                except DomainError as exc:
                    preview.failures[f"subscription {sub['id']}"] = f"{exc.code}: {exc}"
                    continue
                apply_discounts(conn, docs, at, record=False)  # issue 17: coupons, nothing written
                for doc in docs:
                    preview.documents.append(
                        PlannedDocument(
                            doc.org.id,
                            doc.customer.id,
                            sub["id"],
                            None,
                            doc.doc_type.value,
                            doc.period.start if doc.period else None,
                            doc.period.end if doc.period else None,
                            doc.computed.currency.code,
                            from_minor(doc.computed.total_minor, doc.computed.currency),
                        )
                    )
        query = select(t.orders).where(text(t.PENDING), o.created_at <= at).order_by(o.id)
        if organization_id is not None:
            query = query.where(o.organization_id == organization_id)
        orders = [dict(r) for r in conn.execute(query).mappings()]
        if orders:
            failed = BillingRunSummary(run_id=0, at=at)  # collects the orders that could not be billed
            docs = build_order_documents(conn, orders, failed)
            preview.failures.update({f"order {k}": why for k, why in failed.failed_orders.items()})
            apply_discounts(conn, docs, at, record=False)
            for doc in docs:
                preview.documents.append(
                    PlannedDocument(
                        doc.org.id,
                        doc.customer.id,
                        None,
                        doc.order_ids[0],
                        doc.doc_type.value,
                        None,
                        None,
                        doc.computed.currency.code,
                        from_minor(doc.computed.total_minor, doc.computed.currency),
                    )
                )
    return preview
