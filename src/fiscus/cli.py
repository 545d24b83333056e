"""`fiscus`: the operator's command line. Every command calls use-case functions; none writes SQL.

Each command imports what it uses inside its body: every `fiscus` process (and every subprocess a test
starts) pays only for its own command, not for the database, the services, the PDF renderer or the app.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from fiscus import cli_admin, cli_discounts, cli_usage, cli_users
from fiscus.domain.errors import DomainError

if TYPE_CHECKING:
    from fiscus.bootstrap import Container
    from fiscus.services.billing_preview import RunPreview
    from fiscus.services.billing_run import BillingRunSummary

app = typer.Typer(
    help="Fiscus: self-hosted billing and invoicing.", no_args_is_help=True, add_completion=False
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
tokens_app = typer.Typer(help="Customer tokens (read-only, one customer).", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
prices_app = typer.Typer(
    help="Prices: archive (no new subscriptions or orders) or offer again.", no_args_is_help=True
)
app.add_typer(prices_app, name="prices")
cli_admin.register(app)
cli_users.register(app)
cli_discounts.register(app)
app.add_typer(cli_usage.events_app, name="events")
console = Console()
err = Console(stderr=True)


def _container(require_migrated: bool = True, at: datetime | None = None) -> Container:
    from fiscus.bootstrap import NotMigratedError, build
    from fiscus.domain.clock import FixedClock

    try:
        return build(clock=FixedClock(at) if at else None, require_migrated=require_migrated)
    except NotMigratedError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _parse_at(value: str | None) -> datetime | None:
    from fiscus.domain.periods import ensure_aware_utc

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return ensure_aware_utc(parsed, "--at")
    except ValueError as exc:
        err.print(f"[red]error:[/red] --at: {exc} (use ISO 8601 with an offset, e.g. 2026-01-01T00:00:00Z)")
        raise typer.Exit(2) from None


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations (SQLite or PostgreSQL, from FISCUS_DATABASE_URL)."""
    from fiscus.adapters.db import migrations
    from fiscus.config import Settings

    url = Settings().database_url
    migrations.upgrade(url, revision)
    console.print(f"database at [bold]{url}[/bold] is at revision {migrations.head_revision()}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="target revision, e.g. base")) -> None:
    from fiscus.adapters.db import migrations
    from fiscus.config import Settings

    migrations.downgrade(Settings().database_url, revision)


def print_summary(summary: BillingRunSummary) -> None:
    table = Table(title=f"Billing run {summary.run_id} at {summary.at.isoformat()}")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("documents created", str(summary.documents))
    table.add_row("subscriptions billed", str(summary.subscriptions))
    table.add_row("orders billed", str(summary.orders))
    for code, total in summary.totals.items():
        table.add_row(f"total {code}", f"{total}")
    table.add_row("time", f"{summary.seconds:.2f} s")
    table.add_row("rate", f"{summary.rate:,.0f} documents/s")
    failures = {
        **{f"subscription {k}": v for k, v in summary.failed_subscriptions.items()},
        **{f"order {k}": v for k, v in summary.failed_orders.items()},
    }
    table.add_row("failures", str(len(failures)))
    console.print(table)
    for what, why in list(failures.items())[:20]:
        err.print(f"[yellow]not billed:[/yellow] {what}: {why}")


def print_preview(preview: RunPreview) -> None:
    """What `fiscus bill` would issue (nothing is written)."""
    table = Table(title=f"Dry run at {preview.at.isoformat()}: nothing is written")
    for col in ("organisation", "customer", "source", "type", "period", "total"):
        table.add_column(col, justify="right" if col == "total" else "left")
    for d in preview.documents[:50]:
        source = f"subscription {d.subscription_id}" if d.subscription_id else f"order {d.order_id}"
        period = (
            f"{d.period_start:%Y-%m-%d} – {d.period_end:%Y-%m-%d}" if d.period_start and d.period_end else ""
        )
        table.add_row(
            str(d.organization_id), str(d.customer_id), source, d.doc_type, period, f"{d.total} {d.currency}"
        )
    console.print(table)
    if len(preview.documents) > 50:
        console.print(f"… and {len(preview.documents) - 50} more")
    totals = ", ".join(f"{v} {k}" for k, v in preview.totals.items()) or "nothing"
    console.print(f"would issue {len(preview.documents)} documents: {totals}")
    for what, why in list(preview.failures.items())[:20]:
        err.print(f"[yellow]would not bill:[/yellow] {what}: {why}")


@app.command()
def bill(
    at: Annotated[str | None, typer.Option(help="bill as of this instant (ISO 8601); default now")] = None,
    org: Annotated[int | None, typer.Option(help="only this organisation")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=5000)] = 250,
    quiet: bool = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list what would be issued and write nothing")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="bill ahead of now without asking (needed without a terminal)")
    ] = False,
) -> None:
    """Bill every due subscription period and pending order exactly once. Billing ahead of now (`--at` in
    the future) issues legal documents early: it asks first on a terminal, and needs --yes otherwise."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fiscus.services.billing_preview import preview_run
    from fiscus.services.billing_run import count_due, run_billing

    when = _parse_at(at)
    c = _container()
    if dry_run:
        print_preview(preview_run(c.db, when or c.clock.now(), org))
        return
    if when is not None and when > c.clock.now() and not yes:
        ahead = f"{when.isoformat()} is ahead of now ({c.clock.now().isoformat(timespec='seconds')})"
        if not sys.stdin.isatty():
            err.print(
                f"[red]error:[/red] --at {ahead}: billing ahead issues documents early; "
                "check with --dry-run, then pass --yes"
            )
            raise typer.Exit(2)
        planned = preview_run(c.db, when, org)
        print_preview(planned)
        if not typer.confirm(f"--at {ahead}. Issue these {len(planned.documents)} documents now?"):
            err.print("nothing billed")
            raise typer.Exit(1)
    total_subs, total_orders = count_due(c.db, when or c.clock.now(), org)
    with Progress(
        TextColumn("billing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
    ) as bar:
        task = bar.add_task("bill", total=total_subs + total_orders)
        summary = run_billing(
            c.db,
            c.clock,
            at=when,
            organization_id=org,
            batch_size=batch_size,
            progress=lambda n, _total: bar.advance(task, n),
        )
    print_summary(summary)


@app.command()
def worker(
    interval: Annotated[float, typer.Option(help="seconds between billing runs")] = 30.0,
    once: bool = False,
) -> None:
    """The background worker: billing runs (scheduled and requested through the API), webhook delivery,
    collection (automatic charges, retries, settling unknown outcomes) when a payment provider is
    configured, and housekeeping. Run several, on several machines: every claim is a row lock or a
    unique key (one unsettled attempt per document, whichever worker makes it)."""
    from fiscus.adapters.pdf.renderer import shared_renderer
    from fiscus.adapters.webhooks.sender import WebhookSender
    from fiscus.services import idempotency
    from fiscus.services.billing_requests import execute_pending_runs
    from fiscus.services.billing_run import run_billing
    from fiscus.services.emails.delivery import send_due
    from fiscus.services.emails.outlet import build_outlet
    from fiscus.services.emails.scheduled import queue_scheduled
    from fiscus.services.payments.collection import run_collection
    from fiscus.services.payments.janitor import settle_unknown
    from fiscus.services.rendering import document_links, documents_dir, render_pending_documents
    from fiscus.services.usage_thresholds import check_thresholds
    from fiscus.worker.webhooks import run_webhook_cycle

    c = _container()
    sender = WebhookSender()
    outlet = build_outlet(c.db, c.clock, c.settings)
    stopping = False

    def stop(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    next_billing = next_prune = 0.0
    while not stopping:
        now = time.monotonic()
        if now >= next_billing:
            execute_pending_runs(c.db, c.clock, batch_size=c.settings.billing_batch_size)
            summary = run_billing(c.db, c.clock, batch_size=c.settings.billing_batch_size)
            if summary.documents:
                err.print(f"worker {os.getpid()}: {summary.documents} documents in {summary.seconds:.2f} s")
            queue_scheduled(c.db, c.clock)
            check_thresholds(c.db, c.clock)
            next_billing = now + interval
        base = c.settings.public_url or f"http://{c.settings.host}:{c.settings.port}"
        links = document_links(c.db, c.clock, base, c.settings.secret_key)
        rendered = render_pending_documents(c.db, c.clock, shared_renderer(), documents_dir(), links=links)
        if rendered:
            err.print(f"worker {os.getpid()}: {rendered} PDFs rendered")
        dispatched, attempts = run_webhook_cycle(
            c.db, c.clock, sender, allow_private=c.settings.webhooks_allow_private
        )
        if attempts:
            err.print(f"worker {os.getpid()}: {dispatched} events dispatched, {attempts} webhook attempts")
        if outlet is not None:
            mail = send_due(c.db, c.clock, outlet)
            if mail.sent or mail.retried or mail.bounced or mail.failed:
                err.print(
                    f"worker {os.getpid()}: emails {mail.sent} sent, {mail.retried} to retry, "
                    f"{mail.bounced} bounced, {mail.failed} failed"
                )
        if c.payments is not None:
            settled = settle_unknown(c.db, c.clock, c.payments)
            collected = run_collection(c.db, c.clock, c.payments)
            if settled or collected.attempted or collected.skipped:
                err.print(
                    f"worker {os.getpid()}: {collected.attempted} charges ({collected.succeeded} succeeded, "
                    f"{collected.failed} failed, {collected.unknown} unknown), "
                    f"{collected.skipped} unscheduled, {settled} unknown outcomes settled",
                    soft_wrap=True,
                )
        if now >= next_prune:
            idempotency.prune(c.db, c.clock)
            cli_usage.usage_maintenance(c.db, c.clock)
            next_prune = now + 3600
        if once:
            break
        pause_until = time.monotonic() + c.settings.worker_pause_seconds
        while not stopping and time.monotonic() < pause_until:
            time.sleep(min(0.1, c.settings.worker_pause_seconds))


@app.command("reconcile")
def reconcile_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check the stored invariants, and Fiscus's charges against the payment provider's ledger when one
    is configured; exit 1 with a report if any is violated or the provider could not be asked."""
    from fiscus.domain.payments import OutcomeUnknown, ProviderError, ProviderUnreachable
    from fiscus.services.reconcile import PROVIDER_CHECK, Violation, reconcile, reconcile_with_provider

    c = _container()
    report = reconcile(c.db)
    if c.payments is not None:
        try:
            report[PROVIDER_CHECK] = reconcile_with_provider(c.db, c.payments)
        except (ProviderUnreachable, ProviderError, OutcomeUnknown) as exc:
            report[PROVIDER_CHECK] = [
                Violation(PROVIDER_CHECK, {"problem": "provider_ledger_unavailable", "error": str(exc)})
            ]
    bad = {k: v for k, v in report.items() if v}
    if as_json:
        print(json.dumps({k: [v.row for v in rows] for k, rows in report.items()}, default=str, indent=2))
    else:
        for name, rows in report.items():
            mark = "[red]FAIL[/red]" if rows else "[green]ok[/green]"
            console.print(f"{mark}  {name}")
            for r in rows[:5]:
                console.print(f"      {r.row}")
    if bad:
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    workers: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Serve the HTTP API (refuses to start on an un-migrated database)."""
    import uvicorn

    from fiscus.logs import UVICORN_LOG_CONFIG

    c = _container()
    c.db.dispose()
    uvicorn.run(
        "fiscus.api.app:create_serving_app",
        factory=True,
        host=host or c.settings.host,
        port=port or c.settings.port,
        workers=workers,
        log_config=UVICORN_LOG_CONFIG,
        access_log=False,  # ObservabilityMiddleware logs each request, in JSON, with its request id
        # uvicorn kills a worker process that has not answered its health check within 5 s; a child
        # still importing the app on a busy machine took longer, and was killed and respawned forever.
        timeout_worker_healthcheck=60,
    )


@app.command()
def demo(
    no_serve: Annotated[bool, typer.Option("--no-serve", help="seed and bill, then exit")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="print one JSON object (implies --no-serve)")
    ] = False,
    gateway_db: Annotated[
        Path, typer.Option(help="the test gateway's own ledger (SQLite file; reset with a fresh database)")
    ] = Path("./var/gateway.db"),
    worker_interval: Annotated[
        float,
        typer.Option(min=0.1, help="seconds between the worker's billing runs while the demo serves"),
    ] = 10.0,
    at: Annotated[
        str | None,
        typer.Option(
            help="end the seeded history at this instant (ISO 8601; default now); the server and the "
            "worker run on the wall clock, so they bill and charge what came due since"
        ),
    ] = None,
) -> None:
    """Seed three demo organisations in test mode (idempotent), bill and collect twelve months of
    history through the built-in test payment gateway (started as its own process), then serve the API
    with a worker beside it (billing runs, collection with retries, PDFs, webhooks, the janitor), so new
    invoices are charged and rendered while it runs. Ctrl-C stops the server, the worker and the
    gateway. On a database seeded before, nothing is written: the same test keys are printed."""
    from contextlib import ExitStack

    import httpx

    from fiscus.adapters.db import migrations
    from fiscus.config import Settings
    from fiscus.demo import (
        GatewayProcess,
        WorkerProcess,
        describe,
        find_payment_links,
        free_port,
        is_seeded,
        new_webhook_secret,
        reset_gateway_ledger,
        seed_demo,
    )
    from fiscus.domain.clock import FixedClock
    from fiscus.services.rendering import documents_dir

    serving = not (no_serve or as_json)
    history_end = _parse_at(at)
    settings = Settings()
    migrations.upgrade(settings.database_url)
    # Two gateway processes share one ledger file: the history is seeded through one that sends no
    # events (no server is up to take them yet: they would only queue), while the one the server will use,
    # whose events are signed for the server's webhook route, starts alongside.
    seeding_port = free_port()
    serving_port = free_port(8100) if serving else seeding_port
    secret = new_webhook_secret()
    os.environ["FISCUS_GATEWAY_URL"] = f"http://127.0.0.1:{serving_port}"
    os.environ["FISCUS_GATEWAY_WEBHOOK_SECRET"] = secret
    settings = Settings()
    c = _container()
    if not is_seeded(c.db) and reset_gateway_ledger(gateway_db):
        err.print(f"[dim]fresh database: the gateway ledger {gateway_db} starts afresh too[/dim]")
    with ExitStack() as stack:
        try:
            seeding = stack.enter_context(GatewayProcess(gateway_db, seeding_port))
            seeding_url = seeding.wait_ready()
            for_server = None
            webhook_url = f"http://{settings.host}:{settings.port}/api/v1/webhooks/gateway"
            if serving:
                for_server = stack.enter_context(
                    GatewayProcess(gateway_db, serving_port, webhook_url=webhook_url, webhook_secret=secret)
                )
            clock = FixedClock(history_end) if history_end else c.clock
            result = seed_demo(c.db, clock, quiet=as_json, gateway_url=seeding_url)
        except DomainError as exc:
            err.print(f"[red]demo failed:[/red] {exc}")
            raise typer.Exit(1) from None
        except (RuntimeError, httpx.HTTPError) as exc:
            err.print(f"[red]demo failed: the test gateway:[/red] {exc}")
            raise typer.Exit(1) from None
        seeding.stop()
        if for_server is not None:
            try:
                for_server.wait_ready()
            except RuntimeError:
                # Its port was free when chosen but taken before the gateway bound it (another demo
                # starting at the same moment): one more gateway, on a port the kernel picks.
                for_server.stop()
                for_server = stack.enter_context(
                    GatewayProcess(gateway_db, free_port(), webhook_url=webhook_url, webhook_secret=secret)
                )
                try:
                    os.environ["FISCUS_GATEWAY_URL"] = for_server.wait_ready()
                except RuntimeError as exc:
                    err.print(f"[red]demo failed: the test gateway:[/red] {exc}")
                    raise typer.Exit(1) from None
                settings = Settings()
        result.gateway_url = settings.gateway_url
        result.payment_links = find_payment_links(c.db, c.clock, settings)
        if as_json:
            print(json.dumps(result.as_json(), indent=2, default=str))
            return
        describe(result, console, settings, serving=serving)
        if for_server is not None:
            c.db.dispose()

            def leave(sig: int, _frame: FrameType | None) -> None:
                raise SystemExit(128 + sig)

            # The server re-raises the signal that stopped it once it is done; turned into an exit here,
            # it unwinds through the `with` block, which stops the gateway too.
            signal.signal(signal.SIGTERM, leave)
            signal.signal(signal.SIGHUP, leave)
            # Customers' emails go to a local sink unless an SMTP server is configured: one .eml file
            # per message (open it in any mail client), written by the worker.
            mail_dir = Path("./var/demo-mail").resolve()
            os.environ.setdefault("FISCUS_SMTP_URL", f"file://{mail_dir}")
            stack.enter_context(WorkerProcess(worker_interval))
            console.print(
                f"Worker: billing runs every {worker_interval:g} s; charges, retries, PDFs "
                f"({documents_dir()}), webhooks and the janitor in between. Ctrl-C stops everything."
            )
            console.print(f"Emails to customers: {os.environ['FISCUS_SMTP_URL']} (one .eml file per message)")
            serve(host=None, port=None, workers=1)


@app.command()
def gateway(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8100,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    db: Annotated[Path, typer.Option(help="the gateway's own ledger (SQLite file)")] = Path(
        "./var/gateway.db"
    ),
    webhook_url: Annotated[str | None, typer.Option(help="where to send its signed events")] = None,
    webhook_secret: Annotated[str | None, typer.Option(help="whsec_… secret to sign them")] = None,
    allow_return_origin: Annotated[
        list[str] | None,
        typer.Option(
            help="origin (scheme://host:port) the hosted card form may send browsers back to; "
            "repeatable; default: loopback hosts only"
        ),
    ] = None,
    timeout_seconds: Annotated[
        float, typer.Option(help="how long the timeout test card holds its answer")
    ] = 15.0,
    slow_seconds: Annotated[float, typer.Option(help="how long the slow test card takes")] = 2.0,
) -> None:
    """Run the built-in test payment gateway (test cards in docs/gateway.md), a separate service with its
    own ledger that Fiscus talks to only over HTTP."""
    from fiscus.gateway.app import normalise_origin, serve_gateway

    for origin in allow_return_origin or ():
        try:
            normalise_origin(origin)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--allow-return-origin") from None
    db.parent.mkdir(parents=True, exist_ok=True)
    serve_gateway(
        db,
        host,
        port,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        allowed_return_origins=allow_return_origin or None,
        timeout_seconds=timeout_seconds,
        slow_seconds=slow_seconds,
    )


@tokens_app.command("create")
def tokens_create(
    customer: Annotated[int, typer.Option(help="customer id")],
    ttl_days: Annotated[int | None, typer.Option(min=1, help="expire after this many days")] = None,
) -> None:
    """Create a customer token (read-only access to that customer's documents)."""
    from sqlalchemy import select

    from fiscus.adapters.db import tables
    from fiscus.services.access import create_customer_token

    c = _container()
    with c.db.read() as conn:
        org = conn.execute(
            select(tables.customers.c.organization_id).where(tables.customers.c.id == customer)
        ).scalar_one_or_none()
    if org is None:
        err.print(f"[red]error:[/red] --customer: customer {customer} does not exist")
        raise typer.Exit(2)
    issued = create_customer_token(
        c.db, c.clock, org, customer, ttl=timedelta(days=ttl_days) if ttl_days else None
    )
    console.print(f"token id {issued.id} ({issued.prefix}) for customer {customer}; secret, shown once:")
    print(issued.secret)


@prices_app.command("archive")
def prices_archive(
    price: Annotated[int, typer.Argument(help="price id")],
    org: Annotated[int, typer.Option(help="organisation id")],
) -> None:
    """Archive a price: no new subscriptions or orders on it; existing subscriptions keep being billed."""
    from fiscus.services.catalog import set_price_active

    c = _container()
    set_price_active(c.db, c.clock, org, price, active=False)
    console.print(f"price {price} archived")


@prices_app.command("unarchive")
def prices_unarchive(
    price: Annotated[int, typer.Argument(help="price id")],
    org: Annotated[int, typer.Option(help="organisation id")],
) -> None:
    """Offer an archived price again."""
    from fiscus.services.catalog import set_price_active

    c = _container()
    set_price_active(c.db, c.clock, org, price, active=True)
    console.print(f"price {price} offered again")


def main() -> None:
    try:
        app()
    except DomainError as exc:
        err.print(f"[red]error ({exc.code}):[/red] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
