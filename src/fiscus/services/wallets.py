"""Prepaid credits (issue 17, ADR 0009): a customer's wallet per currency, its grants and its ledger.

Every movement is one immutable `wallet_ledger` row with the grant it moves and, for a consumption,
the document that caused it; the wallet row holds the balance (= Σ ledger = Σ grants' remaining), is
locked (`FOR UPDATE`) by every debit and cannot go below zero (CHECK). Promotional credit is taken by
the billing run as a discount before tax (`discount_billing.apply_discounts`), highest priority first
(lowest number), then the soonest expiry; what is left of a grant past its expiry is expired first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, insert, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db.documents import append_audit, append_outbox, audit_row, outbox_row
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import Clock
from fiscus.domain.discounts import DiscountInput, SettledDiscount, credit_input
from fiscus.domain.documents import check_money_size
from fiscus.domain.errors import FieldConflictError, InvalidFieldError
from fiscus.domain.money import currency, from_minor, to_minor
from fiscus.services import validation as v
from fiscus.services.common import get_scoped

PROMOTIONAL_REASON = "Promotional credit"


def _wallet(conn: Connection, org_id: int, customer_id: int, code: str, now: datetime) -> dict[str, Any]:
    """The customer's wallet in `code`, created empty on first use, locked for this transaction."""
    w = td.wallets.c
    query = select(td.wallets).where(w.customer_id == customer_id, w.currency == code).with_for_update()
    row = conn.execute(query).mappings().one_or_none()
    if row is None:
        conn.execute(
            insert(td.wallets).values(
                organization_id=org_id,
                customer_id=customer_id,
                currency=code,
                balance_minor=0,
                created_at=now,
            )
        )
        row = conn.execute(query).mappings().one()
    return dict(row)


def grant_credits(
    db: Database,
    clock: Clock,
    org_id: int,
    customer_id: int,
    *,
    currency_code: str,
    amount: Decimal,
    expires_at: datetime | None = None,
    priority: int = 0,
    product_ids: Sequence[int] = (),
    reason: str = PROMOTIONAL_REASON,
    low_balance: Decimal | None = None,
    actor: str = "cli",
) -> int:
    """Grant promotional credit (no payment; taxed as a discount when used). Returns the grant id."""
    cur = currency(currency_code, "currency")
    if amount <= 0 or amount != amount.quantize(cur.quantum):
        raise InvalidFieldError("amount", f"must be greater than zero, in {cur.code}'s minor units")
    if low_balance is not None and (low_balance < 0 or low_balance != low_balance.quantize(cur.quantum)):
        raise InvalidFieldError("low_balance", f"must be zero or more, in {cur.code}'s minor units")
    check_money_size("amount", amount, cur)
    if low_balance is not None:
        check_money_size("low_balance", low_balance, cur)
    now = clock.now()
    if expires_at is not None and expires_at <= now:
        raise FieldConflictError("expires_at", "must be in the future")  # the clock decides: 409
    minor = to_minor(amount.quantize(cur.quantum), cur)
    text = v.text("reason", reason)
    with db.write() as conn:
        customer = get_scoped(conn, t.customers, org_id, customer_id)
        if customer["currency"] != cur.code:
            raise FieldConflictError("currency", f"the customer is billed in {customer['currency']}")
        for i, pid in enumerate(product_ids):
            get_scoped(conn, t.products, org_id, pid, field=f"product_ids.{i}")
        wallet = _wallet(conn, org_id, customer_id, cur.code, now)
        gid = conn.execute(
            insert(td.wallet_grants)
            .values(
                organization_id=org_id,
                wallet_id=wallet["id"],
                kind="promotional",
                amount_minor=minor,
                remaining_minor=minor,
                priority=priority,
                expires_at=expires_at,
                product_ids=sorted(set(product_ids)),
                reason=text,
                status="active",
                created_at=now,
            )
            .returning(td.wallet_grants.c.id)
        ).scalar_one()
        values: dict[str, Any] = {"balance_minor": td.wallets.c.balance_minor + minor}
        if low_balance is not None:
            values["low_balance_minor"] = to_minor(low_balance.quantize(cur.quantum), cur)
        conn.execute(update(td.wallets).where(td.wallets.c.id == wallet["id"]).values(**values))
        _ledger(conn, org_id, wallet["id"], gid, "granted", minor, None, now)
        payload = {"grant_id": gid, "customer_id": customer_id, "currency": cur.code, "amount": str(amount)}
        append_audit(
            conn, [audit_row(org_id, "wallet", wallet["id"], "credits_granted", actor, now, None, payload)]
        )
        append_outbox(conn, [outbox_row(org_id, "credits.granted", "wallet", wallet["id"], now, payload)])
    return int(gid)


def _ledger(
    conn: Connection,
    org_id: int,
    wallet_id: int,
    grant_id: int,
    kind: str,
    amount_minor: int,
    document_id: int | None,
    now: datetime,
) -> None:
    conn.execute(
        insert(td.wallet_ledger).values(
            organization_id=org_id,
            wallet_id=wallet_id,
            grant_id=grant_id,
            kind=kind,
            amount_minor=amount_minor,
            document_id=document_id,
            created_at=now,
        )
    )


def _debit(
    conn: Connection, grant: Any, amount: int, kind: str, document_id: int | None, now: datetime
) -> None:
    """Take `amount` from a grant and its (locked) wallet, with its ledger row; the guarded UPDATEs and
    the CHECKs refuse to go below zero."""
    w, g = td.wallets.c, td.wallet_grants.c
    moved = conn.execute(
        update(td.wallets)
        .where(w.id == grant.wallet_id, w.balance_minor >= amount)
        .values(balance_minor=w.balance_minor - amount)
    ).rowcount
    left = grant.remaining_minor - amount
    status = {"expired": "expired", "refunded": "refunded"}.get(kind, "depleted" if left == 0 else "active")
    moved += conn.execute(
        update(td.wallet_grants)
        .where(g.id == grant.id, g.remaining_minor >= amount)
        .values(remaining_minor=g.remaining_minor - amount, status=status)
    ).rowcount
    if moved != 2:
        raise RuntimeError(f"wallet {grant.wallet_id} cannot give {amount}: its balance changed underneath")
    _ledger(conn, grant.organization_id, grant.wallet_id, grant.id, kind, -amount, document_id, now)


def expire_credits(conn: Connection, customer_ids: Iterable[int], now: datetime) -> int:
    """What is left of grants past their expiry leaves the wallet (ledger `expired`, event
    `credits.expired`); returns how many grants expired."""
    wanted = sorted(set(customer_ids))
    if not wanted:
        return 0
    g, w = td.wallet_grants.c, td.wallets.c
    rows = conn.execute(
        select(td.wallet_grants, w.customer_id, w.currency)
        .join(td.wallets, w.id == g.wallet_id)
        .where(
            w.customer_id.in_(wanted), g.status == "active", g.expires_at.is_not(None), g.expires_at <= now
        )
        .order_by(g.wallet_id, g.id)
    ).all()
    _lock_wallets(conn, {r.wallet_id for r in rows})
    for r in rows:
        _debit(conn, r, r.remaining_minor, "expired", None, now)
        cur = currency(r.currency)
        payload = {
            "grant_id": r.id,
            "customer_id": r.customer_id,
            "amount": str(from_minor(r.remaining_minor, cur)),
        }
        append_outbox(
            conn, [outbox_row(r.organization_id, "credits.expired", "wallet", r.wallet_id, now, payload)]
        )
    return len(rows)


def _lock_wallets(conn: Connection, wallet_ids: set[int]) -> None:
    if wallet_ids:  # in id order, so two transactions never wait on each other crosswise
        w = td.wallets.c
        conn.execute(select(w.id).where(w.id.in_(sorted(wallet_ids))).order_by(w.id).with_for_update()).all()


def promotional_inputs(
    conn: Connection, customer_ids: Iterable[int], now: datetime
) -> dict[tuple[int, str], list[Any]]:
    """The usable promotional grants per (customer, currency), in the order they are used; expired ones
    are expired first, and the wallets are locked for the rest of the transaction."""
    wanted = sorted(set(customer_ids))
    if not wanted:
        return {}
    expire_credits(conn, wanted, now)
    g, w = td.wallet_grants.c, td.wallets.c
    rows = conn.execute(
        select(td.wallet_grants, w.customer_id, w.currency)
        .join(td.wallets, w.id == g.wallet_id)
        .where(
            w.customer_id.in_(wanted), g.status == "active", g.kind == "promotional", g.remaining_minor > 0
        )
        .order_by(g.priority, g.expires_at.is_(None), g.expires_at, g.id)
    ).all()
    _lock_wallets(conn, {r.wallet_id for r in rows})
    out: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for r in rows:  # mutable copies: `record_consumption` keeps `remaining_minor` current
        out[(r.customer_id, r.currency)].append(SimpleNamespace(**r._asdict()))
    return out


def credit_inputs(grants: list[Any], left: dict[int, int]) -> list[DiscountInput]:
    """The grants still holding something (after earlier documents of this batch took their part)."""
    return [
        credit_input(r.id, r.currency, left[r.id], frozenset(r.product_ids or ()), r.reason)
        for r in grants
        if left[r.id] > 0
    ]


def record_consumption(
    conn: Connection, grants: dict[int, Any], used: Sequence[tuple[int, SettledDiscount]], now: datetime
) -> None:
    """Debit what each document took from each grant, with the document on the ledger row; a wallet
    that falls to its low-balance threshold says so (`credits.low_balance`)."""
    touched: dict[int, Any] = {}
    taken: dict[int, int] = defaultdict(int)
    for document_id, s in used:
        assert s.grant_id is not None
        r = grants[s.grant_id]
        _debit(conn, r, s.amount_minor, "consumed", document_id, now)
        r.remaining_minor -= s.amount_minor
        payload = {"grant_id": r.id, "document_id": document_id, "amount_minor": s.amount_minor}
        append_outbox(
            conn, [outbox_row(r.organization_id, "credits.consumed", "wallet", r.wallet_id, now, payload)]
        )
        touched[r.wallet_id] = r
        taken[r.wallet_id] += s.amount_minor
    if not touched:
        return
    w = td.wallets.c
    for wallet in conn.execute(select(td.wallets).where(w.id.in_(sorted(touched)))).mappings():
        threshold = wallet["low_balance_minor"]
        before = wallet["balance_minor"] + taken[wallet["id"]]
        if threshold is not None and wallet["balance_minor"] <= threshold < before:  # crossed it now
            cur = currency(wallet["currency"])
            payload = {
                "customer_id": wallet["customer_id"],
                "currency": cur.code,
                "balance": str(from_minor(wallet["balance_minor"], cur)),
                "threshold": str(from_minor(threshold, cur)),
            }
            append_outbox(
                conn,
                [
                    outbox_row(
                        wallet["organization_id"], "credits.low_balance", "wallet", wallet["id"], now, payload
                    )
                ],
            )
