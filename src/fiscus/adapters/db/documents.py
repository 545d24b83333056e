"""Writing documents: numbers from locked counter rows, rows in bulk, audit and outbox in the same
transaction. Callers (services) own the transaction; nothing here commits.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

import msgspec
from sqlalchemy import JSON, Connection, Table, bindparam, insert, text, update

from fiscus.adapters.db import tables as t
from fiscus.adapters.db import tables_discounts as td
from fiscus.adapters.db.context import CustomerContext, OrgContext
from fiscus.adapters.db.email_queue import queue_for_events
from fiscus.domain.documents import ComputedDocument, DocumentStatus, DocumentType, LineInput, LineKind
from fiscus.domain.errors import NotFoundError
from fiscus.domain.money import from_minor
from fiscus.domain.numbering import format_number
from fiscus.domain.periods import Period, local_date
from fiscus.domain.tax import LineTax, TaxTreatment

DEFAULT_SERIES = "default"


def stored_line_input(row: Any, tax_note: str = "") -> LineInput:
    """A stored `document_lines` row as the line it was computed from (for reusing or crediting its
    settled figures, never recomputing them)."""
    return LineInput(
        description=row["description"],
        quantity=row["quantity"],
        unit_price=row["unit_price"],
        tax=LineTax(TaxTreatment(row["tax_treatment"]), row["tax_rate"], tax_note),
        tax_inclusive=row["tax_inclusive"],
        ratio=Fraction(row["ratio"]),
        kind=LineKind(row["kind"]),
        product_id=row["product_id"],
        variant_id=row["variant_id"],
        price_id=row["price_id"],
        period_start=row["period_start"],
        period_end=row["period_end"],
        subscription_period_id=row["subscription_period_id"],
        order_id=row["order_id"],
    )


@dataclass(slots=True)
class NewDocument:
    org: OrgContext
    customer: CustomerContext
    doc_type: DocumentType
    computed: ComputedDocument
    subscription_id: int | None = None
    period: Period | None = None
    billed_period: bool = False
    order_ids: list[int] = field(default_factory=list)
    pending_item_ids: list[int] = field(default_factory=list)
    converted_from_id: int | None = None
    series: str = DEFAULT_SERIES


@dataclass(frozen=True, slots=True)
class Numbered:
    sequence: int
    number: str
    issued_at: datetime
    issue_date: date
    due_date: date


def allocate_numbers(
    conn: Connection, org_id: int, doc_type: DocumentType, series: str, count: int
) -> tuple[int, str]:
    """Take `count` consecutive values from the series' counter row and return (first, format).

    The UPDATE locks the row until the transaction ends; a rollback returns the values, so numbers
    are gapless. Callers lock series in a fixed order (org, type, series) to avoid deadlocks.
    """
    c = t.number_series.c
    row = conn.execute(
        update(t.number_series)
        .where(c.organization_id == org_id, c.document_type == doc_type.value, c.series == series)
        .values(next_value=c.next_value + count)
        .returning(c.next_value, c.format)
    ).one_or_none()
    if row is None:
        raise NotFoundError("number series", f"{doc_type.value}/{series}", field="series")
    return int(row.next_value) - count, str(row.format)


def number_documents(conn: Connection, docs: Sequence[NewDocument], issued_at_fn: Any) -> dict[int, Numbered]:
    """Numbers for the documents at the given indexes, allocated per series in a fixed order."""
    groups: dict[tuple[int, str, str], list[int]] = defaultdict(list)
    for i, d in enumerate(docs):
        groups[(d.org.id, d.doc_type.value, d.series)].append(i)
    out: dict[int, Numbered] = {}
    issued_at: datetime | None = None
    for key in sorted(groups):
        org_id, doc_type, series = key
        members = groups[key]
        first, fmt = allocate_numbers(conn, org_id, DocumentType(doc_type), series, len(members))
        if issued_at is None:
            issued_at = issued_at_fn()  # read after the first lock: number order == time order
        assert issued_at is not None
        for offset, i in enumerate(members):
            org = docs[i].org
            issue_date = local_date(issued_at, org.tz)
            seq = first + offset
            out[i] = Numbered(
                sequence=seq,
                number=format_number(fmt, seq, issue_date),
                issued_at=issued_at,
                issue_date=issue_date,
                due_date=issue_date + timedelta(days=int(org.row["payment_terms_days"])),
            )
    return out


def event_type(doc_type: DocumentType, what: str) -> str:
    return f"{doc_type.value}.{what}"


def document_event_payload(
    doc_id: int, d: NewDocument, status: DocumentStatus, n: Numbered | None
) -> dict[str, Any]:
    cur = d.computed.currency
    return {
        "id": doc_id,
        "type": d.doc_type.value,
        "status": status.value,
        "number": n.number if n else None,
        "customer_id": d.customer.id,
        "subscription_id": d.subscription_id,
        "currency": cur.code,
        "total": str(from_minor(d.computed.total_minor, cur)),
    }


def allowance_rows_of(d: NewDocument, doc_id: int) -> list[dict[str, Any]]:
    """Each discount's share on each line it reduces (issue 17: EN 16931 BG-27 line allowances)."""
    return [
        {
            "organization_id": d.org.id,
            "document_id": doc_id,
            "line_position": pos,
            "discount_id": s.discount_id,
            "coupon_id": s.coupon_id,
            "wallet_grant_id": s.grant_id,
            "reason": s.reason,
            "amount_minor": part,
        }
        for s in d.computed.discounts
        for pos, part in enumerate(s.parts, start=1)
        if part
    ]


def persist_documents(
    conn: Connection,
    docs: Sequence[NewDocument],
    *,
    now: datetime,
    issue: bool,
    actor: str,
    issued_at_fn: Any = None,
    billing_run_id: int | None = None,
    collect_at: Sequence[datetime | None] | None = None,
) -> list[int]:
    """Insert the documents with their lines, taxes, period rows, order links, audit and outbox rows.

    With `issue`, each gets its legal number in this same transaction. `collect_at` (per document) is
    its planned automatic charge. Returns the new ids in order.
    """
    if not docs:
        return []
    numbered = number_documents(conn, docs, issued_at_fn or (lambda: now)) if issue else {}
    status = DocumentStatus.OPEN if issue else DocumentStatus.DRAFT
    rows = []
    for i, d in enumerate(docs):
        n = numbered.get(i)
        c = d.computed
        rows.append(
            {
                "organization_id": d.org.id,
                "type": d.doc_type.value,
                "status": status.value,
                "series": d.series,
                "sequence": n.sequence if n else None,
                "number": n.number if n else None,
                "customer_id": d.customer.id,
                "subscription_id": d.subscription_id,
                "currency": c.currency.code,
                "subtotal_minor": c.subtotal_minor,
                "tax_minor": c.tax_minor,
                "total_minor": c.total_minor,
                "amount_paid_minor": 0,
                "period_start": d.period.start if d.period else None,
                "period_end": d.period.end if d.period else None,
                "issue_date": n.issue_date if n else None,
                "issued_at": n.issued_at if n else None,
                "due_date": n.due_date if n else None,
                "seller": d.org.seller_snapshot(),
                "buyer": d.customer.buyer_snapshot(),
                "notes": c.notes,
                "converted_from_id": d.converted_from_id,
                "billing_run_id": billing_run_id,
                "next_payment_attempt_at": collect_at[i] if collect_at else None,
                "created_at": now,
                "updated_at": now,
            }
        )
    ids = insert_returning_ids(conn, t.documents, rows)
    period_ids: dict[int, int] = {}
    billed = [(i, d) for i, d in enumerate(docs) if d.billed_period and d.period is not None]
    if billed:
        period_rows = [
            {
                "organization_id": d.org.id,
                "subscription_id": d.subscription_id,
                "period_start": d.period.start,  # type: ignore[union-attr]
                "period_end": d.period.end,  # type: ignore[union-attr]
                "document_id": ids[i],
                "created_at": now,
            }
            for i, d in billed
        ]
        returned = insert_returning_ids(conn, t.subscription_periods, period_rows)
        for (i, _d), period_id in zip(billed, returned, strict=True):
            period_ids[i] = period_id
    line_rows: list[dict[str, Any]] = []
    tax_rows: list[dict[str, Any]] = []
    order_rows: list[dict[str, Any]] = []
    audit_rows: list[dict[str, Any]] = []
    outbox_rows: list[dict[str, Any]] = []
    pending_updates: list[dict[str, Any]] = []
    allowance_rows: list[dict[str, Any]] = []
    for i, d in enumerate(docs):
        doc_id = ids[i]
        allowance_rows.extend(allowance_rows_of(d, doc_id))
        for pos, line in enumerate(d.computed.lines, start=1):
            s = line.source
            line_rows.append(
                {
                    "organization_id": d.org.id,
                    "document_id": doc_id,
                    "position": pos,
                    "kind": s.kind.value,
                    "description": s.description,
                    "product_id": s.product_id,
                    "variant_id": s.variant_id,
                    "price_id": s.price_id,
                    "subscription_period_id": s.subscription_period_id or period_ids.get(i),
                    "order_id": s.order_id,
                    "period_start": s.period_start,
                    "period_end": s.period_end,
                    "quantity": s.quantity,
                    "unit_price": s.unit_price,
                    "ratio": str(s.ratio),
                    "tax_inclusive": s.tax_inclusive,
                    "tax_treatment": s.tax.treatment.value,
                    "tax_rate": s.tax.rate,
                    "amount_minor": line.amount_minor,
                    "tax_minor": line.tax_minor,
                }
            )
        for row in d.computed.breakdown:
            tax_rows.append(
                {
                    "organization_id": d.org.id,
                    "document_id": doc_id,
                    "treatment": row.treatment.value,
                    "rate": row.rate,
                    "base_minor": row.base_minor,
                    "tax_minor": row.tax_minor,
                    "note": row.note,
                }
            )
        order_rows.extend(
            {"organization_id": d.org.id, "document_id": doc_id, "order_id": o} for o in d.order_ids
        )
        pending_updates.extend({"pid": p, "doc": doc_id} for p in d.pending_item_ids)
        n = numbered.get(i)
        created = document_event_payload(doc_id, d, DocumentStatus.DRAFT, None)
        audit_rows.append(audit_row(d.org.id, "document", doc_id, "created", actor, now, None, created))
        outbox_rows.append(
            outbox_row(d.org.id, event_type(d.doc_type, "created"), "document", doc_id, now, created)
        )
        if n is not None:
            issued = document_event_payload(doc_id, d, DocumentStatus.OPEN, n)
            audit_rows.append(
                audit_row(d.org.id, "document", doc_id, "issued", actor, now, {"status": "draft"}, issued)
            )
            outbox_rows.append(
                outbox_row(d.org.id, event_type(d.doc_type, "issued"), "document", doc_id, now, issued)
            )
    if line_rows:
        insert_rows(conn, t.document_lines, line_rows)
    if tax_rows:
        insert_rows(conn, t.document_taxes, tax_rows)
    if allowance_rows:
        insert_rows(conn, td.document_allowances, allowance_rows)
    if order_rows:
        insert_rows(conn, t.document_orders, order_rows)
    if pending_updates:
        pi = t.pending_items
        conn.execute(
            update(pi).where(pi.c.id == bindparam("pid")).values(document_id=bindparam("doc")),
            pending_updates,
        )
    append_audit(conn, audit_rows)
    append_outbox(conn, outbox_rows)
    return ids


def audit_row(
    org_id: int,
    entity_type: str,
    entity_id: int,
    action: str,
    actor: str,
    at: datetime,
    before: Any,
    after: Any,
) -> dict[str, Any]:
    return {
        "organization_id": org_id,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "action": action,
        "actor": actor,
        "at": at,
        "before": before,
        "after": after,
    }


def outbox_row(
    org_id: int, type_: str, entity_type: str, entity_id: int, at: datetime, payload: Any
) -> dict[str, Any]:
    return {
        "organization_id": org_id,
        "type": type_,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "payload": payload,
        "created_at": at,
    }


def append_audit(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        insert_rows(conn, t.audit_events, rows)


def append_outbox(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Write outbox events, and the customers' emails they call for in the same transaction."""
    if rows:
        insert_rows(conn, t.outbox_events, rows)
        queue_for_events(conn, rows)


COPY_THRESHOLD = 50
"""From this many rows, PostgreSQL gets them through COPY: one round trip and no statement parsing
(the billing run's inserts went from executemany to COPY; see bench/billing_run.py)."""


def insert_returning_ids(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert rows and return their new ids in the rows' order.

    On PostgreSQL a batch takes its ids from the table's sequence in one query, then goes through COPY:
    the INSERT ... VALUES ... RETURNING that SQLAlchemy builds for a batch is tens of kilobytes, too long
    for psycopg's query cache, so psycopg re-parsed it for every batch (a quarter of the billing run's
    client time in bench/billing_run.py --profile).
    """
    if conn.dialect.name != "postgresql" or len(rows) < COPY_THRESHOLD:
        query = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return [r[0] for r in conn.execute(query, rows)]
    allocate = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)")
    ids = sorted(int(i) for i in conn.execute(allocate, {"table": table.name, "n": len(rows)}).scalars())
    insert_rows(conn, table, [{"id": i, **row} for i, row in zip(ids, rows, strict=True)])
    return ids


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows whose ids nobody needs back: COPY on PostgreSQL for a batch, executemany otherwise.

    COPY bypasses SQLAlchemy's bind processing, so values are given as the driver wants them: JSON
    columns wrapped in Jsonb; Decimal and aware datetimes pass as they are (they are already exact and
    in UTC by the engine's rules). The COPY is binary when every column has a built-in type: neither
    the driver (text escaping) nor the server (parsing dates, numbers and JSON text) handles text.
    """
    if conn.dialect.name != "postgresql" or len(rows) < COPY_THRESHOLD:
        conn.execute(insert(table), rows)
        return
    from psycopg.types.json import Jsonb  # the driver, only on PostgreSQL (SQLite processes skip it)

    dumps = msgspec.json.encode  # ~10x the standard library's json.dumps; jsonb stores the same value

    columns = [c.name for c in table.c if c.name in rows[0]]
    json_columns = {c.name for c in table.c if isinstance(c.type, JSON) or "JSON" in type(c.type).__name__}
    raw = conn.connection.driver_connection
    assert raw is not None
    oids = _column_types(raw, table.name)
    types = [oids.get(c, 0) for c in columns]
    binary = all(0 < oid < _FIRST_USER_OID for oid in types)
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN" + (
        " (FORMAT BINARY)" if binary else ""
    )
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        if binary:
            copy.set_types(types)
        for row in rows:
            copy.write_row(
                [
                    Jsonb(row[c], dumps) if c in json_columns and row[c] is not None else row[c]
                    for c in columns
                ]
            )


_FIRST_USER_OID = 16384
"""PostgreSQL's built-in types have oids below this, the same in every database (FirstNormalObjectId)."""

_COLUMN_TYPES: weakref.WeakKeyDictionary[Any, dict[str, dict[str, int]]] = weakref.WeakKeyDictionary()


def _column_types(raw: Any, table: str) -> dict[str, int]:
    """Column name → type oid of a table, read once per driver connection (a column of a type that is
    not built in makes `insert_rows` fall back to text COPY)."""
    known = _COLUMN_TYPES.setdefault(raw, {})
    if table not in known:
        with raw.cursor() as cursor:
            cursor.execute(
                "SELECT attname, atttypid::int FROM pg_attribute"
                " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                [table],
            )
            known[table] = {str(name): int(oid) for name, oid in cursor.fetchall()}
    return known[table]
