"""Sort indexes of the console's lists (`queries/console_sort.py`; migration 0023): for each column a
list sorts on, an `(organization_id, column, id)` index, so a keyset page in that order reads `limit + 1`
index entries instead of sorting the organisation's rows. Not indexed (sorted in the query, bounded by
the organisation's filtered rows): a customer's name from a join, a document's amount due (computed),
a refund's free-text reason."""

from __future__ import annotations

from typing import Final

from sqlalchemy import Index

from fiscus.adapters.db import tables as t

SORT_INDEXES: Final[dict[str, tuple[str, ...]]] = {
    "customers": ("name", "email", "country", "vat_id", "currency", "created_at"),
    "subscriptions": ("status", "currency", "current_period_end"),
    "payment_attempts": (
        "document_id", "status", "amount_minor", "error_code", "provider_charge_id", "created_at",
    ),
    "payment_refunds": (
        "attempt_id", "document_id", "amount_minor", "status",
        "provider_refund_id", "credit_note_id", "created_at",
    ),
    "webhook_deliveries": (
        "endpoint_id", "event_type", "status", "attempts", "last_attempt_at", "next_attempt_at",
    ),
    "audit_events": ("entity_type", "action", "actor", "at"),
    "documents": ("issue_date", "due_date"),
}  # fmt: skip
"""Table → sorted columns; the index of each is `ix_<table>_sort_<column>` (as migration 0020's)."""


def index_name(table: str, column: str) -> str:
    return f"ix_{table}_sort_{column}"


SORT_INDEX_OBJECTS: Final = [
    Index(index_name(table, column), t.metadata.tables[table].c.organization_id,
          t.metadata.tables[table].c[column], t.metadata.tables[table].c.id)
    for table, columns in SORT_INDEXES.items()
    for column in columns
]  # fmt: skip
