"""Aggregates kept by database triggers (migration 0024), so the console's dashboard and list totals
read a few rows per day instead of every document or attempt. Like `document_counts` (0022), they are
written in the same transaction as every INSERT, UPDATE and DELETE of their source rows, so no writer
can forget them.

- `document_sums`: count, Σ total and Σ amount due (what `console_documents.totals` calls due: open or
  uncollectible, not a credit note, never below 0 per document) per (organisation, currency, type,
  status, issue date, due date). SQLite keeps one row per key; PostgreSQL appends one signed delta row
  per key per statement (writers never wait on a shared row) and a statement folds a key's rows once
  they are more than `rollup_triggers.FOLD_ABOVE`. NULL dates are keyed as 0001-01-01
  (`rollup_triggers.NO_DATE`). Readers sum the rows of the keys they want.
- `charge_recoveries`: one row per document whose first card attempt failed (the dashboard's recovery
  rate), with that attempt's currency and instant, and whether the document (or the invoice a proforma
  became) has a succeeded attempt: `recovered`, kept by the attempts' triggers.
- `payment_hours`: the payment success rate's attempts and the collected money per UTC hour."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, Index, SmallInteger, String, Table

from fiscus.adapters.db.tables import Id, metadata
from fiscus.adapters.db.types import UtcDateTime

document_sums = Table(
    "document_sums",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("organization_id", Id, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("issue_date", Date, nullable=True),
    Column("due_date", Date, nullable=True),
    Column("n", BigInteger, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("due_minor", BigInteger, nullable=False),
)
Index(
    "ix_document_sums_key",
    document_sums.c.organization_id,
    document_sums.c.currency,
    document_sums.c.issue_date,
    document_sums.c.type,
    document_sums.c.status,
    document_sums.c.due_date,
)

charge_recoveries = Table(
    "charge_recoveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("organization_id", Id, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("document_id", Id, nullable=False),
    Column("attempt_id", Id, nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("recovered", SmallInteger, nullable=False),
)
Index(
    "ix_charge_recoveries_range",
    charge_recoveries.c.organization_id,
    charge_recoveries.c.currency,
    charge_recoveries.c.created_at,
    charge_recoveries.c.recovered,
)
Index("ix_charge_recoveries_document", charge_recoveries.c.document_id)

payment_hours = Table(
    "payment_hours",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("organization_id", Id, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("hour", UtcDateTime, nullable=False),
    Column("attempts", BigInteger, nullable=False),
    Column("succeeded", BigInteger, nullable=False),
    Column("captured_minor", BigInteger, nullable=False),
)
"""Per organisation, currency and UTC hour: settled card attempts by creation, the succeeded ones, and
money captured by settlement (`adapters/db/rollup_payments.py`; PostgreSQL appends deltas as
`document_sums` does)."""
Index(
    "ix_payment_hours_range",
    payment_hours.c.organization_id,
    payment_hours.c.currency,
    payment_hours.c.hour,
    payment_hours.c.attempts,
    payment_hours.c.succeeded,
    payment_hours.c.captured_minor,
)
