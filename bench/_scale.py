"""api_read.py at scale: grow one organisation to ~N documents by bulk copy (not through HTTP), then
compare the cost of page 1, page 10,000 and the last page of each list.

The copies are the organisation's billed invoices (with their lines and taxes) under new ids, numbers and
sequences, written by `INSERT ... SELECT` over a recursive CTE of copy numbers: one transaction, no
row crosses into Python, so a million documents take seconds rather than a billing run's minutes.
"""

from __future__ import annotations

import statistics
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select, text

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.engine import Database

DEEP_PAGE = 10_000
DEPTH_REQUESTS = 15
"""Sequential requests per page in the depth check; the median is reported."""


def multiply_documents(db: Database, org_id: int, target: int) -> tuple[int, float]:
    """Copy the organisation's documents until it holds at least `target`; returns (count, seconds)."""
    started = time.perf_counter()
    d = t.documents.c
    with db.read() as conn:
        base = int(conn.execute(select(func.count()).where(d.organization_id == org_id)).scalar_one())
        stride = int(conn.execute(select(func.max(d.id))).scalar_one())
        seq_stride = int(conn.execute(select(func.max(d.sequence))).scalar_one() or 0) + 1
    copies = max(0, -(-target // base) - 1)
    if copies == 0:
        return base, 0.0
    keys = "WITH RECURSIVE ks(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM ks WHERE k < :copies) "
    bound = {"copies": copies, "org": org_id, "stride": stride, "seq": seq_stride}
    shifted = {
        "id": "documents.id + ks.k * :stride",
        "sequence": "documents.sequence + ks.k * :seq",
        "number": "documents.number || '-' || CAST(ks.k AS VARCHAR(12))",
    }
    cols = [c.name for c in t.documents.c]
    exprs = [shifted.get(c, f"documents.{c}") for c in cols]
    with db.write() as conn:
        conn.execute(
            text(
                f"{keys}INSERT INTO documents ({', '.join(cols)}) SELECT {', '.join(exprs)} "
                "FROM documents, ks WHERE documents.organization_id = :org AND documents.id <= :stride"
            ),
            bound,
        )
        for child in (t.document_lines, t.document_taxes):
            ccols = [c.name for c in child.c if c.name != "id"]
            cexprs = [f"x.{c} + ks.k * :stride" if c == "document_id" else f"x.{c}" for c in ccols]
            conn.execute(
                text(
                    f"{keys}INSERT INTO {child.name} ({', '.join(ccols)}) SELECT {', '.join(cexprs)} "
                    f"FROM {child.name} x, ks WHERE x.organization_id = :org AND x.document_id <= :stride"
                ),
                bound,
            )
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence('documents', 'id'), max(id)) FROM documents")
            )
    _analyze(db)
    with db.read() as conn:
        total = int(conn.execute(select(func.count()).where(d.organization_id == org_id)).scalar_one())
    return total, time.perf_counter() - started


def _analyze(db: Database) -> None:
    """Statistics, and on PostgreSQL the visibility map index-only scans need (what autovacuum does)."""
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("VACUUM ANALYZE documents, document_lines, document_taxes"))
        else:
            conn.execute(text("ANALYZE"))
            conn.commit()


@dataclass(frozen=True, slots=True)
class Depth:
    list_label: str
    page_label: str
    path: str
    median_ms: float


def depth_paths(db: Database, org_id: int) -> list[tuple[str, str, str]]:
    """(list, page, path) of page 1, page 10,000 and the last page of every list."""
    d = t.documents.c
    with db.read() as conn:
        total = int(conn.execute(select(func.count()).where(d.organization_id == org_id)).scalar_one())

        def id_at(position: int) -> int:
            query = (
                select(d.id)
                .where(d.organization_id == org_id)
                .order_by(d.id.desc())
                .offset(min(position, total - 1))
                .limit(1)
            )
            return int(conn.execute(query).scalar_one())

        pages = -(-total // 20), -(-total // 30)
        deep = min(DEEP_PAGE, max(1, pages[1] // 2))  # page 10,000 when every list has one
        deep20, last20 = id_at(deep * 20 - 21), id_at(total - 21)
    label = f"page {deep:,}"
    return [
        ("native list of 20", "page 1", "/api/v1/documents?limit=20"),
        ("native list of 20", label, f"/api/v1/documents?limit=20&starting_after={deep20}"),
        ("native list of 20", "last page", f"/api/v1/documents?limit=20&starting_after={last20}"),
        ("seed 000 (DRF, 20)", "page 1", "/v1/billing/invoices/?pageSize=20"),
        ("seed 000 (DRF, 20)", label, f"/v1/billing/invoices/?pageSize=20&page={deep}"),
        ("seed 000 (DRF, 20)", "last page", f"/v1/billing/invoices/?pageSize=20&page={pages[0]}"),
        ("seed 001 (cursor, 20)", "page 1", "/invoices?limit=20"),
        ("seed 001 (cursor, 20)", label, f"/invoices?limit=20&startingAfter={deep20}"),
        ("seed 001 (cursor, 20)", "last page", f"/invoices?limit=20&startingAfter={last20}"),
        ("seed 002 (Laravel, 30)", "page 1", "/v1/invoices?page=1"),
        ("seed 002 (Laravel, 30)", label, f"/v1/invoices?page={deep}"),
        ("seed 002 (Laravel, 30)", "last page", f"/v1/invoices?page={pages[1]}"),
    ]


def depth_check(
    base: str, secret: str, paths: list[tuple[str, str, str]], say: Callable[[str], None]
) -> list[Depth]:
    """Median latency of DEPTH_REQUESTS sequential GETs per page (after one warm-up GET each)."""
    found: list[Depth] = []
    for list_label, page_label, path in paths:
        times: list[float] = []
        for i in range(DEPTH_REQUESTS + 1):
            request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {secret}"})
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET {path}: HTTP {response.status}")
            if i:
                times.append((time.perf_counter() - started) * 1000)
        found.append(Depth(list_label, page_label, path, statistics.median(times)))
    for list_label in dict.fromkeys(x.list_label for x in found):
        row = [x for x in found if x.list_label == list_label]
        first = row[0].median_ms
        figures = ", ".join(f"{x.page_label} {x.median_ms:.1f} ms ({x.median_ms / first:.2f}x)" for x in row)
        worst = max(x.median_ms for x in row) / first
        say(f"    depth {list_label}: {figures}: {'within 2x' if worst <= 2 else 'NOT within 2x'}")
    return found
