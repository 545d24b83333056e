"""Loading the facts a billing decision needs (organisation, rates, customers, catalog) in few queries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.arrays import any_of
from fiscus.domain.documents import line_description
from fiscus.domain.errors import NotFoundError
from fiscus.domain.money import Currency, currency
from fiscus.domain.organization import default_paper_size
from fiscus.domain.tax import RateTable, TaxCategory, TaxParty, TaxRate, TaxRounding


@dataclass(frozen=True, slots=True)
class OrgContext:
    id: int
    row: dict[str, Any]
    tz: ZoneInfo
    rates: RateTable
    rounding: TaxRounding

    @property
    def tax_party(self) -> TaxParty:
        return TaxParty(self.row["country"], self.row["vat_id"], bool(self.row["vat_registered"]))

    def seller_snapshot(self) -> dict[str, Any]:
        """The seller as frozen on a document (computed once per context: a batch shares it)."""
        cached: dict[str, Any] | None = self.row.get("_seller_snapshot")
        if cached is None:
            keys = ("legal_name", "email", "address_line1", "address_line2", "city", "postal_code", "country")
            cached = {k: self.row[k] for k in keys}
            cached.update(vat_id=self.row["vat_id"], tax_id=self.row["tax_id"], timezone=self.row["timezone"])
            cached.update(seller_settings(self.row))
            self.row["_seller_snapshot"] = cached
        return cached


def seller_settings(row: dict[str, Any]) -> dict[str, Any]:
    """The settings a document freezes besides identity and address (migration 0008): what the PDF,
    the page and Factur-X may print later must be what was true at issue, not what is true now."""
    return {
        "trading_name": row.get("trading_name"),
        "region": row.get("region") or "",
        "vat_registered": bool(row.get("vat_registered")),
        "bank_accounts": list(row.get("bank_accounts") or []),
        "footers": dict(row.get("footers") or {}),
        "paper_size": row.get("paper_size") or default_paper_size(str(row["country"])),
        "logo_sha256": row.get("logo_sha256"),
    }


@dataclass(frozen=True, slots=True)
class CustomerContext:
    id: int
    row: dict[str, Any]

    @property
    def currency(self) -> Currency:
        return currency(self.row["currency"])

    @property
    def tax_party(self) -> TaxParty:
        return TaxParty(self.row["country"], self.row["vat_id"])

    def buyer_snapshot(self) -> dict[str, Any]:
        keys = ("name", "email", "address_line1", "address_line2", "city", "postal_code", "country", "vat_id")
        snap = {k: self.row[k] for k in keys}
        snap.update(locale=self.row["locale"], customer_id=self.id)
        return snap


@dataclass(frozen=True, slots=True)
class PriceContext:
    """A price with its variant and product, as a line needs them."""

    id: int
    organization_id: int
    currency: str
    unit_amount: Decimal
    interval: str | None
    interval_count: int
    tax_inclusive: bool
    tax_category: TaxCategory
    variant_id: int
    variant_name: str
    variant_code: str
    product_id: int
    product_name: str

    @property
    def description(self) -> str:
        return line_description(self.product_name, self.variant_name)


def load_orgs(conn: Connection, ids: Iterable[int]) -> dict[int, OrgContext]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    orgs = {
        r["id"]: dict(r)
        for r in conn.execute(select(t.organizations).where(t.organizations.c.id.in_(wanted))).mappings()
    }
    rates: dict[int, dict[tuple[str, TaxCategory], TaxRate]] = {i: {} for i in orgs}
    for r in conn.execute(select(t.tax_rates).where(t.tax_rates.c.organization_id.in_(wanted))).mappings():
        cat = TaxCategory(r["category"])
        rates[r["organization_id"]][(r["country"], cat)] = TaxRate(r["country"], cat, r["rate"], r["note"])
    missing = set(wanted) - set(orgs)
    if missing:
        raise NotFoundError("organization", min(missing))
    return {
        i: OrgContext(i, row, ZoneInfo(row["timezone"]), rates[i], TaxRounding(row["tax_rounding"]))
        for i, row in orgs.items()
    }


def load_org(conn: Connection, org_id: int) -> OrgContext:
    return load_orgs(conn, [org_id])[org_id]


def load_customers(conn: Connection, org_id: int | None, ids: Iterable[int]) -> dict[int, CustomerContext]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    query = select(t.customers).where(any_of(conn, t.customers.c.id, wanted))
    if org_id is not None:
        query = query.where(t.customers.c.organization_id == org_id)
    return {r["id"]: CustomerContext(r["id"], dict(r)) for r in conn.execute(query).mappings()}


def load_prices(conn: Connection, org_id: int | None, ids: Iterable[int]) -> dict[int, PriceContext]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    p, v, pr = t.prices, t.variants, t.products
    query = (
        select(
            p.c.id,
            p.c.organization_id,
            p.c.currency,
            p.c.unit_amount,
            p.c.interval,
            p.c.interval_count,
            p.c.tax_inclusive,
            p.c.tax_category,
            v.c.id.label("variant_id"),
            v.c.name.label("variant_name"),
            v.c.code.label("variant_code"),
            pr.c.id.label("product_id"),
            pr.c.name.label("product_name"),
        )
        .join(v, v.c.id == p.c.variant_id)
        .join(pr, pr.c.id == v.c.product_id)
        .where(p.c.id.in_(wanted))
    )
    if org_id is not None:
        query = query.where(p.c.organization_id == org_id)
    return {
        r.id: PriceContext(
            r.id,
            r.organization_id,
            r.currency,
            r.unit_amount,
            r.interval,
            r.interval_count,
            bool(r.tax_inclusive),
            TaxCategory(r.tax_category),
            r.variant_id,
            r.variant_name,
            r.variant_code,
            r.product_id,
            r.product_name,
        )
        for r in conn.execute(query)
    }
