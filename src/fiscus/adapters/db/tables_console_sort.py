"""Sort indexes of the console's lists (`queries/console_sort.py`; migration 0023): for each column a
list sorts on, an `(organization_id, column, id)` index, so a keyset page in that order reads `limit + 1`
index entries instead of sorting the organisation's rows. A document's buyer name and amount due are
expressions over the document's own row, indexed as those expressions (migration 0029): the database
keeps the index in step with every write, so no writer has to. Not indexed (sorted in the query,
bounded by the organisation's filtered rows): the subscriptions list's customer name (a join), a
refund's free-text reason."""

from __future__ import annotations

from typing import Final

from sqlalchemy import BigInteger, Index, String, literal_column, text

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


_OWED = "{d}total_minor - {d}amount_paid_minor + {d}amount_refunded_minor - {d}amount_credited_minor"
_DUE = (
    f"CASE WHEN {{d}}type <> 'credit_note' AND {{d}}status IN ('open', 'uncollectible') AND {_OWED} > 0 "
    f"THEN {_OWED} ELSE 0 END"
)
_BUYER = "{d}buyer ->> 'name'"
DOCUMENT_DUE_SQL: Final = _DUE.format(d="")
"""A document's amount due (what `queries/console_documents.py: _due` computes in Python), as SQL
over its own row: indexed as this very expression, and the list sorts on the same one, spelled with
literals (a bound parameter would not match the index's expression on either database)."""
DOCUMENT_BUYER_SQL: Final = _BUYER.format(d="")
"""The buyer's name as the document carries it (its snapshot of the customer; JSON on SQLite, JSONB on
PostgreSQL, the same operator on both)."""
DOCUMENT_DUE: Final = literal_column(f"({_DUE.format(d='documents.')})", BigInteger())
"""The indexed expression with the columns named by table, for the list's query (joined to customers)."""
DOCUMENT_BUYER: Final = literal_column(f"({_BUYER.format(d='documents.')})", String())

DOCUMENT_EXPRESSION_INDEXES: Final = [
    Index("ix_documents_sort_amount_due", t.documents.c.organization_id, text(f"({DOCUMENT_DUE_SQL})"),
          t.documents.c.id),
    Index("ix_documents_sort_buyer", t.documents.c.organization_id, text(f"({DOCUMENT_BUYER_SQL})"),
          t.documents.c.id),
]  # fmt: skip
