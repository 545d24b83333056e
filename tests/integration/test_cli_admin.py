"""`fiscus init`, `keys`, `admin-keys` and `org` as an operator runs them, on both databases: the first
`init` in a real process (the entry point, its JSON on stdout), the rest in-process through the same
`fiscus.cli:main` (tests/cli_support.py; a process costs ~2.5 s of CPU in imports)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database
from fiscus.cli import app
from fiscus.domain.clock import FixedClock
from fiscus.services.access import PrincipalKind, authenticate
from tests.cli_support import fiscus_here as fiscus
from tests.integration.test_cli import fiscus as fiscus_process

IBAN_BG = "BG80BNBG96611020345678"


def test_init_non_interactive_with_flags_prints_working_live_and_test_keys(
    db: Database, db_url: str, clock: FixedClock
) -> None:
    result = fiscus_process(
        db_url, "init", "--non-interactive", "--json", "--legal-name", "Acme Tools Inc.", "--country", "US",
        "--tax-id", "043190200", "--email", "billing@acme.example",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["live_key"].startswith("fsk_live_")
    assert out["test_key"].startswith("fsk_test_")
    live = authenticate(db, clock, out["live_key"])
    test = authenticate(db, clock, out["test_key"])
    assert live is not None
    assert live.kind is PrincipalKind.ORGANIZATION
    assert live.organization_id == out["organization_id"]
    assert live.mode == "live"
    assert test is not None
    assert test.organization_id == out["sandbox_id"]
    assert test.mode == "test"
    with db.read() as conn:
        orgs = {r.id: r for r in conn.execute(select(t.organizations))}
    org, sandbox = orgs[out["organization_id"]], orgs[out["sandbox_id"]]
    assert (org.default_currency, org.timezone, org.vat_registered, org.tax_id) == (
        "USD", "America/New_York", False, "04-3190200",
    )  # fmt: skip
    assert sandbox.mode == "test"
    assert sandbox.sandbox_of == org.id
    assert sandbox.legal_name == org.legal_name
    again = fiscus(db_url, "init", "--non-interactive", "--legal-name", "Other", "--country", "US")
    assert again.returncode == 2
    assert "already has" in again.stderr
    missing = fiscus(db_url, "init", "--non-interactive", "--country", "US")
    assert missing.returncode == 2


def test_init_from_a_toml_file_with_settings(db: Database, db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "fiscus.toml"
    config.write_text(
        f"""
legal_name = "Balkan Hosting EOOD"
country = "BG"
vat_id = "BG175074752"
tax_id = "175074752"

[settings]
trading_name = "Balkan Hosting"
footers = {{ bg = "Благодарим ви!", en = "Thank you!" }}
bank_accounts = [{{ iban = "{IBAN_BG}", bic = "BNBGBGSF", bank_name = "BNB" }}]

[settings.address]
lines = ["ul. Vitosha 1"]
city = "Sofia"
postal_code = "1000"
""",
        encoding="utf-8",
    )
    result = fiscus(db_url, "init", "--non-interactive", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    ids = json.loads(result.stdout)
    shown = fiscus(db_url, "org", "show", "--org", str(ids["organization_id"]), "--json")
    org = json.loads(shown.stdout)
    assert org["default_currency"] == "EUR"
    assert org["locale"] == "bg"
    assert org["paper_size"] == "a4"
    assert org["trading_name"] == "Balkan Hosting"
    assert org["address"]["city"] == "Sofia"
    assert org["bank_accounts"][0]["iban"] == IBAN_BG
    assert org["footers"]["bg"] == "Благодарим ви!"
    assert org["tax_id_type"] == "bg_eik"
    sandbox = json.loads(fiscus(db_url, "org", "show", "--org", str(ids["sandbox_id"]), "--json").stdout)
    assert sandbox["mode"] == "test"
    assert sandbox["bank_accounts"] == org["bank_accounts"]
    bad = tmp_path / "bad.toml"
    bad.write_text('legal_name = "X"\ncountry = "BG"\ncolour = "red"\n', encoding="utf-8")
    refused = fiscus(db_url, "init", "--non-interactive", "--config", str(bad))
    assert refused.returncode == 2
    assert "colour" in refused.stderr


def test_init_interactive_offers_the_countrys_defaults(db: Database, db_url: str) -> None:
    answers = "Steppe Market LLP\nKZ\n\n\n\n\ny\n\n\n180440012349\n"
    result = CliRunner().invoke(app, ["init"], input=answers, env={"FISCUS_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    assert "fsk_live_" in result.output
    assert "fsk_test_" in result.output
    with db.read() as conn:
        org = conn.execute(select(t.organizations).where(t.organizations.c.mode == "live")).one()
        rates = conn.execute(
            select(t.tax_rates.c.rate).where(t.tax_rates.c.organization_id == org.id)
        ).scalars()
        standard = max(rates)
    assert (org.default_currency, org.timezone, org.locale) == ("KZT", "Asia/Almaty", "kk")
    assert org.tax_id == "180440012349"
    assert str(standard) == "0.16"


@pytest.mark.slow
def test_keys_admin_keys_and_org_update(db: Database, db_url: str, tmp_path: Path) -> None:
    init = json.loads(
        fiscus(
            db_url, "init", "--non-interactive", "--json", "--legal-name", "Acme", "--country", "US"
        ).stdout
    )
    org = str(init["organization_id"])
    created = fiscus(db_url, "keys", "create", "--org", org, "--name", "ci")
    assert created.returncode == 0, created.stderr
    listed = json.loads(fiscus(db_url, "keys", "list", "--org", org, "--json").stdout)
    assert [k["name"] for k in listed] == ["init", "ci"]
    assert all("secret" not in k for k in listed)
    ci = next(k for k in listed if k["name"] == "ci")
    assert fiscus(db_url, "keys", "revoke", "--org", org, str(ci["id"])).returncode == 0
    assert [k["name"] for k in json.loads(fiscus(db_url, "keys", "list", "--org", org, "--json").stdout)] == [
        "init"
    ]
    assert len(json.loads(fiscus(db_url, "keys", "list", "--org", org, "--all", "--json").stdout)) == 2
    admin = fiscus(db_url, "admin-keys", "create", "--name", "ops")
    assert admin.returncode == 0
    assert admin.stdout.strip().splitlines()[-1].startswith("fak_")
    admins = json.loads(fiscus(db_url, "admin-keys", "list", "--json").stdout)
    assert fiscus(db_url, "admin-keys", "revoke", str(admins[0]["id"])).returncode == 0
    svg = tmp_path / "logo.svg"
    svg.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(1)</script>'
        '<rect width="4" height="4"/></svg>',
        encoding="utf-8",
    )
    updated = fiscus(
        db_url, "org", "update", "--org", org, "--trading-name", "Acme", "--address-line", "350 Fifth Ave",
        "--city", "New York", "--region", "NY", "--postal-code", "10118", "--footer", "en=Thanks",
        "--logo", str(svg),
    )  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    assert "removed" in updated.stderr
    assert "script" in updated.stderr
    shown = json.loads(fiscus(db_url, "org", "show", "--org", org, "--json").stdout)
    assert shown["address"]["region"] == "NY"
    assert shown["logo"]["content_type"] == "image/svg+xml"
    with db.read() as conn:
        data = conn.execute(select(t.organization_logos.c.data)).scalars().first()
    assert data is not None
    assert b"script" not in data
    assert b"onload" not in data
    assert shown["customer_promotion_codes"] is False  # off by default
    registered = fiscus(
        db_url,
        "org",
        "update",
        "--org",
        org,
        "--vat-registered",
        "--vat-rate",
        "0.08",
        "--customer-promotion-codes",
    )
    assert registered.returncode == 0, registered.stderr
    assert "customer_promotion_codes" in registered.stdout
    shown = json.loads(fiscus(db_url, "org", "show", "--org", org, "--json").stdout)
    assert (shown["vat_rates"]["standard"], shown["customer_promotion_codes"]) == ("0.08", True)
    with db.read() as conn:  # through the settings service: audited like the API's and console's changes
        audited = (
            conn.execute(select(t.audit_events.c.after).where(t.audit_events.c.entity_type == "organization"))
            .scalars()
            .all()
        )
    assert any(a.get("customer_promotion_codes") is True for a in audited if isinstance(a, dict))
    switched_off = fiscus(db_url, "org", "update", "--org", org, "--no-customer-promotion-codes")
    assert switched_off.returncode == 0, switched_off.stderr
    assert (
        json.loads(fiscus(db_url, "org", "show", "--org", org, "--json").stdout)["customer_promotion_codes"]
        is False
    )
    refused = fiscus(db_url, "org", "update", "--org", org, "--tax-id", "123")
    assert refused.returncode == 2
    assert "tax_id" in refused.stderr


def test_every_option_of_the_admin_commands_has_help_text() -> None:
    for command in (["keys", "create"], ["keys", "list"], ["keys", "revoke"], ["admin-keys", "create"],
                    ["admin-keys", "list"], ["admin-keys", "revoke"], ["org", "show"], ["org", "update"],
                    ["org", "series"], ["init"]):  # fmt: skip
        result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
        assert result.exit_code == 0, result.output
        lines = [line for line in result.output.splitlines() if line.lstrip("│ *").startswith("--")]
        options = [line for line in lines if not line.lstrip("│ *").startswith("--help")]
        assert options or command[-1] == "revoke", command
        for line in options:
            words = line.strip("│ ").split()
            # an option row is the flag(s), the type, then the help text
            assert len(words) >= 3, (command, line)
