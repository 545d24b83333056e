"""One-off orders: variants × quantity, billed by the next billing run (or at once) as a proforma or
an invoice, per the organisation's `order_document` setting."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.context import load_customers, load_prices
from fiscus.adapters.db.documents import append_audit, append_outbox, audit_row, outbox_row, persist_documents
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.documents import check_line_size
from fiscus.domain.errors import FieldConflictError, InvalidFieldError, InvalidStateError, NotFoundError
from fiscus.domain.money import currency
from fiscus.services import validation as v
from fiscus.services.billing_run import build_order_documents
from fiscus.services.catalog import refuse_archived
from fiscus.services.common import get_scoped
from fiscus.services.discount_billing import apply_discounts
from fiscus.services.payments.collection import schedule_collection
from fiscus.services.subscriptions import ItemSpec


def create_order(
    db: Database,
    clock: Clock,
    org_id: int,
    customer_id: int,
    items: Sequence[ItemSpec],
    *,
    actor: str = "cli",
) -> int:
    if not items:
        raise InvalidFieldError("items", "an order needs at least one item")
    now = clock.now()
    with db.write() as conn:
        customer = load_customers(conn, org_id, [customer_id]).get(customer_id)
        if customer is None:
            raise NotFoundError("customer", customer_id, field="customer_id")
        prices = load_prices(conn, org_id, [i.price_id for i in items])
        refuse_archived(conn, org_id, [i.price_id for i in items])
        rows = []
        for n, item in enumerate(items):
            price = prices.get(item.price_id)
            if price is None:
                raise NotFoundError("price", item.price_id, field=f"items.{n}.price_id")
            if price.interval is not None:
                raise FieldConflictError(f"items.{n}.price_id", "a recurring price belongs on a subscription")
            if price.currency != customer.row["currency"]:
                raise FieldConflictError(
                    f"items.{n}.price_id",
                    f"price currency {price.currency} differs from the customer's {customer.row['currency']}",
                )
            quantity = v.positive_quantity(f"items.{n}.quantity", item.quantity)
            check_line_size(f"items.{n}.quantity", quantity, price.unit_amount, currency(price.currency))
            rows.append((price.id, quantity))
        oid = conn.execute(
            insert(t.orders)
            .values(
                organization_id=org_id,
                customer_id=customer_id,
                status="pending",
                currency=customer.row["currency"],
                created_at=now,
            )
            .returning(t.orders.c.id)
        ).scalar_one()
        conn.execute(
            insert(t.order_items),
            [{"organization_id": org_id, "order_id": oid, "price_id": p, "quantity": q} for p, q in rows],
        )
        payload = {"id": oid, "customer_id": customer_id, "items": [[p, str(q)] for p, q in rows]}
        append_audit(conn, [audit_row(org_id, "order", oid, "created", actor, now, None, payload)])
        append_outbox(conn, [outbox_row(org_id, "order.created", "order", oid, now, payload)])
    return int(oid)


def bill_order_now(db: Database, clock: Clock, org_id: int, order_id: int, *, actor: str = "cli") -> int:
    """Bill one pending order immediately instead of waiting for the run; returns the document id."""
    now = clock.now()
    with db.write() as conn:
        order = get_scoped(conn, t.orders, org_id, order_id, lock=True)
        if order["status"] != "pending":
            raise InvalidStateError(f"order {order_id} is {order['status']}")
        docs = build_order_documents(conn, [order])
        credit = apply_discounts(conn, docs, now)  # issue 17
        issue = bool(docs[0].org.row["auto_issue"])
        [doc_id] = persist_documents(conn, docs, now=now, issue=issue, actor=actor, issued_at_fn=clock.now)
        credit.record(conn, [(docs[0], doc_id)], now)
        conn.execute(update(t.orders).where(t.orders.c.id == order_id).values(status="billed", billed_at=now))
        if issue:
            schedule_collection(conn, [doc_id], now)
    return doc_id


def order_ids_of(db: Database, org_id: int, document_id: int) -> list[int]:
    with db.read() as conn:
        return list(
            conn.execute(
                select(t.document_orders.c.order_id)
                .where(
                    t.document_orders.c.document_id == document_id,
                    t.document_orders.c.organization_id == org_id,
                )
                .order_by(t.document_orders.c.order_id)
            ).scalars()
        )
