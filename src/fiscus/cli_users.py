"""`fiscus users`: the operator console's people (create with a role in an organisation, list, add to
another organisation, TOTP). Passwords come from stdin, never from an option (shell history)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from fiscus.domain.errors import DomainError

if TYPE_CHECKING:  # the commands import what they use (see cli.py)
    from fiscus.bootstrap import Container

users_app = typer.Typer(
    help="Operators of the console (people, with a role per organisation).", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)

EmailOpt = Annotated[str, typer.Option(help="the operator's e-mail (their login)")]
RoleOpt = Annotated[str, typer.Option(help="admin | finance | support | viewer")]
OrgOpt = Annotated[int, typer.Option(help="the organisation's id")]


def _container() -> Container:
    from fiscus.bootstrap import NotMigratedError, build

    try:
        return build()
    except NotMigratedError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def console_url(c: Container) -> str:
    return f"{(c.settings.public_url or 'http://127.0.0.1:8000').rstrip('/')}/console/"


@users_app.command("create")
def users_create(
    email: EmailOpt,
    role: RoleOpt,
    org: OrgOpt,
    name: Annotated[str, typer.Option(help="the operator's name")] = "",
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="read the password from stdin (else print a one-time link)"),
    ] = False,
) -> None:
    """Create an operator with a role in an organisation: the password from stdin, or a one-time
    set-password link (valid 24 h) printed once."""
    from fiscus.services import operators

    c = _container()
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    try:
        operator_id, token = operators.create_operator(
            c.db, c.clock, email=email, org_id=org, role=role, password=password, name=name
        )
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"operator {operator_id} ({email}) is {role} of organisation {org}")
    if token is not None:
        console.print("set-password link, shown once (valid 24 hours):")
        print(f"{console_url(c)}set-password?token={token}")


@users_app.command("add")
def users_add(email: EmailOpt, role: RoleOpt, org: OrgOpt) -> None:
    """Give an existing operator a role in another organisation (or change their role there)."""
    from fiscus.services import operators

    c = _container()
    try:
        operator_id = operators.grant_role(c.db, c.clock, email=email, org_id=org, role=role)
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"operator {operator_id} ({email}) is {role} of organisation {org}")


@users_app.command("list")
def users_list(
    org: Annotated[int | None, typer.Option(help="only this organisation's operators")] = None,
) -> None:
    from fiscus.services import operators

    c = _container()
    table = Table("id", "email", "name", "roles", "password", "totp", title="operators")
    for o in operators.list_operators(c.db, org):
        roles = ", ".join(f"{r.value}@{org_id}" for org_id, r in o.memberships)
        table.add_row(
            str(o.id), o.email, o.name, roles, "set" if o.has_password else "pending", "on" if o.totp else ""
        )
    console.print(table)


@users_app.command("totp")
def users_totp(operator_id: Annotated[int, typer.Argument(help="the operator's id")]) -> None:
    """Turn on the TOTP second factor; prints the secret and its otpauth URI once."""
    from fiscus.services import operators

    c = _container()
    try:
        secret = operators.enable_totp(c.db, operator_id)
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print("TOTP secret, shown once (add it to an authenticator app):")
    print(secret)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
