"""Where the k-th document of a list lies, from the maintained counts per id block (issue 18).

`document_counts` holds, per organisation, type, status and block of `ID_BLOCK` ids, how many documents
there are (migration 0025). The running sum of a list's counts over its blocks names the block that
holds its k-th document (oldest first); only that block's index entries are then skipped. So page
10,000 of a million documents costs a few hundred small rows and at most one block of an id-only index
walk, where a plain OFFSET walked half the organisation's index."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, func, literal_column, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_counts as tc
from fiscus.domain.documents import DocumentStatus


def counted_total(conn: Connection, where: list[ColumnElement[bool]]) -> int:
    """The list's size: the sum of its count rows."""
    query = select(func.coalesce(func.sum(tc.document_counts.c.n), 0)).where(*where)
    return int(conn.execute(query).scalar_one())


def nth_id(conn: Connection, where: list[ColumnElement[bool]], ids: Select[Any], position: int) -> int | None:
    """The id of the list's document at `position` (0-based, oldest first), or None when the counts
    and the documents disagree (a write committed between the two statements): the caller then walks
    the index itself. `where` selects the list's count rows, `ids` its documents' ids."""
    c, d = tc.document_counts.c, t.documents.c
    blocks = conn.execute(
        select(c.id_block, func.sum(c.n)).where(*where).group_by(c.id_block).order_by(c.id_block)
    ).all()
    before = 0
    for block, n in blocks:
        if position < before + int(n):
            low = int(block) * tc.ID_BLOCK
            query = (
                ids.where(d.id >= low, d.id < low + tc.ID_BLOCK)
                .order_by(d.id.asc())
                .offset(position - before)
                .limit(1)
            )
            found = conn.execute(query).scalar()
            return None if found is None else int(found)
        before += int(n)
    return None


def without_discarded(query: Select[Any], organization_id: int, status: DocumentStatus | None) -> Select[Any]:
    """The list without drafts discarded unissued (void, never numbered). They are few and sit in a
    partial index of their own (`ix_documents_discarded`): the list leaves out that small set (read once
    per statement) by id, so its own read stays on its index without a row lookup per entry."""
    if status is not None and status is not DocumentStatus.VOID:
        return query
    x = t.documents.alias("discarded")
    found = select(x.c.id).where(
        x.c.organization_id == organization_id,
        x.c.status == literal_column("'void'"),  # literals: SQLite matches them to the partial index
        x.c.sequence.is_(None),
    )
    return query.where(t.documents.c.id.not_in(found))


def count_statuses(
    status: DocumentStatus | None, *, issued_only: bool, discarded: bool
) -> list[ColumnElement[bool]]:
    """The count rows' status keys of a list: a discarded draft is counted as `DISCARDED` (migration
    0028), part of a list of void documents only where that list shows it."""
    c = tc.document_counts.c
    shown = discarded and not issued_only
    where: list[ColumnElement[bool]] = []
    if status is not None:
        extra = [tc.DISCARDED] if status is DocumentStatus.VOID and shown else []
        where.append(c.status.in_([status.value, *extra]))
    left_out = [DocumentStatus.DRAFT.value] if issued_only else []
    if not shown:
        left_out.append(tc.DISCARDED)
    if left_out:
        where.append(c.status.not_in(left_out))
    return where
