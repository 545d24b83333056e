"""`fiscus events import FILE`: a backfill of usage events from NDJSON or CSV, streamed in batches
through the same exactly-once ingest as the API (running it again imports nothing twice)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec
import typer
from rich.console import Console

from fiscus.domain.errors import ValidationError

if TYPE_CHECKING:
    # Imported where used: every command (and every `fiscus gateway` process) loads this module.
    from rich.progress import Progress

    from fiscus.adapters.db.engine import Database
    from fiscus.domain.clock import Clock
    from fiscus.services.usage_ingest import EventIn

IMPORT_BATCH: Final = 10_000
"""`services.usage_ingest.IMPORT_BATCH` (a test keeps them equal), not imported: start-up time."""

events_app = typer.Typer(help="Usage events.", no_args_is_help=True)
err = Console(stderr=True)
REQUIRED = ("transaction_id", "code", "timestamp")
WHO = ("customer_id", "external_customer_id")  # exactly one of them


class BadLine(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")


def _event(line: int, raw: dict[str, Any]) -> EventIn:
    from fiscus.services.usage_ingest import EventIn

    missing = [k for k in REQUIRED if raw.get(k) in (None, "")]
    if missing:
        raise BadLine(line, f"missing {', '.join(missing)}")
    if sum(raw.get(k) not in (None, "") for k in WHO) != 1:
        raise BadLine(line, "exactly one of customer_id and external_customer_id")
    external = raw.get("external_customer_id") or None
    try:
        at = datetime.fromisoformat(str(raw["timestamp"]).replace("Z", "+00:00"))
        customer = None if external else int(raw["customer_id"])
    except ValueError as exc:
        raise BadLine(line, str(exc)) from None
    if at.tzinfo is None:
        raise BadLine(line, "timestamp needs a UTC offset")
    props = raw.get("properties")
    if props is None:  # CSV: every other column is a property
        props = {k: v for k, v in raw.items() if k not in (*REQUIRED, *WHO) and v not in (None, "")}
    if not isinstance(props, dict):
        raise BadLine(line, "properties must be an object")
    ext = None if external is None else str(external)
    return EventIn(str(raw["transaction_id"]), str(raw["code"]), at, props, customer, ext)


def read_events(stream: io.BufferedReader, fmt: str) -> Iterator[tuple[int, EventIn]]:
    """(line number, event) from an NDJSON or CSV byte stream, one line at a time."""
    if fmt == "csv":
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        for n, row in enumerate(csv.DictReader(text), start=2):
            yield n, _event(n, dict(row))
        return
    decoder = msgspec.json.Decoder()
    for n, line in enumerate(stream, start=1):
        if line.strip():
            try:
                raw = decoder.decode(line)
            except msgspec.DecodeError as exc:
                raise BadLine(n, f"not JSON: {exc}") from None
            if not isinstance(raw, dict):
                raise BadLine(n, "not a JSON object")
            yield n, _event(n, raw)


def import_file(
    db: Database,
    clock: Clock,
    org_id: int,
    path: Path,
    *,
    fmt: str,
    batch: int,
    late_days: int | None,
    progress: Progress | None = None,
) -> int:
    """Import every event of the file in batches; how many lines were sent (resends included)."""
    from fiscus.services.usage_ingest import ingest_events

    sent = 0
    task = progress.add_task("events", total=path.stat().st_size) if progress else None
    with path.open("rb") as stream:
        pending: list[tuple[int, EventIn]] = []

        def flush() -> None:
            nonlocal sent
            try:
                ingest_events(db, clock, org_id, [e for _n, e in pending], late_days=late_days, limit=batch)
            except ValidationError as exc:
                lines = [
                    pending[int(p.field.split(".")[1])][0]
                    for p in exc.problems
                    if p.field.startswith("events.")
                ]
                details = "; ".join(
                    f"line {n}: {p.field.split('.', 2)[-1]}: {p.message}"
                    for n, p in zip(lines, exc.problems, strict=False)
                )
                raise BadLine(lines[0] if lines else 0, details or str(exc)) from None
            sent += len(pending)
            pending.clear()
            if progress is not None and task is not None:
                progress.update(task, completed=stream.tell())

        for n, event in read_events(stream, fmt):
            pending.append((n, event))
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
    return sent


@events_app.command("import")
def import_events(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="NDJSON (one event per line) or CSV")
    ],
    org: Annotated[int, typer.Option("--org", help="organisation id")],
    fmt: Annotated[str | None, typer.Option("--format", help="ndjson or csv (default: by extension)")] = None,
    batch: Annotated[int, typer.Option(min=1, max=IMPORT_BATCH)] = IMPORT_BATCH,
    late_days: Annotated[
        int | None, typer.Option(help="accept events this many days old (a backfill)")
    ] = None,
) -> None:
    """Import usage events; a bad line stops the import (everything before it is kept, and importing
    the file again skips what is already stored)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    from fiscus.bootstrap import build

    c = build()
    kind = fmt or ("csv" if file.suffix.lower() == ".csv" else "ndjson")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=err) as progress:
            sent = import_file(
                c.db, c.clock, org, file, fmt=kind, batch=batch, late_days=late_days, progress=progress
            )
    except BadLine as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    err.print(f"{sent} events sent (each stored once)")


def usage_maintenance(db: Database, clock: Clock) -> list[str]:
    """The worker's hourly step: monthly event partitions made ahead (PostgreSQL)."""
    from fiscus.adapters.db.usage_partitions import ensure_ahead

    with db.write() as conn:
        return ensure_ahead(conn, clock.now().date())
