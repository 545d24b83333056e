"""Property tests on both databases (issue 17): random orders with random coupons, promotion codes,
promotional credit and bought credit (a paid top-up, spent after tax; a voided invoice giving its credit
back) in JPY, EUR, KWD and KZT. Every stored document reads total = Σ lines − Σ discounts
+ Σ tax with per-rate bases and taxes consistent, every wallet's ledger sums to its balance ≥ 0 (and to
its grants' remaining), and `fiscus reconcile` finds nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import line_amount_minor
from fiscus.domain.money import currency
from fiscus.services.catalog import create_price
from fiscus.services.discounts import CodeSpec, CouponSpec, create_coupon, create_promotion_code, redeem
from fiscus.services.documents import mark_paid, void_document
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.reconcile import reconcile
from fiscus.services.subscriptions import ItemSpec
from fiscus.services.wallet_topups import create_topup
from fiscus.services.wallets import grant_credits
from tests.builders import Tenant, make_customer, make_tenant

KINDS = {"jp": "JPY", "bg": "EUR", "kw": "KWD", "kz": "KZT"}

case = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(sorted(KINDS)),
        "percent": st.none() | st.decimals(min_value=Decimal("0.5"), max_value=Decimal(100), places=1),
        "fixed": st.none() | st.integers(min_value=1, max_value=50_000),
        "code": st.booleans(),
        "topup": st.none() | st.integers(min_value=1, max_value=60_000),
        "void": st.booleans(),
        "grants": st.lists(
            st.tuples(st.integers(min_value=1, max_value=30_000), st.integers(0, 3), st.booleans()),
            max_size=3,
        ),
        "orders": st.lists(
            st.lists(
                st.tuples(st.sampled_from(["one_off", "second", "zero"]), st.integers(1, 4)),
                min_size=1,
                max_size=3,
            ),
            min_size=1,
            max_size=3,
        ),
    }
)


def _one_off_prices(db: Database, clock: FixedClock, tenant: Tenant) -> dict[str, int]:
    """Three one-off prices: the tenant's, another at an awkward amount, and a zero-rated one."""
    with db.read() as conn:
        variant = conn.execute(
            select(t.prices.c.variant_id).where(t.prices.c.id == tenant.one_off)
        ).scalar_one()
    cur = tenant.currency

    def price(amount: str, category: str) -> int:
        return create_price(
            db, clock, tenant.org_id, variant, currency_code=cur, unit_amount=amount, tax_category=category
        )

    return {"one_off": tenant.one_off, "second": price("1234.567", "standard"), "zero": price("99.5", "zero")}


def _check_documents(db: Database, org_id: int) -> None:
    with db.read() as conn:
        docs = (
            conn.execute(select(t.documents).where(t.documents.c.organization_id == org_id)).mappings().all()
        )
        for d in docs:
            cur = currency(d["currency"])
            lines = (
                conn.execute(select(t.document_lines).where(t.document_lines.c.document_id == d["id"]))
                .mappings()
                .all()
            )
            taxes = (
                conn.execute(select(t.document_taxes).where(t.document_taxes.c.document_id == d["id"]))
                .mappings()
                .all()
            )
            off = conn.execute(
                select(func.coalesce(func.sum(td.document_allowances.c.amount_minor), 0)).where(
                    td.document_allowances.c.document_id == d["id"]
                )
            ).scalar_one()
            gross = sum(line_amount_minor(x["quantity"], x["unit_price"], cur) for x in lines)
            assert 0 <= d["amount_credited_minor"] <= d["total_minor"]  # paid credit: at most what is due
            if all(x["tax_inclusive"] for x in lines):  # a top-up: its price includes its tax
                assert d["total_minor"] == gross - off
            else:
                assert d["total_minor"] == gross - off + d["tax_minor"]  # Σ lines − Σ discounts + Σ tax
            assert sum(x["base_minor"] for x in taxes) == d["subtotal_minor"]
            assert sum(x["tax_minor"] for x in taxes) == d["tax_minor"]
            for row in taxes:
                members = [
                    x
                    for x in lines
                    if x["tax_rate"] == row["rate"] and x["tax_treatment"] == row["treatment"]
                ]
                assert row["base_minor"] == sum(x["amount_minor"] for x in members)


def _check_wallets(db: Database, org_id: int) -> None:
    w, g, ledger = td.wallets.c, td.wallet_grants.c, td.wallet_ledger.c
    with db.read() as conn:
        for wallet in conn.execute(select(td.wallets).where(w.organization_id == org_id)).mappings():
            total = conn.execute(
                select(func.sum(ledger.amount_minor)).where(ledger.wallet_id == wallet["id"])
            ).scalar_one()
            remaining = conn.execute(
                select(func.sum(g.remaining_minor)).where(g.wallet_id == wallet["id"])
            ).scalar_one()
            assert wallet["balance_minor"] == total == remaining >= 0


def test_random_documents_with_discounts_and_credits_add_up(db: Database, clock: FixedClock) -> None:
    tenants: dict[str, Tenant] = {}
    prices: dict[str, dict[str, int]] = {}
    n = [0]

    @settings(
        max_examples=10,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.generate],
    )
    @given(case)
    def one(c: dict[str, Any]) -> None:
        kind = c["kind"]
        if kind not in tenants:
            tenants[kind] = make_tenant(db, clock, kind, slug=f"prop-{kind}")
            prices[kind] = _one_off_prices(db, clock, tenants[kind])
        tenant = tenants[kind]
        org = tenant.org_id
        n[0] += 1
        customer = make_customer(db, clock, tenant, n[0])
        coupons = []
        if c["percent"] is not None:
            coupons.append(
                create_coupon(db, clock, org, CouponSpec(f"P{n[0]}", "forever", percent_off=c["percent"]))
            )
        if c["fixed"] is not None:
            cur = currency(KINDS[kind])
            amount = Decimal(c["fixed"]).scaleb(-cur.exponent)
            coupons.append(
                create_coupon(db, clock, org, CouponSpec(f"F{n[0]}", "once", amounts_off={cur.code: amount}))
            )
        for i, coupon in enumerate(coupons):
            if c["code"] and i == 0:
                create_promotion_code(db, clock, org, CodeSpec(coupon, f"C{n[0]}x{kind}"))
                redeem(db, clock, org, customer_id=customer, code=f"c{n[0]}X{kind}")
            else:
                redeem(db, clock, org, customer_id=customer, coupon_id=coupon)
        cur = currency(KINDS[kind])
        for amount, priority, expiring in c["grants"]:
            grant_credits(
                db,
                clock,
                org,
                customer,
                currency_code=cur.code,
                amount=Decimal(amount).scaleb(-cur.exponent),
                priority=priority,
                expires_at=clock.now() + timedelta(hours=1) if expiring else None,
            )
        if c["topup"] is not None:  # bought credit: a taxed top-up invoice, paid, credits the wallet
            topup = create_topup(
                db,
                clock,
                org,
                customer,
                currency_code=cur.code,
                amount=Decimal(c["topup"]).scaleb(-cur.exponent),
            )
            mark_paid(db, clock, org, topup)
        billed = []
        for k, items in enumerate(c["orders"]):
            if k == 1:
                clock.advance(timedelta(hours=2))  # the expiring grants expire before the second order
            specs = [ItemSpec(prices[kind][price], qty) for price, qty in items]
            billed.append(bill_order_now(db, clock, org, create_order(db, clock, org, customer, specs)))
        with db.read() as conn:
            status = conn.execute(
                select(t.documents.c.status).where(t.documents.c.id == billed[0])
            ).scalar_one()
        if c["void"] and status == "open":
            void_document(db, clock, org, billed[0])  # the credit it took goes back to the wallet
        _check_documents(db, org)
        _check_wallets(db, org)

    one()
    # a grant left unused past its expiry leaves the wallet before the next document takes credit
    tenant = tenants.get("bg") or make_tenant(db, clock, "bg", slug="prop-bg")
    customer = make_customer(db, clock, tenant, 999)
    expires = clock.now() + timedelta(hours=1)
    grant_credits(
        db, clock, tenant.org_id, customer, currency_code="EUR", amount=Decimal(5), expires_at=expires
    )
    grant_credits(db, clock, tenant.org_id, customer, currency_code="EUR", amount=Decimal(3), priority=1)
    clock.advance(timedelta(hours=2))
    bill_order_now(
        db, clock, tenant.org_id, create_order(db, clock, tenant.org_id, customer, [ItemSpec(tenant.one_off)])
    )
    _check_wallets(db, tenant.org_id)
    report = reconcile(db)
    assert {k: [v.row for v in rows] for k, rows in report.items() if rows} == {}
    with db.read() as conn:  # the cases are really there
        assert conn.execute(select(func.count()).select_from(td.document_allowances)).scalar_one() > 0
        kinds = set(conn.execute(select(td.wallet_ledger.c.kind).distinct()).scalars())
        lg, g = td.wallet_ledger.c, td.wallet_grants.c
        paid_used = conn.execute(
            select(func.count())
            .select_from(td.wallet_ledger.join(td.wallet_grants, g.id == lg.grant_id))
            .where(lg.kind == "consumed", g.kind == "paid")
        ).scalar_one()
    assert paid_used > 0  # bought credit was spent after tax
    assert {"granted", "consumed", "expired", "restored"} <= kinds
    with db.write() as conn:  # a balance that drifts from its ledger is what reconcile reports
        conn.execute(
            update(td.wallets)
            .where(td.wallets.c.id == 1)
            .values(balance_minor=td.wallets.c.balance_minor + 1)
        )
    assert [v.row["id"] for v in reconcile(db)["wallet_balance_is_its_ledger"]] == [1]
