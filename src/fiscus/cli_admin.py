"""`fiscus init`, `fiscus keys`, `fiscus admin-keys`, `fiscus org`: setting up and administering an
instance from the command line. Every command calls a use case (services/); none holds a rule."""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fiscus.domain.errors import InvalidFieldError

if TYPE_CHECKING:  # the commands import what they use (see cli.py)
    from fiscus.bootstrap import Container
    from fiscus.services import access

console = Console()
err = Console(stderr=True)

keys_app = typer.Typer(help="Organisation API keys (fsk_live_…, fsk_test_…).", no_args_is_help=True)
admin_keys_app = typer.Typer(
    help="Platform admin keys (fak_…): manage organisations through /api/v1/organizations.",
    no_args_is_help=True,
)
org_app = typer.Typer(help="An organisation's settings.", no_args_is_help=True)

OrgOpt = Annotated[
    int,
    typer.Option(
        "--org", help="organisation id (printed by fiscus init; GET /api/v1/organizations lists them)"
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object instead of a table")]

INIT_KEYS = (
    "legal_name", "country", "slug", "currency", "timezone", "locale", "vat_registered", "vat_rate",
    "reduced_vat_rate", "vat_id", "tax_id", "email",
)  # fmt: skip


def _container() -> Container:
    from fiscus.bootstrap import NotMigratedError, build

    try:
        return build()
    except NotMigratedError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _decimal(name: str, value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise InvalidFieldError(name, f"'{value}' is not a decimal number such as 0.20") from None


def _read_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        err.print(f"[red]error:[/red] --config {path}: {exc}")
        raise typer.Exit(2) from None
    unknown = set(data) - set(INIT_KEYS) - {"settings"}
    if unknown:
        err.print(f"[red]error:[/red] --config {path}: unknown keys {', '.join(sorted(unknown))}")
        raise typer.Exit(2)
    return data


def _ask(values: dict[str, Any]) -> None:
    """Prompt for what was not given, offering the country's defaults."""
    from fiscus.services import instance

    values["legal_name"] = values.get("legal_name") or typer.prompt("Legal name of the business")
    country = str(
        values.get("country") or typer.prompt("Country (ISO code, e.g. BG, KZ, US)", default="US")
    ).upper()
    values["country"] = country
    values["slug"] = values.get("slug") or typer.prompt(
        "Short name (slug)", default=instance.slugify(values["legal_name"])
    )
    values["currency"] = values.get("currency") or typer.prompt(
        "Default currency", default=instance.default_currency(country)
    )
    values["timezone"] = values.get("timezone") or typer.prompt(
        "Time zone", default=instance.default_timezone(country)
    )
    values["locale"] = values.get("locale") or typer.prompt(
        "Document language (en, bg, ru, kk)", default=instance.default_locale(country)
    )
    if values.get("vat_registered") is None:
        values["vat_registered"] = typer.confirm(
            "Registered for VAT?", default=instance.default_vat_registered(country)
        )
    if values["vat_registered"]:
        if values.get("vat_rate") is None:
            found = instance.default_vat_rates(country)
            values["vat_rate"] = typer.prompt(
                "Standard VAT rate (fraction)", default=str(found[0]) if found else "0.20"
            )
        if not values.get("vat_id"):
            values["vat_id"] = (
                typer.prompt("VAT number (empty if none)", default="", show_default=False) or None
            )
    if not values.get("tax_id"):
        values["tax_id"] = (
            typer.prompt(
                "National company ID (BIN, EIK, EIN…; empty if none)", default="", show_default=False
            )
            or None
        )


def init(
    non_interactive: Annotated[
        bool,
        typer.Option("--non-interactive", help="never prompt; take flags and --config, default the rest"),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML file: the flags' keys, and a settings table (further settings as in the API)",
        ),
    ] = None,
    legal_name: Annotated[str | None, typer.Option(help="the business's registered name")] = None,
    country: Annotated[str | None, typer.Option(help="ISO 3166 country code, e.g. BG, KZ, US")] = None,
    slug: Annotated[str | None, typer.Option(help="short unique name; default from the legal name")] = None,
    currency: Annotated[
        str | None, typer.Option(help="ISO 4217 default currency; default the country's")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone; default the country's main one")
    ] = None,
    locale: Annotated[str | None, typer.Option(help="document language: en, bg, ru or kk")] = None,
    vat_registered: Annotated[
        bool | None,
        typer.Option("--vat-registered/--not-vat-registered", help="default: not in the US, yes elsewhere"),
    ] = None,
    vat_rate: Annotated[str | None, typer.Option(help="standard VAT rate as a fraction, e.g. 0.20")] = None,
    reduced_vat_rate: Annotated[str | None, typer.Option(help="reduced VAT rate, e.g. 0.09")] = None,
    vat_id: Annotated[
        str | None, typer.Option(help="VAT number (required for VAT-registered EU sellers)")
    ] = None,
    tax_id: Annotated[
        str | None, typer.Option(help="national company ID: BIN (KZ), EIK (BG), EIN (US)…")
    ] = None,
    email: Annotated[str | None, typer.Option(help="billing contact address printed on documents")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Set up this instance: migrate the database, create the first organisation (live) and its
    test-mode sandbox, and print one API key for each (shown once)."""
    from fiscus.adapters.db import migrations
    from fiscus.config import Settings
    from fiscus.services import instance

    data = _read_config(config)
    flags = {
        "legal_name": legal_name, "country": country, "slug": slug, "currency": currency,
        "timezone": timezone, "locale": locale, "vat_registered": vat_registered, "vat_rate": vat_rate,
        "reduced_vat_rate": reduced_vat_rate, "vat_id": vat_id, "tax_id": tax_id, "email": email,
    }  # fmt: skip
    values: dict[str, Any] = {**{k: v for k, v in data.items() if k != "settings"}}
    values.update({k: v for k, v in flags.items() if v is not None})
    if not non_interactive:
        _ask(values)
    for required in ("legal_name", "country"):
        if not values.get(required):
            err.print(f"[red]error:[/red] --{required.replace('_', '-')} is required with --non-interactive")
            raise typer.Exit(2)
    url = Settings().database_url
    migrations.upgrade(url)
    c = _container()
    new = instance.NewOrganization(
        legal_name=str(values["legal_name"]),
        country=str(values["country"]),
        slug=values.get("slug"),
        default_currency=values.get("currency"),
        timezone=values.get("timezone"),
        locale=values.get("locale"),
        vat_registered=values.get("vat_registered"),
        vat_rate=_decimal("vat_rate", values.get("vat_rate")),
        reduced_vat_rate=_decimal("reduced_vat_rate", values.get("reduced_vat_rate")),
        vat_id=values.get("vat_id"),
        tax_id=values.get("tax_id"),
        email=values.get("email"),
        settings=data.get("settings"),
    )
    created = instance.initialize(c.db, c.clock, new)
    assert created.sandbox_id is not None
    assert created.test_key is not None
    if as_json:
        print(
            json.dumps(
                {
                    "organization_id": created.organization_id,
                    "sandbox_id": created.sandbox_id,
                    "live_key": created.key.secret,
                    "test_key": created.test_key.secret,
                }
            )
        )
        return
    console.print(f"organisation [bold]{new.legal_name}[/bold]: id {created.organization_id} (live)")
    console.print(f"test-mode sandbox: id {created.sandbox_id} (same settings; test keys reach only it)")
    console.print("API keys, shown once (stored only as hashes):")
    print(f"live: {created.key.secret}")
    print(f"test: {created.test_key.secret}")
    console.print("next: fiscus org show --org " + str(created.organization_id) + "; fiscus serve")


# --- keys --------------------------------------------------------------------------------------


def _key_table(title: str, keys: list[access.KeyInfo]) -> Table:
    table = Table(title=title)
    for column in ("id", "name", "mode", "prefix", "created", "last used", "revoked"):
        table.add_column(column)
    for k in keys:
        table.add_row(
            str(k.id), k.name, k.mode, k.prefix, k.created_at.isoformat(timespec="seconds"),
            k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "",
            k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "",
        )  # fmt: skip
    return table


def _keys_json(keys: list[access.KeyInfo]) -> str:
    return json.dumps(
        [
            {
                "id": k.id,
                "organization_id": k.organization_id,
                "name": k.name,
                "mode": k.mode,
                "prefix": k.prefix,
                "created_at": k.created_at.isoformat(),
                "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            }
            for k in keys
        ]
    )


@keys_app.command("create")
def keys_create(
    org: OrgOpt,
    name: Annotated[str, typer.Option(help="a label to tell keys apart, e.g. ci or backoffice")] = "default",
) -> None:
    """Create an API key of the organisation's mode; the secret is printed once and stored only as a hash."""
    from fiscus.services import access

    c = _container()
    issued = access.create_api_key(c.db, c.clock, org, name=name)
    console.print(f"key id {issued.id} ({issued.prefix}); secret, shown once:")
    print(issued.secret)


@keys_app.command("list")
def keys_list(
    org: OrgOpt,
    all_keys: Annotated[bool, typer.Option("--all", help="include revoked keys")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List an organisation's keys (prefix, mode, last use); secrets are never stored, so never shown."""
    from fiscus.services import access

    keys = access.list_api_keys(_container().db, org, include_revoked=all_keys)
    if as_json:
        print(_keys_json(keys))
    else:
        console.print(_key_table(f"API keys of organisation {org}", keys))


@keys_app.command("revoke")
def keys_revoke(
    org: OrgOpt,
    key_id: Annotated[int, typer.Argument(help="the key's id, from fiscus keys list")],
) -> None:
    """Revoke a key; servers stop accepting it within seconds (their credential cache)."""
    from fiscus.services import access

    c = _container()
    access.revoke_api_key(c.db, c.clock, org, key_id)
    console.print(f"key {key_id} revoked")


@admin_keys_app.command("create")
def admin_keys_create(
    name: Annotated[str, typer.Option(help="a label, e.g. the automation that uses it")] = "admin",
) -> None:
    """Create a platform admin key; printed once, stored only as a hash."""
    from fiscus.services import access

    c = _container()
    issued = access.create_admin_key(c.db, c.clock, name=name)
    console.print(f"admin key id {issued.id} ({issued.prefix}); secret, shown once:")
    print(issued.secret)


@admin_keys_app.command("list")
def admin_keys_list(
    all_keys: Annotated[bool, typer.Option("--all", help="include revoked keys")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List admin keys (prefix, last use)."""
    from fiscus.services import access

    keys = access.list_admin_keys(_container().db, include_revoked=all_keys)
    if as_json:
        print(_keys_json(keys))
    else:
        console.print(_key_table("Admin keys", keys))


@admin_keys_app.command("revoke")
def admin_keys_revoke(key_id: Annotated[int, typer.Argument(help="the admin key's id")]) -> None:
    """Revoke an admin key."""
    from fiscus.services import access

    c = _container()
    access.revoke_admin_key(c.db, c.clock, key_id)
    console.print(f"admin key {key_id} revoked")


# --- organisation settings -----------------------------------------------------------------------


@org_app.command("show")
def org_show(org: OrgOpt, as_json: JsonOpt = False) -> None:
    """Show an organisation's settings (the same object as GET /api/v1/organization)."""
    from fiscus.queries.organizations import get_organization

    c = _container()
    with c.db.read() as conn:
        data = get_organization(conn, org)
    if as_json:
        print(json.dumps(data, default=str, ensure_ascii=False))
        return
    table = Table(title=f"Organisation {org}", show_header=False)
    table.add_column("setting")
    table.add_column("value")
    for key, value in data.items():
        shown = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
        table.add_row(key, shown)
    console.print(table)


def _footer(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        loc, sep, text = item.partition("=")
        if not sep:
            raise InvalidFieldError("footers", f"'{item}' is not LOCALE=TEXT")
        out[loc.strip()] = text
    return out


@org_app.command("update")
def org_update(
    org: OrgOpt,
    legal_name: Annotated[str | None, typer.Option(help="registered name")] = None,
    trading_name: Annotated[str | None, typer.Option(help="name customers know; empty to clear")] = None,
    email: Annotated[str | None, typer.Option(help="billing contact address")] = None,
    address_line: Annotated[
        list[str] | None, typer.Option(help="street line (repeat for a second line)")
    ] = None,
    city: Annotated[str | None, typer.Option(help="city")] = None,
    postal_code: Annotated[str | None, typer.Option(help="postal code")] = None,
    region: Annotated[str | None, typer.Option(help="state, province or oblast")] = None,
    country: Annotated[str | None, typer.Option(help="ISO country code")] = None,
    vat_registered: Annotated[
        bool | None, typer.Option("--vat-registered/--not-vat-registered", help="VAT registration")
    ] = None,
    vat_id: Annotated[str | None, typer.Option(help="VAT number; empty to clear")] = None,
    tax_id: Annotated[
        str | None, typer.Option(help="national company ID (BIN, EIK, EIN…); empty to clear")
    ] = None,
    vat_rate: Annotated[str | None, typer.Option(help="standard VAT rate for the country, e.g. 0.20")] = None,
    reduced_vat_rate: Annotated[str | None, typer.Option(help="reduced VAT rate, e.g. 0.09")] = None,
    currency: Annotated[str | None, typer.Option(help="default currency (ISO 4217)")] = None,
    locale: Annotated[str | None, typer.Option(help="document language: en, bg, ru, kk")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone")] = None,
    paper_size: Annotated[
        str | None, typer.Option(help="a4, letter, or country (follow the country)")
    ] = None,
    payment_terms_days: Annotated[int | None, typer.Option(help="days from issue to due date")] = None,
    footer: Annotated[
        list[str] | None, typer.Option(help="LOCALE=TEXT footer/legal text (repeatable)")
    ] = None,
    iban: Annotated[str | None, typer.Option(help="replace the bank accounts with this IBAN")] = None,
    bic: Annotated[str | None, typer.Option(help="BIC of --iban")] = None,
    bank_name: Annotated[str | None, typer.Option(help="bank name of --iban")] = None,
    settings_json: Annotated[
        str | None,
        typer.Option(
            "--json-settings",
            help="any settings as in POST /api/v1/organization, e.g. '{\"bank_accounts\": [...]}'",
        ),
    ] = None,
    logo: Annotated[Path | None, typer.Option(help="a PNG or SVG file (SVG is sanitised)")] = None,
    cancel_issued_ahead: Annotated[
        str | None,
        typer.Option(
            help="cancelling a subscription now: 'void' a document issued for a later period (only if "
            "nothing was paid and no card payment is in flight) or 'credit_note' it"
        ),
    ] = None,
    customer_promotion_codes: Annotated[
        bool | None,
        typer.Option(
            "--customer-promotion-codes/--no-customer-promotion-codes",
            help="let customers enter promotion codes (portal, hosted payment page)",
        ),
    ] = None,
) -> None:
    """Change settings; issued documents keep what they were issued with, the next ones show the change."""
    from fiscus.domain.logo import accept_logo
    from fiscus.services import org_settings

    changes: dict[str, Any] = json.loads(settings_json) if settings_json else {}
    simple = {
        "legal_name": legal_name, "email": email, "country": country, "vat_registered": vat_registered,
        "default_currency": currency, "locale": locale, "timezone": timezone,
        "payment_terms_days": payment_terms_days, "cancel_issued_ahead": cancel_issued_ahead,
        "customer_promotion_codes": customer_promotion_codes,
    }  # fmt: skip
    changes.update({k: v for k, v in simple.items() if v is not None})
    for key, value in (("trading_name", trading_name), ("vat_id", vat_id), ("tax_id", tax_id)):
        if value is not None:
            changes[key] = value or None
    if paper_size is not None:
        changes["paper_size"] = None if paper_size == "country" else paper_size
    address: dict[str, str | list[str]] = {
        k: v for k, v in (("city", city), ("postal_code", postal_code), ("region", region)) if v is not None
    }
    if address_line is not None:
        address["lines"] = address_line
    if address:
        changes["address"] = address
    if footer:
        changes["footers"] = _footer(footer)
    rates = {k: v for k, v in (("standard", vat_rate), ("reduced", reduced_vat_rate)) if v is not None}
    if rates:
        changes["vat_rates"] = rates
    if iban is not None:
        changes["bank_accounts"] = [{"iban": iban, "bic": bic, "bank_name": bank_name}]
    c = _container()
    changed = org_settings.update_settings(c.db, c.clock, org, changes) if changes else ()
    if logo is not None:
        accepted = accept_logo(logo.read_bytes()[: 512 * 1024 + 1], None, "logo")
        org_settings.set_logo(c.db, c.clock, org, accepted)
        changed = (*changed, "logo_sha256")
        for what in accepted.removed:
            err.print(f"[yellow]logo sanitised:[/yellow] removed {what}")
    console.print(f"changed: {', '.join(changed) if changed else 'nothing'}")


@org_app.command("series")
def org_series(
    org: OrgOpt,
    document_type: Annotated[str, typer.Argument(help="invoice, proforma or credit_note")],
    series: Annotated[str, typer.Argument(help="series name; default is the one documents use")] = "default",
    number_format: Annotated[str | None, typer.Option("--format", help="e.g. INV-{YYYY}-{seq:06}")] = None,
    next_value: Annotated[int | None, typer.Option(help="move the counter forward (never back)")] = None,
) -> None:
    """Create a number series or change its format; issued numbers never change."""
    from fiscus.services import org_settings

    c = _container()
    row = org_settings.set_series(
        c.db, c.clock, org, document_type, series, number_format=number_format, next_value=next_value
    )
    console.print(f"{row['document_type']}/{row['series']}: {row['format']}, next {row['next_value']}")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(keys_app, name="keys")
    app.add_typer(admin_keys_app, name="admin-keys")
    app.add_typer(org_app, name="org")
