"""Page-number dialects read deep pages by an id-only seek, and older-half pages from the oldest end:
every page must hold exactly the rows plain OFFSET gives, newest first."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fiscus.adapters.db.engine import Database
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
