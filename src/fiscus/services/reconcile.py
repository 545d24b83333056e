"""Invariants checked against stored data (`fiscus reconcile`). Each query must return no rows.

They restate, independently of the code that writes, what must always hold: one live document per
subscription period, no overlapping periods, gapless numbers per series, totals that add up, an
audit row for every issued document, and credits that add up (credit notes never exceed the invoice,
an invoice's credited amount is its credit notes plus customer credit applied to it, no balance below 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import text

from fiscus.adapters.db.engine import Database

CHECKS: Final[dict[str, str]] = {
    "one_live_document_per_period": """
        SELECT subscription_id, period_start, COUNT(*) AS documents
        FROM documents
        WHERE subscription_id IS NOT NULL AND period_start IS NOT NULL
          AND status NOT IN ('void', 'converted') AND type IN ('invoice', 'proforma')
        GROUP BY subscription_id, period_start HAVING COUNT(*) > 1""",
    "periods_do_not_overlap": """
        SELECT a.subscription_id, a.id AS period_a, b.id AS period_b
        FROM subscription_periods a JOIN subscription_periods b
          ON a.subscription_id = b.subscription_id AND a.id < b.id
         AND a.period_start < b.period_end AND b.period_start < a.period_end""",
    "period_rows_match_documents": """
        SELECT p.id, p.document_id FROM subscription_periods p JOIN documents d ON d.id = p.document_id
        WHERE d.subscription_id <> p.subscription_id OR d.period_start <> p.period_start
           OR d.organization_id <> p.organization_id""",
    "numbers_gapless_per_series": """
        SELECT d.organization_id, d.type, d.series, COUNT(*) AS issued, MIN(d.sequence) AS first,
               MAX(d.sequence) AS last, COUNT(DISTINCT d.sequence) AS distinct_numbers
        FROM documents d JOIN number_series s
          ON s.organization_id = d.organization_id AND s.document_type = d.type AND s.series = d.series
        WHERE d.sequence IS NOT NULL
        GROUP BY d.organization_id, d.type, d.series, s.start_value, s.next_value
        HAVING COUNT(*) <> COUNT(DISTINCT d.sequence) OR MIN(d.sequence) <> s.start_value
            OR MAX(d.sequence) - MIN(d.sequence) + 1 <> COUNT(*) OR s.next_value <> MAX(d.sequence) + 1""",
    "number_iff_issued": """
        SELECT id, status, number FROM documents
        WHERE (status = 'draft') <> (number IS NULL OR sequence IS NULL)""",
    "total_is_subtotal_plus_tax": """
        SELECT id, subtotal_minor, tax_minor, total_minor FROM documents
        WHERE total_minor <> subtotal_minor + tax_minor""",
    "subtotal_and_tax_are_line_sums": """
        SELECT d.id, d.subtotal_minor, d.tax_minor, SUM(l.amount_minor) AS lines, SUM(l.tax_minor) AS line_tax
        FROM documents d JOIN document_lines l ON l.document_id = d.id
        GROUP BY d.id, d.subtotal_minor, d.tax_minor
        HAVING SUM(l.amount_minor) <> d.subtotal_minor OR SUM(l.tax_minor) <> d.tax_minor""",
    "documents_have_lines": """
        SELECT d.id FROM documents d
        WHERE NOT EXISTS (SELECT 1 FROM document_lines l WHERE l.document_id = d.id)""",
    "breakdown_matches_totals": """
        SELECT d.id, d.subtotal_minor, d.tax_minor, SUM(x.base_minor) AS base, SUM(x.tax_minor) AS tax
        FROM documents d JOIN document_taxes x ON x.document_id = d.id
        GROUP BY d.id, d.subtotal_minor, d.tax_minor
        HAVING SUM(x.base_minor) <> d.subtotal_minor OR SUM(x.tax_minor) <> d.tax_minor""",
    "issued_documents_have_audit": """
        SELECT d.id FROM documents d
        WHERE d.status <> 'draft' AND NOT EXISTS (
            SELECT 1 FROM audit_events a
            WHERE a.organization_id = d.organization_id AND a.entity_type = 'document'
              AND a.entity_id = d.id AND a.action IN ('issued', 'issue'))""",
    "credited_is_credit_notes_plus_applied_credit": """
        SELECT d.id, d.amount_credited_minor, COALESCE(cn.total, 0) AS credit_notes,
               COALESCE(ap.applied, 0) AS applied
        FROM documents d
        LEFT JOIN (SELECT corrected_document_id AS id, SUM(total_minor) AS total FROM documents
                   WHERE type = 'credit_note' AND status <> 'void' AND corrected_document_id IS NOT NULL
                   GROUP BY corrected_document_id) cn ON cn.id = d.id
        LEFT JOIN (SELECT document_id AS id, -SUM(amount_minor) AS applied FROM customer_credits
                   WHERE amount_minor < 0 GROUP BY document_id) ap ON ap.id = d.id
        WHERE d.type = 'invoice'
          AND d.amount_credited_minor <> COALESCE(cn.total, 0) + COALESCE(ap.applied, 0)""",
    "credit_notes_within_invoice_total": """
        SELECT i.id, i.total_minor, SUM(c.total_minor) AS credited
        FROM documents i JOIN documents c ON c.corrected_document_id = i.id
        WHERE c.type = 'credit_note' AND c.status <> 'void'
        GROUP BY i.id, i.total_minor HAVING SUM(c.total_minor) > i.total_minor""",
    "customer_credit_never_negative": """
        SELECT organization_id, customer_id, currency, SUM(amount_minor) AS balance FROM customer_credits
        GROUP BY organization_id, customer_id, currency HAVING SUM(amount_minor) < 0""",
    "tenant_consistency": """
        SELECT d.id FROM documents d JOIN customers c ON c.id = d.customer_id
        WHERE c.organization_id <> d.organization_id
        UNION ALL
        SELECT l.id FROM document_lines l JOIN documents d ON d.id = l.document_id
        WHERE l.organization_id <> d.organization_id""",
}


@dataclass(frozen=True, slots=True)
class Violation:
    check: str
    row: dict[str, object]


def reconcile(db: Database, *, limit: int = 20) -> dict[str, list[Violation]]:
    """Run every check; returns check name → up to `limit` offending rows (empty lists when clean)."""
    report: dict[str, list[Violation]] = {}
    with db.read() as conn:
        for name, sql in CHECKS.items():
            rows = conn.execute(text(sql)).mappings().fetchmany(limit)
            report[name] = [Violation(name, dict(r)) for r in rows]
    return report
