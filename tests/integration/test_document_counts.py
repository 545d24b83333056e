"""The maintained document counts (`document_counts`, migration 0022, per id block since 0025) equal a
COUNT of the documents (per block too) after every kind of write: billing runs (bulk COPY on
PostgreSQL), orders, state changes, a moved document, a deleted one, and enough statements on
PostgreSQL to fold the deltas, a draft discarded unissued (counted apart since 0028); and the
dialects' totals come from them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, insert, select, text, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_counts as tc
from fiscus.adapters.db.engine import Database
from fiscus.api.dialects.common import billed_documents
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.queries import documents as q
from fiscus.queries.documents import DocumentFilters, count_documents
from fiscus.queries.scope import Scope
from fiscus.services.documents import mark_paid, void_document
from tests.api_support import build_world


def _check(db: Database) -> None:
    d, c = t.documents.c, tc.document_counts.c
    with db.read() as conn:
        block = d.id // tc.ID_BLOCK
        key = case(
            (d.status == "void", case((d.sequence.is_(None), tc.DISCARDED), else_="void")), else_=d.status
        )
        per_block = {
            (r[0], r[1], r[2], r[3]): r[4]
            for r in conn.execute(
                select(d.organization_id, d.type, key, block, func.count()).group_by(
                    d.organization_id, d.type, key, block
                )
            )
        }
        kept: dict[tuple[Any, ...], int] = {}
        for r in conn.execute(
            select(c.organization_id, c.type, c.status, c.id_block, func.sum(c.n)).group_by(
                c.organization_id, c.type, c.status, c.id_block
            )
        ):
            if r[4]:
                kept[(r[0], r[1], r[2], int(r[3]))] = int(r[4])
        assert kept == {(*k[:3], int(k[3])): n for k, n in per_block.items()}
        for org in {k[0] for k in per_block}:
            scope = Scope(org)
            for filters in (
                DocumentFilters(),
                DocumentFilters(types=(DocumentType.INVOICE, DocumentType.PROFORMA)),
                DocumentFilters(types=(DocumentType.INVOICE,), issued_only=True),
                DocumentFilters(status=DocumentStatus.OPEN, type=DocumentType.INVOICE),
                DocumentFilters(status=DocumentStatus.VOID),
                DocumentFilters(status=DocumentStatus.VOID, issued_only=True),
                DocumentFilters(status=DocumentStatus.DRAFT, discarded=False),
                billed_documents(issued_only=False),
                billed_documents(issued_only=True),
            ):
                listed = q._filtered_ids(scope, filters).subquery()  # what the list itself holds
                counted = conn.execute(select(func.count()).select_from(listed)).scalar_one()
                assert count_documents(conn, scope, filters) == counted, filters


def test_counts_follow_every_write(db: Database, clock: FixedClock) -> None:
    worlds = build_world(db, clock)
    _check(db)
    d = t.documents.c
    org = worlds[0].org_id
    with db.read() as conn:
        open_ids = list(
            conn.execute(
                select(d.id)
                .where(d.organization_id == org, d.status == "open", d.type == "invoice")
                .order_by(d.id)
            ).scalars()
        )
    void_document(db, clock, org, open_ids[0])
    mark_paid(db, clock, org, open_ids[1])
    _check(db)
    with db.write() as conn:  # a bare draft, discarded, moved to the other organisation, then deleted
        row = conn.execute(select(t.documents).where(d.id == open_ids[2])).mappings().one()
        values = {k: v for k, v in row.items() if k not in ("id", "converted_from_id")}
        values.update(status="draft", sequence=None, number=None)
        new_id = conn.execute(insert(t.documents).values(**values).returning(d.id)).scalar_one()
    _check(db)
    with db.write() as conn:
        conn.execute(update(t.documents).where(d.id == new_id).values(status="void"))
    _check(db)
    with db.read() as conn:
        assert (
            count_documents(conn, Scope(org), DocumentFilters(status=DocumentStatus.VOID, issued_only=True))
            == 1
        )
    with db.write() as conn:
        conn.execute(update(t.documents).where(d.id == new_id).values(organization_id=worlds[1].org_id))
    _check(db)
    with db.write() as conn:
        conn.execute(t.documents.delete().where(d.id == new_id))
    _check(db)
    for _ in range(40):  # 80 statements: on PostgreSQL, past the point where deltas are folded
        for status in ("uncollectible", "open"):
            with db.write() as conn:
                conn.execute(update(t.documents).where(d.id == open_ids[3]).values(status=status))
    _check(db)
    c = tc.document_counts.c
    with db.read() as conn:
        rows = conn.execute(
            select(func.count())
            .where(c.organization_id == org)
            .group_by(c.type, c.status, c.id_block)
            .order_by(func.count().desc())
        ).scalar()
    assert rows is not None
    assert rows <= tc.COMPACT_ABOVE + 1  # folded per key


def test_filters_beyond_type_and_status_count_the_documents(db: Database, clock: FixedClock) -> None:
    worlds = build_world(db, clock)
    org, customer = worlds[0].org_id, worlds[0].customers[0]
    with db.write() as conn:  # a wrong counter would show: only the plain COUNT ignores it
        conn.execute(text("UPDATE document_counts SET n = n + 1000"))
    with db.read() as conn:
        by_customer = count_documents(conn, Scope(org), DocumentFilters(customer_id=customer))
        as_customer = count_documents(conn, Scope(org, customer), DocumentFilters())
        real = conn.execute(
            select(func.count()).where(
                t.documents.c.organization_id == org, t.documents.c.customer_id == customer
            )
        ).scalar_one()
    assert by_customer == as_customer == real
