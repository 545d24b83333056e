"""Maintained document counts (issue 18): the page-number dialects print the size of the whole list on
every page, and a COUNT over a million documents walked a million index entries per request.

`document_counts` holds signed counts per (organisation, type, status), written by database triggers in
the same transaction as every INSERT, UPDATE and DELETE on `documents` (migration 0022), so no writer
can forget it and the count is exactly as durable and as visible as the rows. The total for an
organisation and a set of types and statuses is the sum of its rows. Since migration 0025 the counts are
kept per block of ids too (`id_block` = id // `ID_BLOCK`): their running sum over blocks locates the
k-th document of a list without walking the index up to it (deep pages of the page-number dialects).

SQLite (one writer at a time) keeps one row per key. PostgreSQL appends one row per key per statement
(a delta, aggregated over the statement's rows by a statement-level trigger): writers never update a
shared row, so concurrent transactions neither wait on nor deadlock over a counter. A statement that
finds more than `COMPACT_ABOVE` rows for one of the keys it touched folds them into one, if no other
transaction is folding that organisation (a try-lock: nobody waits).

Since migration 0028 a draft discarded unissued (void, never numbered) is counted under the status
`DISCARDED`, not `void`: the issued-only lists leave it out, and their counts must too."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table

from fiscus.adapters.db.tables import Id, metadata

COMPACT_ABOVE = 64
DISCARDED = "discarded"
"""The status key of a draft discarded unissued (migration 0028's triggers)."""
ID_BLOCK = 4096
"""Ids per block (migration 0025's triggers compute `id / 4096`): a deep page skips at most this many
index entries, and a million-document list has a few hundred blocks to sum."""

document_counts = Table(
    "document_counts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("organization_id", Id, nullable=False),
    Column("type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("n", BigInteger, nullable=False),
    Column("id_block", BigInteger, nullable=False, server_default="0"),
)
Index(
    "ix_document_counts_key",
    document_counts.c.organization_id,
    document_counts.c.type,
    document_counts.c.status,
    document_counts.c.id_block,
)
