"""The demo seed: a year of history through the services, idempotent, and clean under reconcile; with
the test gateway as its own process, a year of card payments over real HTTP too."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Connection, func, select, text

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db import tables_usage as tu
from fiscus.adapters.db.engine import Database
from fiscus.adapters.payments.gateway import GatewayProvider
from fiscus.config import Settings
from fiscus.demo import find_payment_links, seed_demo
from fiscus.domain.clock import FixedClock
from fiscus.services.payment_links import is_valid, link_secret, parse_link
from fiscus.services.reconcile import reconcile, reconcile_with_provider
from tests.demo_support import GatewayDemo, demo_database_url, demo_first_run

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.mark.xdist_group("demo")  # one worker seeds the demo once per database (demo_support)
def test_demo_seeds_three_organisations_with_a_consistent_year(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The seeding run's result and a copy of what it wrote (`demo_support`: the demo seeded once on
    SQLite for every test that reads it, its first run kept), then a second run on the copy."""
    db = Database(demo_database_url("sqlite", request, tmp_path))
    try:
        result = demo_first_run("sqlite")
        assert result.created
        # the data lives in test-mode sandboxes of (empty) live organisations
        assert [o.slug for o in result.organizations] == [
            "kz-marketplace-test",
            "bg-vps-test",
            "us-saas-test",
        ]
        assert 45 <= sum(len(o.customer_ids) for o in result.organizations) <= 55
        assert set(result.totals) == {"KZT", "EUR", "USD"}
        payload = result.as_json()
        assert payload["documents"] == result.documents

        d, lines = t.documents.c, t.document_lines.c
        with db.read() as conn:
            o = t.organizations.c
            modes = {r.id: (r.mode, r.sandbox_of) for r in conn.execute(select(o.id, o.mode, o.sandbox_of))}
            assert len(modes) == 6
            for org in result.organizations:
                assert modes[org.id] == ("test", org.live_id)
                assert org.live_id is not None
                assert modes[org.live_id] == ("live", None)
            live_ids = [org.live_id for org in result.organizations]
            assert conn.execute(select(func.count()).where(d.organization_id.in_(live_ids))).scalar_one() == 0
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

            bg = next(o for o in result.organizations if o.slug == "bg-vps-test")
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
            # the Bulgarian host's launch code reduced some documents (issue 17)
            allowances = td.document_allowances.c
            discounted = select(func.count(allowances.document_id.distinct())).where(
                allowances.organization_id == bg.id
            )
            assert conn.execute(discounted).scalar_one() > 0
            # and its welcome credit was granted and consumed by the run (ADR 0009)
            ledger = td.wallet_ledger.c
            kinds = set(conn.execute(select(ledger.kind).where(ledger.organization_id == bg.id)).scalars())
            assert {"granted", "consumed"} <= kinds
            _assert_usage_billed(conn, result.organizations)

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


def _assert_usage_billed(conn: Connection, organizations: list[Any]) -> None:
    """Issue 16's demo: the VPS host bills traffic in graduated tiers and backup space held (a weighted
    sum), the marketplace API requests over the plan's included units, each on usage documents of the
    ordinary run from events reported through the ingest service; nothing was late."""
    ids = {o.slug: o.id for o in organizations}
    u, e, m = tu.usage_lines.c, tu.usage_events.c, tu.billable_metrics.c
    per_org = select(e.organization_id, func.count().label("n")).group_by(e.organization_id)
    events: dict[int, int] = {r.organization_id: r.n for r in conn.execute(per_org)}
    assert set(events) == {ids["bg-vps-test"], ids["kz-marketplace-test"]}
    assert all(300 <= n <= 5_000 for n in events.values()), events
    billed = conn.execute(
        select(u.organization_id, m.code, u.breakdown, u.document_id).join(
            tu.billable_metrics, m.id == u.metric_id
        )
    ).all()
    labels: dict[tuple[int, str], set[str]] = defaultdict(set)
    for row in billed:
        labels[(row.organization_id, row.code)] |= {part["label"] for part in row.breakdown}
    bg, kz = ids["bg-vps-test"], ids["kz-marketplace-test"]
    assert {"tier 1 (0–1000)", "tier 2 (1000–5000)"} <= labels[(bg, "bandwidth")]
    assert labels[(bg, "backup-storage")] == {"per unit"}
    assert labels[(kz, "api-requests")] == {"included", "per unit"}
    d = t.documents.c
    charged = select(func.count(d.id.distinct())).where(
        d.id.in_([row.document_id for row in billed]), d.total_minor > 0
    )
    assert conn.execute(charged).scalar_one() >= 40
    assert conn.execute(select(func.count()).select_from(tu.usage_late)).scalar_one() == 0


def _rows(db: Database, query: str) -> list[Any]:
    with db.read() as conn:
        return list(conn.execute(text(query)))


def _counts(db: Database) -> dict[str, int]:
    with db.read() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (
                t.documents,
                t.payment_methods,
                t.payment_attempts,
                t.payment_captures,
                t.payment_refunds,
            )
        }


@pytest.mark.slow
@pytest.mark.xdist_group("gateway_demo")  # the worker that seeded `gateway_demo` for test_seed_fields
def test_demo_history_pays_through_the_gateway(gateway_demo: GatewayDemo) -> None:
    """Successes, declines with their codes, a retry that later succeeded, an unknown outcome settled by
    the janitor, a partial capture of a proforma's authorisation, partial and full refunds with credit
    notes; the two ledgers match one to one, and a second run adds nothing.
    The seed is `gateway_demo` (once per database per worker, shared with
    tests/dialects/test_seed_fields.py, which only reads it); its first run's result is checked here."""
    db, result, url = gateway_demo.db, gateway_demo.result, gateway_demo.gateway_url
    assert result.created
    assert result.gateway_url == url
    provider = GatewayProvider(url)
    try:
        assert {name: rows for name, rows in reconcile(db).items() if rows} == {}
        assert reconcile_with_provider(db, provider) == []
        charges = len(provider.ledger().charges)
    finally:
        provider.close()

    a, o = t.payment_attempts.c, t.organizations.c
    with db.read() as conn:
        attempts = conn.execute(
            select(t.payment_attempts, o.slug, o.retry_days)
            .join(t.organizations, o.id == a.organization_id)
            .where(a.provider == "test_gateway")
            .order_by(a.id)
        ).all()
    statuses = Counter(row.status for row in attempts)
    assert statuses["succeeded"] >= 100
    assert statuses["pending"] == statuses["unknown"] == 0
    for org in result.organizations:
        assert org.payments.get("succeeded", 0) > 0, org.slug
        assert org.payments.get("failed", 0) > 0, org.slug
        assert org.refunds >= 2, org.slug
    assert charges == len(attempts)

    # declines with their codes and messages; hard ones never retried
    failed = [row for row in attempts if row.status == "failed"]
    assert {"insufficient_funds", "do_not_honor", "expired_card"} <= {row.error_code for row in failed}
    assert all(row.error_message for row in failed)
    assert all(row.hard_decline == (row.error_code != "insufficient_funds") for row in failed)
    hard_docs = {row.document_id for row in failed if row.hard_decline}
    assert not [row for row in attempts if row.document_id in hard_docs and row.trigger == "retry"]

    # retries on the organisation's schedule; some succeed once the customer gave a new card
    per_doc: dict[int, list[Any]] = defaultdict(list)
    for row in attempts:
        per_doc[row.document_id].append(row)
    recovered = 0
    for tries in per_doc.values():
        first = tries[0]
        schedule = {timedelta(days=d) for d in first.retry_days}
        assert all(r.created_at - first.created_at in schedule for r in tries[1:] if r.trigger == "retry")
        if first.status == "failed" and tries[-1].status == "succeeded":
            assert tries[-1].trigger == "retry"
            assert tries[-1].payment_method_id != first.payment_method_id
            recovered += 1
    assert recovered >= 3
    assert _rows(
        db,
        """SELECT d.id FROM documents d JOIN organizations o ON o.id = d.organization_id
           WHERE o.slug = 'us-saas-test' AND d.status = 'uncollectible'""",
    )

    # the lost answer: unknown, then settled by the janitor as the gateway's success
    unknown = _rows(
        db,
        "SELECT entity_id FROM audit_events WHERE entity_type = 'payment_attempt' AND action = 'unknown'",
    )
    assert len(unknown) == 1
    settled = _rows(
        db,
        f"""SELECT a.status, e.actor, d.status FROM payment_attempts a
            JOIN audit_events e ON e.entity_type = 'payment_attempt' AND e.entity_id = a.id
            JOIN documents d ON d.id = a.document_id
            WHERE a.id = {int(unknown[0].entity_id)} AND e.action = 'succeeded'""",
    )
    assert [tuple(row) for row in settled] == [("succeeded", "janitor", "paid")]

    # authorize mode (bg-vps): captures pay the invoice each proforma becomes; one capture is partial
    captures = _rows(
        db,
        """SELECT c.amount_minor, a.authorized_minor, d.type, d.status, d.total_minor,
                  d.amount_paid_minor, d.converted_from_id, o.slug
           FROM payment_captures c JOIN payment_attempts a ON a.id = c.attempt_id
           JOIN documents d ON d.id = c.document_id JOIN organizations o ON o.id = d.organization_id
           WHERE a.provider = 'test_gateway' AND a.capture_mode = 'authorize'""",
    )
    assert captures
    assert all(c.slug == "bg-vps-test" and c.type == "invoice" and c.converted_from_id for c in captures)
    partial = [c for c in captures if c.amount_minor < c.authorized_minor]
    assert len(partial) == 1
    assert partial[0].status == "open"
    assert partial[0].amount_paid_minor == partial[0].amount_minor < partial[0].total_minor

    # refunds: partial and full, each with its credit note of the same amount
    refunds = _rows(
        db,
        """SELECT r.document_id, r.amount_minor, r.status, r.reason, n.type AS note_type,
                  n.total_minor AS note_total, d.amount_paid_minor, d.amount_refunded_minor
           FROM payment_refunds r JOIN documents n ON n.id = r.credit_note_id
           JOIN documents d ON d.id = r.document_id""",
    )
    assert len(refunds) == sum(org.refunds for org in result.organizations)
    assert all(r.status == "succeeded" and r.reason for r in refunds)
    assert all(r.note_type == "credit_note" and r.note_total == r.amount_minor for r in refunds)
    per_invoice: dict[int, list[Any]] = defaultdict(list)
    for r in refunds:
        per_invoice[r.document_id].append(r)
    shapes = set()
    for rows in per_invoice.values():
        paid, refunded = rows[0].amount_paid_minor, rows[0].amount_refunded_minor
        assert refunded == sum(r.amount_minor for r in rows)
        shapes.add(("full" if refunded == paid else "partial", len(rows)))
    assert {("partial", 1), ("full", 1), ("full", 2)} <= shapes

    # customers without a card pay by bank transfer (recorded payments) or use the hosted page
    assert _rows(db, "SELECT id FROM payment_attempts WHERE provider = 'external'")
    settings = Settings(public_url="http://demo.example", secret_key="demo-test-key")
    links = find_payment_links(db, FixedClock(NOW), settings)
    assert 1 <= len(links) <= 2
    secret = link_secret(db, FixedClock(NOW), settings.secret_key)
    for link in links:
        assert link.amount_due > 0
        parts = urlsplit(link.url)
        assert parts.netloc == "demo.example"
        parsed = parse_link(parts.path.rsplit("/", 1)[-1])
        assert parsed is not None
        assert parsed[0] == link.document_id
        org_id = next(org.id for org in result.organizations if org.slug == link.organization)
        assert is_valid(secret, org_id, link.document_id, parsed[1])
    assert result.as_json()["gateway"] == {
        "url": url,
        "test_cards": {"success": "4242 4242 4242 4242", "decline": "4000 0000 0000 0002"},
    }

    before = _counts(db)
    again = seed_demo(db, FixedClock(NOW), quiet=True, gateway_url=url)
    assert not again.created
    assert _counts(db) == before
    provider = GatewayProvider(url)
    try:
        assert len(provider.ledger().charges) == charges
        assert reconcile_with_provider(db, provider) == []
    finally:
        provider.close()
