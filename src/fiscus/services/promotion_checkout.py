"""Promotion codes entered by customers themselves (issue 17), where the organisation allows it
(`customer_promotion_codes`, off by default): in the portal and on the hosted payment page.

Which documents a code may still change (docs/discounts.md, "Codes entered by customers"):

* the portal redeems a code onto the customer's own subscription, so the subscription's next invoices
  carry the discount (nothing issued changes);
* on the hosted page, an **open proforma** on which nothing was paid, credited or is being charged is
  not a tax document yet: it is voided and reissued, in the redemption's transaction, as a new proforma
  with the same lines, its earlier discounts kept to the minor unit and the code's discount settled
  on what they left (before tax, by largest remainder), so its taxable bases and VAT are right;
* an **issued invoice** never changes: the code is refused (`document_final`), as it is on anything
  paid, void, converted or with a card payment under way (`document_closed`).

Both go through `discounts.redeem_within`, the API's redemption: same locked counters, same refusals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any, Final

from sqlalchemy import Connection, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.context import load_customers, load_org
from fiscus.adapters.db.documents import NewDocument, append_audit, audit_row, persist_documents
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.discounts import DiscountRefusedError, Refusal, SettledDiscount
from fiscus.domain.documents import (
    DocumentAction,
    DocumentStatus,
    DocumentType,
    compute_document,
    line_amount_minor,
)
from fiscus.domain.errors import NotFoundError
from fiscus.domain.payments import IN_FLIGHT
from fiscus.services.common import get_scoped
from fiscus.services.discounts import Basis, active_discounts, mark_applied, redeem_within
from fiscus.services.document_state import (
    apply_document_action,
    locked_document,
    stored_computed,
    stored_period,
)
from fiscus.services.payments.collection import schedule_collection
from fiscus.services.wallets import record_consumption

FIELD: Final = "promotion_code"


@dataclass(frozen=True, slots=True)
class Reissued:
    """A proforma reissued with a customer's code: the new proforma and the discount redeemed."""

    document_id: int
    replaced_id: int
    discount_id: int


def codes_allowed(conn: Connection, org_id: int) -> bool:
    """Whether the organisation lets its customers enter promotion codes."""
    o = t.organizations.c
    return bool(conn.execute(select(o.customer_promotion_codes).where(o.id == org_id)).scalar_one_or_none())


def _refuse_unless_allowed(conn: Connection, org_id: int) -> None:
    if not codes_allowed(conn, org_id):
        raise DiscountRefusedError(FIELD, Refusal.NOT_ALLOWED)


def redeem_for_subscription(
    db: Database,
    clock: Clock,
    org_id: int,
    customer_id: int,
    subscription_id: int,
    code: str,
    *,
    actor: str = "portal",
) -> int:
    """A customer's code onto their own subscription (another's is not found): its next invoices get
    the discount. The new discount's id."""
    now = clock.now()
    with db.write() as conn:
        _refuse_unless_allowed(conn, org_id)
        sub = get_scoped(conn, t.subscriptions, org_id, subscription_id)
        if sub["customer_id"] != customer_id:
            raise NotFoundError("subscription", subscription_id)
        return redeem_within(conn, now, org_id, subscription_id=subscription_id, code=code, actor=actor)


def _in_flight(conn: Connection, document_id: int) -> bool:
    pa = t.payment_attempts.c
    query = select(pa.id).where(pa.document_id == document_id, pa.status.in_([s.value for s in IN_FLIGHT]))
    return conn.execute(query).first() is not None


def document_refusal(conn: Connection, doc: dict[str, Any]) -> Refusal | None:
    """Why a document cannot take a code any more, or None for an open proforma still changeable."""
    if doc["type"] != DocumentType.PROFORMA.value:
        return Refusal.DOCUMENT_FINAL
    if (
        doc["status"] != DocumentStatus.OPEN.value
        or doc["amount_paid_minor"]
        or doc["amount_credited_minor"]
        or _in_flight(conn, doc["id"])
    ):
        return Refusal.DOCUMENT_CLOSED
    return None


def redeem_on_document(
    db: Database, clock: Clock, org_id: int, document_id: int, code: str, *, actor: str = "hosted_page"
) -> Reissued:
    """A code entered on a document's hosted page: refused with its reason, or the open proforma is
    voided and reissued with the discount, all in one transaction (see the module)."""
    now = clock.now()
    with db.write() as conn:
        _refuse_unless_allowed(conn, org_id)
        get_scoped(conn, t.documents, org_id, document_id)
        doc = locked_document(conn, document_id)
        refusal = document_refusal(conn, doc)
        if refusal is not None:
            raise DiscountRefusedError(FIELD, refusal)
        old = stored_computed(conn, doc)
        notes = {(r.treatment, r.rate): r.note for r in old.breakdown}
        sources = [
            replace(s, tax=replace(s.tax, note=notes.get((s.tax.treatment, s.tax.rate), "")))
            for s in (line.source for line in old.lines)
        ]
        cur = old.currency
        basis = Basis(
            sum(line_amount_minor(s.quantity, s.unit_price, cur) for s in sources),
            [(s.price_id, s.product_id) for s in sources],
        )
        sub_id = doc["subscription_id"]
        discount_id = redeem_within(
            conn,
            now,
            org_id,
            customer_id=None if sub_id else doc["customer_id"],
            subscription_id=sub_id,
            code=code,
            actor=actor,
            basis=basis,
        )
        [new_input] = [
            a.input
            for a in active_discounts(conn, [doc["customer_id"]])[doc["customer_id"]]
            if a.discount_id == discount_id
        ]
        org = load_org(conn, org_id)
        computed = compute_document(cur, sources, org.rounding, [new_input], prior=old.discounts)
        if not any(d.discount_id == discount_id for d in computed.discounts):
            raise DiscountRefusedError(FIELD, Refusal.NOTHING_COVERED)  # rolls the redemption back too
        apply_document_action(
            conn, doc, DocumentAction.VOID, {"voided_at": now, "next_payment_attempt_at": None}, actor, now
        )  # gives back the promotional credit it took: the new proforma takes it again below
        do = t.document_orders.c
        new = NewDocument(
            org=org,
            customer=load_customers(conn, org_id, [doc["customer_id"]])[doc["customer_id"]],
            doc_type=DocumentType.PROFORMA,
            computed=computed,
            subscription_id=sub_id,
            period=stored_period(doc),
            order_ids=list(conn.execute(select(do.order_id).where(do.document_id == doc["id"])).scalars()),
            series=doc["series"],
        )
        [new_id] = persist_documents(conn, [new], now=now, issue=True, actor=actor, issued_at_fn=clock.now)
        d = t.documents.c  # the successor names what it replaced: the old one's page links to it
        conn.execute(update(t.documents).where(d.id == new_id).values(replaces_id=doc["id"]))
        _move_references(conn, doc["id"], new_id)
        _retake_credit(conn, computed.discounts, new_id, now)
        mark_applied(conn, [discount_id], now)
        append_audit(
            conn,
            [
                audit_row(
                    org_id,
                    "document",
                    new_id,
                    "reissued",
                    actor,
                    now,
                    {"document_id": doc["id"], "number": doc["number"]},
                    {"document_id": new_id, "discount_id": discount_id},
                )
            ],
        )
        if doc["next_payment_attempt_at"] is not None:
            schedule_collection(conn, [new_id], doc["next_payment_attempt_at"])
    return Reissued(new_id, doc["id"], discount_id)


def _move_references(conn: Connection, old_id: int, new_id: int) -> None:
    """What pointed at the replaced proforma as the document billing it now points at its successor."""
    for table in (t.subscription_periods, t.pending_items, tu.usage_lines, tu.usage_periods):
        conn.execute(update(table).where(table.c.document_id == old_id).values(document_id=new_id))


def _retake_credit(
    conn: Connection, discounts: Sequence[SettledDiscount], new_id: int, now: datetime
) -> None:
    """The promotional credit the replaced proforma had taken (given back by its void, wallets still
    locked) is taken again, to the minor unit, by the new one."""
    used = [d for d in discounts if d.grant_id is not None]
    if not used:
        return
    g = td.wallet_grants.c
    wanted = sorted({d.grant_id for d in used if d.grant_id is not None})
    rows = conn.execute(select(td.wallet_grants).where(g.id.in_(wanted))).all()
    grants: dict[int, Any] = {r.id: SimpleNamespace(**r._asdict()) for r in rows}
    record_consumption(conn, grants, [(new_id, d) for d in used], now)
