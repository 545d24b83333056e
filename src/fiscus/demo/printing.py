"""`fiscus demo`'s printed summary: a table per organisation, then where to look next (server, keys,
tokens, the gateway, hosted payment links with the test cards)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from fiscus.config import Settings
from fiscus.demo.summary import TEST_CARDS, DemoResult, server_url


def describe(result: DemoResult, console: Console, settings: Settings, *, serving: bool = True) -> None:
    """What was seeded, and where to look at it next."""
    for org in result.organizations:
        table = RichTable(title=Text(f"{org.name} ({org.slug})"), show_header=False, title_justify="left")
        table.add_column("what", style="bold")
        table.add_column("value")
        table.add_row("id", f"{org.id} (test mode; live organisation {org.live_id})")
        table.add_row("country", org.country)
        table.add_row("currency", org.currency)
        table.add_row("time zone", org.timezone)
        table.add_row("customers", str(len(org.customer_ids)))
        table.add_row("subscriptions", _joined(org.subscriptions.items()))
        by_type: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for (kind, status), n in org.documents.items():
            by_type[kind].append((status, n))
        for kind, statuses in by_type.items():
            table.add_row(f"{kind.replace('_', ' ')}s", _joined(statuses))
        for code, amount in org.totals.items():
            table.add_row(f"total {code}", f"{amount:,}")
        if org.payments:
            table.add_row("card payments", _joined(org.payments.items()))
            table.add_row("refunds", str(org.refunds))
        console.print(table)
    state = "seeded" if result.created else "already present: nothing billed, charged or created"
    console.print(f"{result.documents} documents in all ({state}).")
    base = server_url(settings)
    console.print(f"Server: [bold]{base}[/bold]")
    for path in ("/healthz", "/readyz", "/docs"):
        console.print(f"  {base}{path}")
    console.print(
        "The demo's data is in test mode: test keys see only it, and its PDFs and hosted pages say TEST."
    )
    for org in result.organizations:
        console.print(f"{org.slug}: test API key [bold]{org.api_key}[/bold]")
        if org.customer_ids:
            first = org.customer_ids[0]
            console.print(f"  customer {first} token {org.customer_tokens.get(first)}")
    if result.organizations:
        sample = result.organizations[0]
        console.print(
            f"Try: curl -H 'Authorization: Bearer {sample.api_key}' '{base}/api/v1/documents?limit=3'"
        )
    if result.gateway_url:
        state = "its ledger: GET /v1/ledger" if serving else "stopped: it runs while `fiscus demo` serves"
        console.print(f"Test payment gateway: [bold]{result.gateway_url}[/bold] ({state})")
    for link in result.payment_links:
        what = f"{link.type} {link.number or link.document_id} of {link.organization}"
        left = "remainder due" if link.partly_paid else "due"
        console.print(f"Pay {what} ({link.amount_due:,} {link.currency} {left}) in a browser:")
        console.print(f"  [bold]{link.url}[/bold]")
    if result.payment_links:
        console.print(
            f"  test cards: {TEST_CARDS['success']} succeeds, {TEST_CARDS['decline']} is declined "
            "(any future expiry, any CVC)"
        )
    if result.organizations:
        live = result.organizations[0].live_id
        console.print(
            f"Test keys are kept and shown again on every run; live keys never are: mint one with "
            f"[bold]fiscus keys create --org {live}[/bold] (shown once)"
        )
    if result.console_login:
        email, password = result.console_login
        console.print(f"Operator console: [bold]{base}/console/[/bold]  log in as {email} / {password}")
    console.print("Bill what is due now: [bold]fiscus bill[/bold]")
    console.print("Check the invariants:  [bold]fiscus reconcile[/bold]")


def _joined(counts: Iterable[tuple[str, int]]) -> str:
    return " · ".join(f"{name} {n}" for name, n in counts) or "none"
