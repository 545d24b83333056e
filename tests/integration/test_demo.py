"""The demo seed: a year of history through the services, idempotent, and clean under reconcile."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, text

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.migrations import upgrade
from fiscus.demo import seed_demo
from fiscus.domain.clock import FixedClock
from fiscus.services.reconcile import reconcile

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_demo_seeds_three_organisations_with_a_consistent_year(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    db = Database(url)
    try:
        result = seed_demo(db, FixedClock(NOW), quiet=True)
        assert result.created
        assert [o.slug for o in result.organizations] == ["kz-marketplace", "bg-vps", "us-saas"]
        assert 45 <= sum(len(o.customer_ids) for o in result.organizations) <= 55
        assert set(result.totals) == {"KZT", "EUR", "USD"}
        payload = result.as_json()
        assert payload["documents"] == result.documents

        d, lines = t.documents.c, t.document_lines.c
        with db.read() as conn:
            assert conn.execute(select(func.count()).select_from(t.organizations)).scalar_one() == 3
            assert (
                conn.execute(select(func.count()).select_from(t.documents)).scalar_one() == result.documents
            )
            for org in result.organizations:
                docs = select(func.count()).where(d.organization_id == org.id)
                assert conn.execute(docs).scalar_one() > 0, org.slug
                heaviest = conn.execute(
                    select(func.count())
                    .where(d.organization_id == org.id)
                    .group_by(d.customer_id)
                    .order_by(func.count().desc())
                    .limit(1)
                ).scalar_one()
                assert heaviest >= 70, org.slug

            bg = next(o for o in result.organizations if o.slug == "bg-vps")
            numbers = {
                kind: sorted(
                    conn.execute(
                        select(d.number).where(
                            d.organization_id == bg.id, d.type == kind, d.number.is_not(None)
                        )
                    ).scalars()
                )
                for kind in ("proforma", "invoice")
            }
            assert numbers["proforma"]
            assert numbers["invoice"]
            for kind, first in (("proforma", "0000007390"), ("invoice", "0000001590")):
                assert numbers[kind][0] == first
                assert all(len(n) == 10 and n.isdigit() for n in numbers[kind])

            reverse = select(func.count()).where(lines.tax_treatment == "reverse_charge")
            assert conn.execute(reverse).scalar_one() > 0
            assert conn.execute(select(func.count()).where(lines.kind == "proration")).scalar_one() > 0

            unbalanced = conn.execute(
                text(
                    """SELECT d.id FROM documents d JOIN document_lines l ON l.document_id = d.id
                       GROUP BY d.id, d.subtotal_minor, d.tax_minor, d.total_minor
                       HAVING d.total_minor <> d.subtotal_minor + d.tax_minor
                           OR SUM(l.amount_minor) <> d.subtotal_minor"""
                )
            ).all()
            assert unbalanced == []

        assert {name: rows for name, rows in reconcile(db).items() if rows} == {}

        again = seed_demo(db, FixedClock(NOW), quiet=True)
        assert not again.created
        assert again.documents == result.documents
        assert again.totals == result.totals
        assert {name: rows for name, rows in reconcile(db).items() if rows} == {}
    finally:
        db.dispose()
