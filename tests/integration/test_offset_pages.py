"""Page-number dialects read deep pages through the counts per id block, or by an id-only seek, and
older-half pages from the oldest end: every page must hold exactly the rows plain OFFSET gives, newest
first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.tables_counts import ID_BLOCK
from fiscus.api.dialects.common import billed_documents
from fiscus.domain.clock import FixedClock
from fiscus.queries import documents as q
from fiscus.queries.documents import DocumentFilters, count_documents, offset_document_stamps
from fiscus.queries.scope import Scope
from fiscus.services.billing_run import run_billing
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.builders import make_customer, make_tenant


@pytest.mark.parametrize("seek_from", [1, 1_000])
def test_every_page_matches_plain_offset(
    db: Database, clock: FixedClock, monkeypatch: pytest.MonkeyPatch, seek_from: int
) -> None:
    tenant = make_tenant(db, clock, "bg")
    for n in range(3):
        customer = make_customer(db, clock, tenant, n)
        create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)])
    clock.advance(timedelta(days=200))
    run_billing(db, clock)  # 3 subscriptions × 7 periods = 21 invoices
    monkeypatch.setattr(q, "SEEK_OFFSET", seek_from)
    scope, filters = Scope(tenant.org_id), DocumentFilters()
    with db.read() as conn:
        total = count_documents(conn, scope, filters)
        assert total == 21
        everything = offset_document_stamps(conn, scope, filters, offset=0, limit=total)
        assert [i for i, _ in everything] == sorted((i for i, _ in everything), reverse=True)
        for limit in (1, 4, 5, 21):
            for offset in range(0, total + limit, limit):
                expected = everything[offset : offset + limit]
                plain = offset_document_stamps(conn, scope, filters, offset=offset, limit=limit)
                counted = offset_document_stamps(
                    conn, scope, filters, offset=offset, limit=limit, total=total
                )
                assert plain == expected, (offset, limit)
                assert counted == expected, (offset, limit)


def test_deep_pages_across_id_blocks(
    db: Database, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documents spread over several id blocks (some drafts, which the issued-only list skips, and some
    drafts discarded unissued, which every dialect list skips): a page located through the per-block
    counts holds the rows plain OFFSET gives, for every offset."""
    tenant = make_tenant(db, clock, "bg")
    customer = make_customer(db, clock, tenant, 0)
    create_subscription(db, clock, tenant.org_id, customer, [ItemSpec(tenant.monthly, 1)])
    clock.advance(timedelta(days=100))
    run_billing(db, clock)
    d = t.documents.c
    with db.write() as conn:
        row = conn.execute(select(t.documents).where(d.organization_id == tenant.org_id)).mappings().first()
        assert row is not None
        template = {k: v for k, v in row.items() if k not in ("id", "converted_from_id")}
        for n, block in enumerate((1, 1, 2, 5, 5, 5, 9)):
            values = {**template, "id": block * ID_BLOCK + 7 * n, "status": "void"}
            values.update(sequence=100_000 + n, number=f"T{100_000 + n}")
            if n % 3 == 0:
                values.update(status="draft", sequence=None, number=None)
            if n % 3 == 1:  # discarded: void, never numbered
                values.update(sequence=None, number=None)
            conn.execute(insert(t.documents).values(**values))
    monkeypatch.setattr(q, "SEEK_OFFSET", 1)
    scope = Scope(tenant.org_id)
    sizes = []
    for filters in (
        DocumentFilters(),
        billed_documents(issued_only=False),
        billed_documents(issued_only=True),
    ):
        with db.read() as conn:
            total = count_documents(conn, scope, filters)
            sizes.append(total)
            everything = offset_document_stamps(conn, scope, filters, offset=0, limit=total)
            assert len(everything) == total > 4
            for limit in (1, 3):
                for offset in range(0, total + 1):
                    counted = offset_document_stamps(
                        conn, scope, filters, offset=offset, limit=limit, total=total
                    )
                    assert counted == everything[offset : offset + limit], (offset, limit)
    assert sizes[0] - sizes[1] == 2  # the two discarded drafts
    assert sizes[1] - sizes[2] == 3  # and the three drafts
