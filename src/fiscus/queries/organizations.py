"""Reading organisations and their settings as the API and the CLI show them (one shape for both)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from fiscus.adapters.db import tables as t
from fiscus.domain import organization as o
from fiscus.domain.errors import NotFoundError
from fiscus.domain.tax import TaxCategory
from fiscus.queries.pagination import cursor_page


def effective_paper_size(row: dict[str, Any]) -> str:
    """The paper size documents use: the chosen one, or the country's usual one."""
    return str(row.get("paper_size") or o.default_paper_size(str(row["country"])))


def present(row: dict[str, Any], series: list[dict[str, Any]], logo: dict[str, Any] | None) -> dict[str, Any]:
    lines = [x for x in (row["address_line1"], row["address_line2"]) if x]
    return {
        "id": row["id"],
        "object": "organization",
        "slug": row["slug"],
        "mode": row["mode"],
        "livemode": row["mode"] == "live",
        "sandbox_of": row["sandbox_of"],
        "legal_name": row["legal_name"],
        "trading_name": row["trading_name"],
        "email": row["email"],
        "address": {
            "lines": lines,
            "city": row["city"],
            "postal_code": row["postal_code"],
            "region": row["region"],
            "country": row["country"],
        },
        "country": row["country"],
        "vat_registered": bool(row["vat_registered"]),
        "vat_id": row["vat_id"],
        "tax_id": row["tax_id"],
        "tax_id_type": o.national_id_scheme(str(row["country"])),
        "default_currency": row["default_currency"],
        "locale": row["locale"],
        "timezone": row["timezone"],
        "paper_size": effective_paper_size(row),
        "paper_size_from_country": row["paper_size"] is None,
        "payment_terms_days": row["payment_terms_days"],
        "bank_accounts": list(row["bank_accounts"] or []),
        "footers": dict(row["footers"] or {}),
        "logo": logo,
        "subscription_document": row["subscription_document"],
        "order_document": row["order_document"],
        "auto_issue": bool(row["auto_issue"]),
        "cancel_issued_ahead": row["cancel_issued_ahead"],
        "customer_promotion_codes": bool(row["customer_promotion_codes"]),
        "tax_rounding": row["tax_rounding"],
        "facturx_enabled": bool(row["facturx_enabled"]),
        "number_series": series,
        "payment_settings_url": "/api/v1/payment_settings",
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _series(conn: Connection, org_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    ns = t.number_series.c
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in org_ids}
    query = (
        select(ns.organization_id, ns.document_type, ns.series, ns.format, ns.next_value, ns.start_value)
        .where(ns.organization_id.in_(org_ids))
        .order_by(ns.document_type, ns.series)
    )
    for r in conn.execute(query).mappings():
        out[r["organization_id"]].append(
            {k: r[k] for k in ("document_type", "series", "format", "next_value", "start_value")}
        )
    return out


def _logos(conn: Connection, rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    lg = t.organization_logos.c
    wanted = [(r["id"], r["logo_sha256"]) for r in rows if r["logo_sha256"]]
    out: dict[int, dict[str, Any]] = {}
    for org_id, sha in wanted:
        logo = conn.execute(
            select(lg.content_type, lg.width, lg.height).where(lg.organization_id == org_id, lg.sha256 == sha)
        ).one()
        out[org_id] = {
            "sha256": sha,
            "content_type": logo.content_type,
            "width": logo.width,
            "height": logo.height,
            "url": "/api/v1/organization/logo",
        }
    return out


def rate_text(rate: Decimal) -> str:
    """A rate as plain decimal text without trailing zeros ("0.2", "0.055"), so equal rates compare equal."""
    return format(rate.normalize(), "f")


def current_rates(conn: Connection, org_id: int, country: str) -> dict[str, str | None]:
    """The organisation's standard and reduced VAT rates for `country` (None where it has none)."""
    tr = t.tax_rates.c
    found = {
        r.category: rate_text(r.rate)
        for r in conn.execute(
            select(tr.category, tr.rate).where(
                tr.organization_id == org_id,
                tr.country == country,
                tr.category.in_([TaxCategory.STANDARD.value, TaxCategory.REDUCED.value]),
            )
        )
    }
    return {
        "standard": found.get(TaxCategory.STANDARD.value),
        "reduced": found.get(TaxCategory.REDUCED.value),
    }


def get_organization(conn: Connection, org_id: int) -> dict[str, Any]:
    row = conn.execute(select(t.organizations).where(t.organizations.c.id == org_id)).mappings().one_or_none()
    if row is None:
        raise NotFoundError("organization", org_id)
    data = dict(row)
    shown = present(data, _series(conn, [org_id])[org_id], _logos(conn, [data]).get(org_id))
    return {**shown, "vat_rates": current_rates(conn, org_id, str(data["country"]))}


def page_organizations(
    conn: Connection, *, limit: int, starting_after: int | None, ending_before: int | None
) -> tuple[list[dict[str, Any]], bool]:
    page = cursor_page(
        conn,
        select(t.organizations.c.id),
        t.organizations,
        limit=limit,
        starting_after=starting_after,
        ending_before=ending_before,
    )
    if not page.ids:
        return [], page.has_more
    rows = {
        r["id"]: dict(r)
        for r in conn.execute(select(t.organizations).where(t.organizations.c.id.in_(page.ids))).mappings()
    }
    series = _series(conn, page.ids)
    logos = _logos(conn, list(rows.values()))
    return [
        {
            **present(rows[i], series[i], logos.get(i)),
            "vat_rates": current_rates(conn, i, str(rows[i]["country"])),
        }
        for i in page.ids
    ], page.has_more


def current_logo(conn: Connection, org_id: int) -> tuple[str, bytes, str]:
    """The organisation's current logo: content type, bytes, hash (NotFound when it has none)."""
    lg = t.organization_logos.c
    row = conn.execute(
        select(lg.content_type, lg.data, lg.sha256)
        .join(
            t.organizations,
            (t.organizations.c.id == lg.organization_id) & (t.organizations.c.logo_sha256 == lg.sha256),
        )
        .where(lg.organization_id == org_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError("logo", org_id)
    return str(row.content_type), bytes(row.data), str(row.sha256)
