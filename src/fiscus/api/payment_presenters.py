"""How the native API shows payment methods, payment attempts, refunds and collection settings: rows and
what `fiscus.queries.payments` says about them, as the `PaymentMethodOut`, `PaymentOut`, `RefundOut` and
`PaymentSettingsOut` shapes (the provider's token is never shown)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from fiscus.api import presenters as p
from fiscus.domain.money import currency
from fiscus.queries.payments import attempt_money, default_payment_methods, document_currencies


def payment_methods(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    defaults = default_payment_methods(conn, {r["customer_id"] for r in rows})
    keys = ("customer_id", "type", "network", "brand", "last4", "exp_month", "exp_year", "fingerprint")
    return [
        {
            "id": r["id"],
            "object": "payment_method",
            **{k: r[k] for k in keys},
            "holder": r["holder"],
            "status": r["status"],
            "is_default": defaults.get(r["customer_id"]) == r["id"],
            "created_at": r["created_at"],
            "updated_at": r["updated_at"],
        }
        for r in rows
    ]


def payments(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attempts with their card, captured and refunded amounts (the provider token is never shown)."""
    money = attempt_money(conn, rows)
    out = []
    for r in rows:
        cur = currency(r["currency"])
        m = money[r["id"]]
        out.append(
            {
                "id": r["id"],
                "object": "payment",
                "document_id": r["document_id"],
                "paid_document_id": m.paid_document_id,
                "customer_id": r["customer_id"],
                "status": r["status"],
                "amount": p.money(r["amount_minor"], cur),
                "currency": cur.code,
                "payment_method_id": r["payment_method_id"],
                "card": {"brand": m.card[0], "last4": m.card[1]} if m.card else None,
                "error": (
                    {"code": r["error_code"], "message": r["error_message"] or ""}
                    if r["error_code"] is not None
                    else None
                ),
                "hard_decline": r["hard_decline"],
                "trigger": r["trigger"],
                "capture_mode": r["capture_mode"],
                "provider": r["provider"],
                "provider_charge_id": r["provider_charge_id"],
                "authorized_amount": p.money(r["authorized_minor"], cur),
                "captured_amount": p.money(m.captured_minor, cur),
                "captured_at": m.captured_at,
                "refunded_amount": p.money(m.refunded_minor, cur),
                "created_at": r["created_at"],
                "settled_at": r["settled_at"],
            }
        )
    return out


def refunds(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    currencies = document_currencies(conn, {r["document_id"] for r in rows})
    out = []
    for r in rows:
        cur = currency(currencies[r["document_id"]])
        out.append(
            {
                "id": r["id"],
                "object": "refund",
                "document_id": r["document_id"],
                "payment_id": r["attempt_id"],
                "amount": p.money(r["amount_minor"], cur),
                "currency": cur.code,
                "status": r["status"],
                "reason": r["reason"],
                "credit_note_id": r["credit_note_id"],
                "error_message": r["error_message"],
                "created_at": r["created_at"],
                "settled_at": r["settled_at"],
            }
        )
    return out


def payment_settings(row: Any) -> dict[str, Any]:
    return {
        "object": "payment_settings",
        "auto_collect": bool(row["auto_collect"]),
        "capture_mode": row["capture_mode"],
        "retry_days": list(row["retry_days"]),
        "retry_final_action": row["retry_final_action"],
    }
