"""Migration 0008 on an organisation made before it: settings get their defaults, and down again."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from fiscus.adapters.db.engine import Database
from fiscus.adapters.db.migrations import downgrade, upgrade
from fiscus.queries.organizations import get_organization
from tests.conftest import new_database_url


def test_an_existing_organisation_gets_default_settings(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = new_database_url(backend, request, tmp_path)
    db = Database(url)
    downgrade(url, "0007")
    assert "admin_keys" not in inspect(db.engine).get_table_names()
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO organizations (slug, legal_name, country, timezone, default_currency,"
                " vat_registered, created_at)"
                " VALUES ('old', 'Old Co', 'US', 'America/Chicago', 'USD', false, '2026-01-01')"
            )
        )
    upgrade(url)
    with db.read() as conn:
        org_id = conn.execute(text("SELECT id FROM organizations WHERE slug = 'old'")).scalar_one()
        org = get_organization(conn, org_id)
    assert org["bank_accounts"] == []
    assert org["footers"] == {}
    assert org["logo"] is None
    assert org["paper_size"] == "letter"
    assert org["paper_size_from_country"] is True
    assert org["address"]["region"] == ""
    assert org["sandbox_of"] is None
    downgrade(url, "0007")
    columns = {c["name"] for c in inspect(db.engine).get_columns("organizations")}
    assert "bank_accounts" not in columns
    assert "paper_size" not in columns
    upgrade(url)
    db.dispose()
