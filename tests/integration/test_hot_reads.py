"""The prepared hot reads (`queries.document_hot`) return exactly what the Core path returns, for every
list shape, cursor, scope and offset, on both databases, and see nothing of another organisation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import column, select, table, update
from sqlalchemy.exc import DBAPIError

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.queries import document_hot as hot
from fiscus.queries.documents import (
    DocumentFilters,
    count_documents,
    document_stamp,
    offset_document_stamps,
    page_document_stamps,
)
from fiscus.queries.prepared import Prepared
from fiscus.queries.scope import Scope
from fiscus.services.billing_run import run_billing
from fiscus.services.subscriptions import ItemSpec, create_subscription
from tests.builders import make_customer, make_tenant


def test_prepared_reads_match_the_core_path(
    db: Database, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = make_tenant(db, clock, "bg")
    other = make_tenant(db, clock, "bg", slug="other-org", auto_issue=False)  # drafts
    customers = [make_customer(db, clock, tenant, n) for n in range(3)]
    subs = [
        create_subscription(db, clock, tenant.org_id, c, [ItemSpec(tenant.monthly, 1)]) for c in customers
    ]
    foreign = make_customer(db, clock, other, 9)
    create_subscription(db, clock, other.org_id, foreign, [ItemSpec(other.monthly, 1)])
    clock.advance(timedelta(days=120))
    run_billing(db, clock)
    with db.write() as conn:  # a mix of states (the count triggers follow)
        d = t.documents.c
        owners = {i: (o, c) for i, o, c in conn.execute(select(d.id, d.organization_id, d.customer_id))}
        ids = sorted(owners)
        for doc_id, status in zip(ids[::4], ("paid", "void", "paid", "uncollectible"), strict=False):
            conn.execute(update(t.documents).where(t.documents.c.id == doc_id).values(status=status))
        drafts = [i for i, (o, _) in sorted(owners.items()) if o == other.org_id]
        for doc_id in drafts[::2]:  # drafts discarded unissued: void, never numbered
            conn.execute(update(t.documents).where(t.documents.c.id == doc_id).values(status="void"))
    filters = [
        DocumentFilters(),
        DocumentFilters(status=DocumentStatus.PAID),
        DocumentFilters(type=DocumentType.INVOICE, status=DocumentStatus.OPEN),
        DocumentFilters(customer_id=customers[0]),
        DocumentFilters(subscription_id=subs[1]),
        DocumentFilters(types=(DocumentType.INVOICE, DocumentType.PROFORMA), issued_only=True),
        DocumentFilters(types=(DocumentType.CREDIT_NOTE,)),
        DocumentFilters(types=(DocumentType.INVOICE, DocumentType.PROFORMA), discarded=False),
        DocumentFilters(status=DocumentStatus.VOID, discarded=False),
        DocumentFilters(status=DocumentStatus.VOID, issued_only=True),
    ]
    scopes = [Scope(tenant.org_id), Scope(tenant.org_id, customers[2]), Scope(other.org_id)]

    def both(read: Any) -> tuple[Any, Any]:
        """(prepared, Core) answers of one read."""
        with db.read() as conn:
            prepared = read(conn)
        with monkeypatch.context() as m:
            m.setattr(hot, "_shape", lambda *_: None)
            m.setattr(hot, "stamp", lambda conn, scope, i: _core_stamp(conn, scope, i))
            with db.read() as conn:
                core = read(conn)
        return prepared, core

    checked = 0
    for scope in scopes:
        for f in filters:
            everything, _ = both(lambda c, s=scope, f=f: page_document_stamps(c, s, f, limit=100))[0]
            assert all(_visible(owners[i], scope) for i, _ in everything)
            cursors = [None, *(i for i, _ in everything[1::3])]
            for limit in (1, 3, 100):
                for after in cursors:
                    a, b = both(
                        lambda c, s=scope, f=f, n=limit, x=after: page_document_stamps(
                            c, s, f, limit=n, starting_after=x
                        )
                    )
                    assert a == b
                    a, b = both(
                        lambda c, s=scope, f=f, n=limit, x=after: page_document_stamps(
                            c, s, f, limit=n, ending_before=x
                        )
                    )
                    assert a == b
                    checked += 2
            total, core_total = both(lambda c, s=scope, f=f: count_documents(c, s, f))
            assert total == core_total
            for limit in (2, 5):
                for offset in range(0, len(everything) + limit, limit):
                    for known in (None, len(everything)):
                        a, b = both(
                            lambda c, s=scope, f=f, o=offset, n=limit, k=known: offset_document_stamps(
                                c, s, f, offset=o, limit=n, total=k
                            )
                        )
                        assert a == b == everything[offset : offset + limit]
                        checked += 1
    for scope in scopes:
        for doc_id in (*ids, 10**9):
            a, b = both(lambda c, s=scope, i=doc_id: document_stamp(c, s, i))
            assert a == b
            assert (a is not None) == (doc_id in owners and _visible(owners[doc_id], scope))
    assert checked > 400


def _visible(owner: tuple[int, int], scope: Scope) -> bool:
    return owner[0] == scope.organization_id and scope.customer_id in (None, owner[1])


def _core_stamp(conn: Any, scope: Scope, document_id: int) -> int | None:
    query = scope.apply(select(t.documents.c.revision), t.documents).where(t.documents.c.id == document_id)
    row = conn.execute(query).one_or_none()
    return None if row is None else int(row[0])


def test_a_failing_prepared_read_raises_as_sqlalchemy_would(db: Database) -> None:
    """A driver error comes out wrapped by SQLAlchemy (which also notices a dropped connection)."""
    shape = Prepared(lambda: select(column("x")).select_from(table("no_such_table")))
    with pytest.raises(DBAPIError), db.read() as conn:
        shape.rows(conn, {})
