"""`fiscus coupons …` and `fiscus credits …`: the operator's minimal discount commands (issue 17). They
call the same services as the API (`services/discounts.py`, `services/wallets.py`,
`services/wallet_topups.py`) and hold no rule of their own."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from fiscus.domain.errors import InvalidFieldError

if TYPE_CHECKING:
    from fiscus.bootstrap import Container

coupons_app = typer.Typer(help="Coupons: list and create.", no_args_is_help=True)
credits_app = typer.Typer(help="Prepaid credit: balances, grants and top-ups.", no_args_is_help=True)
console = Console()

Org = Annotated[int, typer.Option(help="organisation id")]


def register(app: typer.Typer) -> None:
    app.add_typer(coupons_app, name="coupons")
    app.add_typer(credits_app, name="credits")


def build() -> Container:
    """`bootstrap.build`, imported when a command runs: the database stack is not loaded at start-up
    for every other command (and every `fiscus gateway` process)."""
    from fiscus.bootstrap import build as build_container

    return build_container()


def _decimal(value: str, field_name: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise InvalidFieldError(field_name, "must be a decimal number") from None


@coupons_app.command("list")
def coupons_list(org: Org) -> None:
    """The organisation's coupons, oldest first."""
    from sqlalchemy import select

    from fiscus.adapters.db import tables_discounts as td
    from fiscus.domain.money import currency, from_minor

    c = build()
    table = Table("id", "name", "off", "duration", "scope", "redeemed", "valid")
    cc = td.coupons.c
    with c.db.read() as conn:
        for r in conn.execute(select(td.coupons).where(cc.organization_id == org).order_by(cc.id)).mappings():
            off = (
                f"{r['percent_off'].normalize():f} %"
                if r["percent_off"] is not None
                else ", ".join(
                    f"{from_minor(v, currency(k))} {k}" for k, v in sorted(r["amounts_off"].items())
                )
            )
            scope = "; ".join(
                f"{name} {r[name]}" for name in ("product_ids", "price_ids", "metric_ids") if r[name]
            )
            limit = "" if r["max_redemptions"] is None else f"/{r['max_redemptions']}"
            valid = bool(r["active"]) and r["expired_at"] is None
            table.add_row(
                str(r["id"]),
                r["name"],
                off,
                r["duration"],
                scope or "all",
                f"{r['times_redeemed']}{limit}",
                str(valid),
            )
    console.print(table)


@coupons_app.command("create")
def coupons_create(
    org: Org,
    name: Annotated[str, typer.Option(help="shown on documents")],
    percent: Annotated[str | None, typer.Option(help="percentage off, e.g. 20")] = None,
    amount: Annotated[list[str] | None, typer.Option(help="fixed amount per currency, e.g. EUR=5.00")] = None,
    duration: Annotated[str, typer.Option(help="once, repeating or forever")] = "once",
    periods: Annotated[int | None, typer.Option(help="billed documents, for a repeating coupon")] = None,
    max_redemptions: Annotated[int | None, typer.Option(help="at most this many redemptions")] = None,
    code: Annotated[str | None, typer.Option(help="also create this promotion code for it")] = None,
) -> None:
    """Create a coupon (and optionally a promotion code for it) through the service the API uses."""
    from fiscus.services.discounts import CodeSpec, CouponSpec, create_coupon, create_promotion_code

    amounts: dict[str, Decimal] = {}
    for item in amount or []:
        cur, _, value = item.partition("=")
        amounts[cur.strip().upper()] = _decimal(value, f"amounts_off.{cur}")
    spec = CouponSpec(
        name,
        duration,
        percent_off=None if percent is None else _decimal(percent, "percent_off"),
        amounts_off=amounts,
        duration_periods=periods,
        max_redemptions=max_redemptions,
    )
    c = build()
    cid = create_coupon(c.db, c.clock, org, spec, actor="cli")
    console.print(f"coupon {cid} created")
    if code is not None:
        pid = create_promotion_code(c.db, c.clock, org, CodeSpec(cid, code), actor="cli")
        console.print(f"promotion code {pid} ({code.strip().upper()}) created")


@credits_app.command("list")
def credits_list(org: Org, customer: Annotated[int, typer.Option(help="customer id")]) -> None:
    """The customer's wallets: balance per currency and each grant's remaining amount."""
    from sqlalchemy import select

    from fiscus.adapters.db import tables_discounts as td
    from fiscus.domain.money import currency, from_minor

    c = build()
    w, g = td.wallets.c, td.wallet_grants.c
    table = Table("wallet", "currency", "grant", "kind", "reason", "remaining", "status", "expires")
    with c.db.read() as conn:
        wallets = conn.execute(
            select(td.wallets).where(w.organization_id == org, w.customer_id == customer).order_by(w.id)
        ).mappings()
        for wallet in list(wallets):
            cur = currency(wallet["currency"])
            console.print(f"wallet {wallet['id']}: {from_minor(wallet['balance_minor'], cur)} {cur.code}")
            for r in conn.execute(select(td.wallet_grants).where(g.wallet_id == wallet["id"]).order_by(g.id)):
                table.add_row(
                    str(wallet["id"]),
                    cur.code,
                    str(r.id),
                    r.kind,
                    r.reason,
                    str(from_minor(r.remaining_minor, cur)),
                    r.status,
                    "" if r.expires_at is None else r.expires_at.isoformat(),
                )
    console.print(table)


@credits_app.command("grant")
def credits_grant(
    org: Org,
    customer: Annotated[int, typer.Option(help="customer id")],
    amount: Annotated[str, typer.Option(help="in the customer's currency, e.g. 10.00")],
    currency_code: Annotated[str, typer.Option("--currency", help="the customer's currency")],
    reason: Annotated[str, typer.Option(help="shown on documents")] = "Promotional credit",
    priority: Annotated[int, typer.Option(help="lower is used first")] = 0,
) -> None:
    """Grant promotional credit (no payment; taxed as a discount when used)."""
    from fiscus.services.wallets import grant_credits

    c = build()
    gid = grant_credits(
        c.db,
        c.clock,
        org,
        customer,
        currency_code=currency_code.upper(),
        amount=_decimal(amount, "amount"),
        priority=priority,
        reason=reason,
        actor="cli",
    )
    console.print(f"grant {gid} created")


@credits_app.command("topup")
def credits_topup(
    org: Org,
    customer: Annotated[int, typer.Option(help="customer id")],
    amount: Annotated[str, typer.Option(help="tax included, e.g. 120.00")],
    currency_code: Annotated[str, typer.Option("--currency", help="the customer's currency")],
) -> None:
    """Issue a top-up invoice: once it is paid, the wallet holds `amount` of paid credit."""
    from fiscus.services.wallet_topups import create_topup

    c = build()
    doc = create_topup(
        c.db, c.clock, org, customer, currency_code=currency_code.upper(), amount=_decimal(amount, "amount")
    )
    console.print(f"top-up invoice {doc} issued")
