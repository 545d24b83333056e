"""Invariants checked against stored data (`fiscus reconcile`). Each query must return no rows.

They restate, independently of the code that writes, what must always hold: one live document per
subscription period, no overlapping periods, gapless numbers per series, totals that add up, every
line's quantity × unit price rounding to its amount with no negative price (checked in Python), an
audit row for every issued document, and credits that add up (credit notes never exceed the invoice,
an invoice's credited amount is its credit notes plus customer credit and paid wallet credit applied
to it, no balance below 0).

Payments: no attempt captures more than it authorised or refunds more than it captured; a document's
paid and refunded amounts are the sums of its captures and refunds; a paid invoice is covered by money
kept plus credit; one payment in flight per document; captured money belongs to a succeeded attempt and
pays that attempt's document (or the invoice its proforma became); every refund of an invoice goes with
a credit note of the same amount. `reconcile_with_provider` checks Fiscus's records against the payment
provider's own ledger, one to one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, Subquery, Table, and_, func, select, text

from fiscus.adapters.db import rollup_payments, rollup_triggers
from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db.engine import Database
from fiscus.domain.documents import line_amount_minor
from fiscus.domain.money import currency
from fiscus.domain.payments import UNSETTLED, AttemptStatus, PaymentProvider, ProviderLedger, attempt_status
from fiscus.services import mrr_history

CHECKS: Final[dict[str, str]] = {
    # A period's advance document (fixed prices, billed ahead): at most one live. Its usage is billed in
    # arrears on documents of its own for the same period (ADR 0008), found by their `usage_lines` (a
    # usage proforma's invoice by the proforma's): those are keyed by `usage_periods` (unique per
    # subscription and start) and may be followed by late-usage adjustments, so they are not doubles.
    "one_live_document_per_period": """
        SELECT d.subscription_id, d.period_start, COUNT(*) AS documents
        FROM documents d
        WHERE d.subscription_id IS NOT NULL AND d.period_start IS NOT NULL
          AND d.status NOT IN ('void', 'converted') AND d.type IN ('invoice', 'proforma')
          AND NOT EXISTS (
            SELECT 1 FROM usage_lines u
            WHERE u.organization_id = d.organization_id
              AND (u.document_id = d.id OR u.document_id = d.converted_from_id))
        GROUP BY d.subscription_id, d.period_start HAVING COUNT(*) > 1""",
    # The usage documents of a period: billed once (the one `usage_periods` row per subscription and
    # start names the standing one); every live usage document is of a period so billed.
    "usage_documents_of_billed_periods": """
        SELECT d.id, d.subscription_id, d.period_start FROM documents d
        WHERE d.status NOT IN ('void', 'converted') AND d.type IN ('invoice', 'proforma')
          AND EXISTS (
            SELECT 1 FROM usage_lines u
            WHERE u.organization_id = d.organization_id
              AND (u.document_id = d.id OR u.document_id = d.converted_from_id))
          AND NOT EXISTS (
            SELECT 1 FROM usage_periods p
            WHERE p.organization_id = d.organization_id AND p.subscription_id = d.subscription_id
              AND p.period_start = d.period_start)""",
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
        WHERE (status = 'draft') <> (number IS NULL OR sequence IS NULL)
          AND NOT (status = 'void' AND number IS NULL AND sequence IS NULL)""",
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
        WHERE d.status <> 'draft' AND d.sequence IS NOT NULL AND NOT EXISTS (
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
        LEFT JOIN (SELECT l.document_id AS id, -SUM(l.amount_minor) AS prepaid FROM wallet_ledger l
                   JOIN wallet_grants g ON g.id = l.grant_id
                   WHERE l.kind = 'consumed' AND g.kind = 'paid' GROUP BY l.document_id) pp ON pp.id = d.id
        WHERE d.type = 'invoice'
          AND d.amount_credited_minor
              <> COALESCE(cn.total, 0) + COALESCE(ap.applied, 0) + COALESCE(pp.prepaid, 0)""",
    "credit_notes_within_invoice_total": """
        SELECT i.id, i.total_minor, SUM(c.total_minor) AS credited
        FROM documents i JOIN documents c ON c.corrected_document_id = i.id
        WHERE c.type = 'credit_note' AND c.status <> 'void'
        GROUP BY i.id, i.total_minor HAVING SUM(c.total_minor) > i.total_minor""",
    "customer_credit_never_negative": """
        SELECT organization_id, customer_id, currency, SUM(amount_minor) AS balance FROM customer_credits
        GROUP BY organization_id, customer_id, currency HAVING SUM(amount_minor) < 0""",
    # issue 17, ADR 0009: a wallet's balance is its ledger and its grants' remaining, never negative
    "wallet_balance_is_its_ledger": """
        SELECT w.id, w.balance_minor FROM wallets w
        WHERE w.balance_minor < 0
           OR w.balance_minor <> (SELECT COALESCE(SUM(l.amount_minor), 0) FROM wallet_ledger l
                                  WHERE l.wallet_id = w.id)
           OR w.balance_minor <> (SELECT COALESCE(SUM(g.remaining_minor), 0) FROM wallet_grants g
                                  WHERE g.wallet_id = w.id)""",
    "tenant_consistency": """
        SELECT d.id FROM documents d JOIN customers c ON c.id = d.customer_id
        WHERE c.organization_id <> d.organization_id
        UNION ALL
        SELECT l.id FROM document_lines l JOIN documents d ON d.id = l.document_id
        WHERE l.organization_id <> d.organization_id""",
    # --- payments ---
    "captured_within_authorized": """
        SELECT a.id AS attempt_id, a.authorized_minor, SUM(c.amount_minor) AS captured
        FROM payment_attempts a JOIN payment_captures c ON c.attempt_id = a.id AND c.status = 'succeeded'
        WHERE a.provider <> 'external'
        GROUP BY a.id, a.authorized_minor HAVING SUM(c.amount_minor) > a.authorized_minor""",
    "refunded_within_captured": """
        SELECT a.id AS attempt_id, COALESCE(c.captured, 0) AS captured, r.refunded
        FROM payment_attempts a
        JOIN (SELECT attempt_id, SUM(amount_minor) AS refunded FROM payment_refunds
              WHERE status IN ('succeeded', 'pending') GROUP BY attempt_id) r ON r.attempt_id = a.id
        LEFT JOIN (SELECT attempt_id, SUM(amount_minor) AS captured FROM payment_captures
                   WHERE status = 'succeeded' GROUP BY attempt_id) c ON c.attempt_id = a.id
        WHERE r.refunded > COALESCE(c.captured, 0)""",
    "paid_is_sum_of_captures": """
        SELECT d.id, d.amount_paid_minor, COALESCE(c.captured, 0) AS captured
        FROM documents d
        LEFT JOIN (SELECT document_id, SUM(amount_minor) AS captured FROM payment_captures
                   WHERE status = 'succeeded' GROUP BY document_id) c ON c.document_id = d.id
        WHERE d.amount_paid_minor <> COALESCE(c.captured, 0)""",
    "refunded_is_sum_of_refunds": """
        SELECT d.id, d.amount_refunded_minor, COALESCE(r.refunded, 0) AS refunded
        FROM documents d
        LEFT JOIN (SELECT document_id, SUM(amount_minor) AS refunded FROM payment_refunds
                   WHERE status = 'succeeded' GROUP BY document_id) r ON r.document_id = d.id
        WHERE d.amount_refunded_minor <> COALESCE(r.refunded, 0)""",
    "paid_documents_are_covered": """
        SELECT d.id, d.total_minor, COALESCE(c.captured, 0) AS captured, COALESCE(r.refunded, 0) AS refunded,
               d.amount_credited_minor
        FROM documents d
        LEFT JOIN (SELECT document_id, SUM(amount_minor) AS captured FROM payment_captures
                   WHERE status = 'succeeded' GROUP BY document_id) c ON c.document_id = d.id
        LEFT JOIN (SELECT document_id, SUM(amount_minor) AS refunded FROM payment_refunds
                   WHERE status = 'succeeded' GROUP BY document_id) r ON r.document_id = d.id
        WHERE d.status = 'paid' AND d.type <> 'credit_note'
          AND COALESCE(c.captured, 0) - COALESCE(r.refunded, 0) + d.amount_credited_minor < d.total_minor""",
    "one_payment_in_flight_per_document": """
        SELECT document_id, COUNT(*) AS in_flight FROM payment_attempts
        WHERE status IN ('pending', 'unknown', 'authorized')
        GROUP BY document_id HAVING COUNT(*) > 1""",
    "captures_belong_to_succeeded_attempts": """
        SELECT c.id AS capture_id, a.id AS attempt_id, a.status FROM payment_captures c
        JOIN payment_attempts a ON a.id = c.attempt_id
        WHERE c.status = 'succeeded' AND a.status <> 'succeeded'""",
    "captures_pay_the_attempts_document": """
        SELECT c.id AS capture_id, c.document_id, a.document_id AS attempt_document_id
        FROM payment_captures c JOIN payment_attempts a ON a.id = c.attempt_id
        WHERE c.document_id <> a.document_id AND NOT EXISTS (
            SELECT 1 FROM documents i WHERE i.id = c.document_id AND i.converted_from_id = a.document_id)""",
    "invoice_refunds_have_credit_notes": """
        SELECT r.id AS refund_id, r.document_id, r.amount_minor, r.credit_note_id, n.total_minor AS credited
        FROM payment_refunds r JOIN documents d ON d.id = r.document_id
        LEFT JOIN documents n ON n.id = r.credit_note_id
        WHERE r.status = 'succeeded' AND d.type = 'invoice'
          AND (n.id IS NULL OR n.type <> 'credit_note' OR n.status IN ('draft', 'void')
               OR n.corrected_document_id <> r.document_id OR n.total_minor <> r.amount_minor)""",
    "payment_tenant_consistency": """
        SELECT 'payment_attempt' AS row_kind, a.id FROM payment_attempts a
        JOIN documents d ON d.id = a.document_id
        WHERE a.organization_id <> d.organization_id OR a.customer_id <> d.customer_id
        UNION ALL
        SELECT 'payment_attempt', a.id FROM payment_attempts a
        JOIN payment_methods m ON m.id = a.payment_method_id
        WHERE m.organization_id <> a.organization_id OR m.customer_id <> a.customer_id
        UNION ALL
        SELECT 'payment_capture', c.id FROM payment_captures c JOIN payment_attempts a ON a.id = c.attempt_id
        JOIN documents d ON d.id = c.document_id
        WHERE c.organization_id <> a.organization_id OR d.organization_id <> a.organization_id
        UNION ALL
        SELECT 'payment_refund', r.id FROM payment_refunds r JOIN payment_attempts a ON a.id = r.attempt_id
        JOIN documents d ON d.id = r.document_id
        WHERE r.organization_id <> a.organization_id OR d.organization_id <> a.organization_id""",
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
        report.update(_line_checks(conn, limit))
        report.update(_rollup_checks(conn, limit))
    return report


MRR_CHECK: Final = "mrr_history_matches_subscriptions"


def _rollup_checks(conn: Connection, limit: int) -> dict[str, list[Violation]]:
    """The console's maintained aggregates (migration 0024) against their sources: document sums,
    charge recoveries and payment hours (kept by triggers), and the MRR history (kept by the
    subscription services) recomputed from the subscriptions and the audit trail."""
    checks = {
        **rollup_triggers.CHECKS,
        "payment_hours_match_payments": rollup_payments.check(conn.dialect.name == "postgresql"),
    }
    report: dict[str, list[Violation]] = {}
    for name, sql in checks.items():
        rows = conn.execute(text(sql)).mappings().fetchmany(limit)
        report[name] = [Violation(name, dict(r)) for r in rows]
    report[MRR_CHECK] = [Violation(MRR_CHECK, row) for row in mrr_history.differences(conn, limit=limit)]
    return report


LINE_AMOUNT_CHECK: Final = "line_amount_is_quantity_times_unit_price"
PRICE_SIGN_CHECK: Final = "unit_price_not_negative"


def _line_checks(conn: Connection, limit: int) -> dict[str, list[Violation]]:
    """Every stored line, in Python (quantities and prices are exact decimal text on SQLite, so SQL
    cannot multiply them): quantity × unit price, rounded by the engine's one rule (ADR 0002), is the
    line's amount (its gross for a tax-inclusive price), and no unit price is negative (EN 16931 BR-27,
    ADR 0006). What the PDF, the API and the e-invoice print then recomputes to what was charged."""
    found: dict[str, list[Violation]] = {LINE_AMOUNT_CHECK: [], PRICE_SIGN_CHECK: []}
    dl, d, da = t.document_lines.c, t.documents.c, td.document_allowances.c
    # a line's discounts (issue 17) came off quantity × unit price before tax
    off = (
        select(da.document_id, da.line_position, func.sum(da.amount_minor).label("off"))
        .group_by(da.document_id, da.line_position)
        .subquery()
    )
    query = (
        select(
            dl.id,
            dl.document_id,
            dl.position,
            d.currency,
            dl.quantity,
            dl.unit_price,
            dl.tax_inclusive,
            dl.amount_minor,
            dl.tax_minor,
            func.coalesce(off.c.off, 0).label("off"),
        )
        .join(t.documents, d.id == dl.document_id)
        .outerjoin(off, and_(off.c.document_id == dl.document_id, off.c.line_position == dl.position))
        .order_by(dl.id)
        .execution_options(yield_per=2000)
    )
    for r in conn.execute(query):
        cur = currency(r.currency)
        charged = r.amount_minor + (r.tax_minor if r.tax_inclusive else 0) + int(r.off)
        expected = line_amount_minor(r.quantity, r.unit_price, cur)
        row = {"line_id": r.id, "document_id": r.document_id, "position": r.position}
        if expected != charged and len(found[LINE_AMOUNT_CHECK]) < limit:
            detail = {"quantity": str(r.quantity), "unit_price": str(r.unit_price)}
            found[LINE_AMOUNT_CHECK].append(
                Violation(
                    LINE_AMOUNT_CHECK, {**row, **detail, "expected_minor": expected, "amount_minor": charged}
                )
            )
        if r.unit_price < 0 and len(found[PRICE_SIGN_CHECK]) < limit:
            found[PRICE_SIGN_CHECK].append(
                Violation(PRICE_SIGN_CHECK, {**row, "unit_price": str(r.unit_price)})
            )
    return found


PROVIDER_CHECK: Final = "matches_provider_ledger"
HOLDS_MONEY: Final = frozenset({AttemptStatus.SUCCEEDED, AttemptStatus.AUTHORIZED})


def reconcile_with_provider(db: Database, provider: PaymentProvider) -> list[Violation]:
    """Fiscus's charges against the provider's ledger, one to one. Every Fiscus attempt holding money
    (succeeded or authorised) is a charge at the provider with the same captured and refunded amounts,
    and every provider charge that took or holds money (captured, or authorised) is the charge of exactly
    one Fiscus attempt (by charge id, else by its reference, which is the attempt's idempotency key).

    Money still moving is not a mismatch: a capture or refund Fiscus has sent but not settled lets the
    provider's amount lie between what Fiscus settled and that plus what is pending, and a charge whose
    attempt is still pending or unknown is the janitor's (`settle_unknown`) to settle. The ledger must be
    this installation's alone (one provider account per Fiscus). Provider errors propagate: a check that
    could not run is not a clean one."""
    ledger = provider.ledger()
    a = t.payment_attempts.c
    captured, capturing = (
        _per_attempt(t.payment_captures, "succeeded"),
        _per_attempt(t.payment_captures, "pending"),
    )
    refunded, refunding = (
        _per_attempt(t.payment_refunds, "succeeded"),
        _per_attempt(t.payment_refunds, "pending"),
    )
    query = (
        select(
            a.id,
            a.idempotency_key,
            a.provider_charge_id,
            a.status,
            captured.c.amount,
            capturing.c.amount,
            refunded.c.amount,
            refunding.c.amount,
        )
        .select_from(t.payment_attempts)
        .outerjoin(captured, captured.c.attempt_id == a.id)
        .outerjoin(capturing, capturing.c.attempt_id == a.id)
        .outerjoin(refunded, refunded.c.attempt_id == a.id)
        .outerjoin(refunding, refunding.c.attempt_id == a.id)
        .where(a.provider == provider.name)
        .order_by(a.id)
    )
    with db.read() as conn:
        attempts = [
            _Attempt(row[0], row[1], row[2], AttemptStatus(row[3]), *(int(v or 0) for v in row[4:]))
            for row in conn.execute(query)
        ]
    by_charge = {x.charge_id: x for x in attempts if x.charge_id is not None}
    by_key = {x.key: x for x in attempts}
    out: list[Violation] = []

    def bad(problem: str, **row: object) -> None:
        out.append(Violation(PROVIDER_CHECK, {"problem": problem, **row}))

    for x in attempts:
        if x.status not in HOLDS_MONEY:
            continue
        charge = ledger.charges.get(x.charge_id) if x.charge_id is not None else None
        if charge is None:
            bad("charge_missing_at_provider", attempt_id=x.id, charge_id=x.charge_id, status=x.status.value)
            continue
        if attempt_status(charge) is not x.status:
            bad(
                "status_differs",
                attempt_id=x.id,
                charge_id=x.charge_id,
                fiscus=x.status.value,
                provider=charge.status,
            )
        if charge.reference is not None and charge.reference != x.key:
            bad(
                "charge_of_another_reference",
                attempt_id=x.id,
                charge_id=x.charge_id,
                reference=charge.reference,
            )
        if not x.captured <= charge.captured_minor <= x.captured + x.capturing:
            bad(
                "captured_amount_differs",
                attempt_id=x.id,
                charge_id=x.charge_id,
                fiscus=x.captured,
                provider=charge.captured_minor,
            )
        if not x.refunded <= charge.refunded_minor <= x.refunded + x.refunding:
            bad(
                "refunded_amount_differs",
                attempt_id=x.id,
                charge_id=x.charge_id,
                fiscus=x.refunded,
                provider=charge.refunded_minor,
            )
    for charge in sorted(ledger.charges.values(), key=lambda ch: ch.charge_id):
        if charge.captured_minor <= 0 and charge.status != "authorized":
            continue
        owner = by_charge.get(charge.charge_id)
        if owner is None and charge.reference is not None:
            owner = by_key.get(charge.reference)
        if owner is None:
            bad(
                "unknown_charge_at_provider",
                charge_id=charge.charge_id,
                reference=charge.reference,
                captured=charge.captured_minor,
                status=charge.status,
            )
            continue
        if owner.status in UNSETTLED:
            continue
        if owner.charge_id != charge.charge_id:
            bad(
                "second_charge_for_attempt",
                attempt_id=owner.id,
                charge_id=charge.charge_id,
                recorded=owner.charge_id,
            )
        elif owner.status not in HOLDS_MONEY:
            bad(
                "money_on_unsuccessful_attempt",
                attempt_id=owner.id,
                charge_id=charge.charge_id,
                status=owner.status.value,
                captured=charge.captured_minor,
            )
    out += _refunds_one_to_one(db, provider, ledger)
    return out


def _refunds_one_to_one(db: Database, provider: PaymentProvider, ledger: ProviderLedger) -> list[Violation]:
    """Where the provider lists a charge's refunds: each is one Fiscus refund of the same amount (by the
    provider's refund id, or by Fiscus's idempotency key while it is still pending), and each Fiscus refund
    the provider numbered is in its list."""
    a, r = t.payment_attempts.c, t.payment_refunds.c
    query = (
        select(a.provider_charge_id, r.id, r.idempotency_key, r.provider_refund_id, r.amount_minor, r.status)
        .join(t.payment_attempts, a.id == r.attempt_id)
        .where(a.provider == provider.name, r.status != "failed")
        .order_by(r.id)
    )
    with db.read() as conn:
        rows = conn.execute(query).all()
    by_id = {row.provider_refund_id: row for row in rows if row.provider_refund_id is not None}
    by_key = {row.idempotency_key: row for row in rows}
    out: list[Violation] = []

    def bad(problem: str, **row: object) -> None:
        out.append(Violation(PROVIDER_CHECK, {"problem": problem, **row}))

    listed: set[str] = set()
    for charge in sorted(ledger.charges.values(), key=lambda ch: ch.charge_id):
        for line in charge.refunds or ():
            listed.add(line.refund_id)
            mine = by_id.get(line.refund_id)
            if mine is None and line.reference is not None:
                mine = by_key.get(line.reference)
                if mine is not None and mine.status != "pending":
                    mine = None  # settled under another provider id: not this one
            if mine is None:
                bad("refund_missing_in_fiscus", charge_id=charge.charge_id, refund_id=line.refund_id)
            elif mine.amount_minor != line.amount_minor or mine.provider_charge_id != charge.charge_id:
                bad(
                    "refund_differs",
                    refund_id=mine.id,
                    provider_refund_id=line.refund_id,
                    fiscus=mine.amount_minor,
                    provider=line.amount_minor,
                )
    for provider_id, row in sorted(by_id.items()):
        held = ledger.charges.get(row.provider_charge_id or "")
        if held is not None and held.refunds is not None and provider_id not in listed:
            bad("refund_missing_at_provider", refund_id=row.id, provider_refund_id=provider_id)
    return out


@dataclass(frozen=True, slots=True)
class _Attempt:
    id: int
    key: str
    charge_id: str | None
    status: AttemptStatus
    captured: int
    capturing: int
    refunded: int
    refunding: int


def _per_attempt(table: Table, status: str) -> Subquery:
    """Σ amount per attempt of the captures or refunds in one status."""
    return (
        select(table.c.attempt_id.label("attempt_id"), func.sum(table.c.amount_minor).label("amount"))
        .where(table.c.status == status)
        .group_by(table.c.attempt_id)
        .subquery()
    )
