"""Rendering issued documents to PDF once, storing the bytes and recording their SHA-256.

Rendering happens outside any transaction (it takes milliseconds, a lock held that long would
serialise issuing); the `document_files` row is then inserted in its own short transaction, with its
audit row and outbox event. UNIQUE(document_id, kind) settles a race between two renderers: each
writes its bytes under a name of their own (`{id}-{sha256 prefix}.pdf`), so a loser never overwrites
the winner's file; the loser deletes its own file and answers with the recorded one.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from sqlalchemy import Connection, exists, insert, select
from sqlalchemy.exc import IntegrityError

from fiscus.adapters.db import tables as t
from fiscus.adapters.db.documents import append_audit, append_outbox, audit_row, outbox_row
from fiscus.adapters.db.engine import Database
from fiscus.documents.facturx import build_cii_xml, embed_facturx
from fiscus.documents.view_model import TEMPLATE_VERSION, build_view_model
from fiscus.domain.clock import Clock
from fiscus.domain.documents import DocumentStatus, DocumentType
from fiscus.domain.errors import NotFoundError
from fiscus.queries.documents import DocumentView, load_documents
from fiscus.queries.scope import Scope
from fiscus.services.common import get_scoped
from fiscus.services.payment_links import has_hosted_page, link_secret, payment_url

PDF: Final = "pdf"
DOCUMENTS_DIR_ENV: Final = "FISCUS_DOCUMENTS_DIR"


DocumentLink = Callable[[int, int], "str | None"]
"""(organisation id, document id) → the document's hosted page URL, printed with its QR code."""


def document_links(db: Database, clock: Clock, base_url: str, secret_key: str | None) -> DocumentLink:
    """Hosted page links on `base_url` (the instance's public URL), signed as the API signs them, so
    the PDF's link is the document's `hosted_url`."""
    secret = link_secret(db, clock, secret_key)

    def link(org_id: int, document_id: int) -> str:
        return payment_url(base_url, secret, org_id, document_id)

    return link


def frozen_logo(conn: Connection, sha256: str | None) -> tuple[str, bytes] | None:
    """The logo bytes a document froze by hash (content-addressed: kept when the logo changes)."""
    if not sha256:
        return None
    lg = t.organization_logos.c
    row = conn.execute(select(lg.content_type, lg.data).where(lg.sha256 == sha256).limit(1)).first()
    return None if row is None else (str(row.content_type), bytes(row.data))


def document_number(conn: Connection, org_id: int, document_id: int) -> str | None:
    d = t.documents.c
    return conn.execute(
        select(d.number).where(d.organization_id == org_id, d.id == document_id)
    ).scalar_one_or_none()


def pdf_filename(number: str | None, document_id: int) -> str:
    """`<number>.pdf` for the download (`INV-2026-000042.pdf`), characters a file system or a header
    would trip on replaced; the id only for a document without a number."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", number or "").strip("-.") or str(document_id)
    return f"{stem}.pdf"


class Renderer(Protocol):
    def render(self, view_model: dict[str, Any], *, pdf_a: bool = False) -> bytes: ...


def documents_dir() -> Path:
    """Where rendered files live (until this moves to Settings): $FISCUS_DOCUMENTS_DIR or ./var/documents."""
    return Path(os.environ.get(DOCUMENTS_DIR_ENV) or "./var/documents")


@dataclass(frozen=True, slots=True)
class RenderedFile:
    path: Path
    sha256: str
    size: int


def _related_numbers(conn: Connection, doc: DocumentView) -> dict[str, str | None]:
    wanted = {
        k: v for k, v in (("converted", doc.converted_from_id), ("corrected", doc.corrected_document_id)) if v
    }
    numbers: dict[int, str | None] = {}
    if wanted:
        d = t.documents.c
        query = select(d.id, d.number).where(
            d.organization_id == doc.organization_id, d.id.in_(list(wanted.values()))
        )
        numbers = {r.id: r.number for r in conn.execute(query)}
    return {
        "converted_from_number": numbers.get(doc.converted_from_id or 0),
        "corrected_number": numbers.get(doc.corrected_document_id or 0),
    }


def _render_inputs(
    db: Database, org_id: int, ids: list[int], links: DocumentLink | None = None
) -> list[tuple[DocumentView, dict[str, Any], bool]]:
    """The views of the documents with their view models, read in one short read transaction."""
    with db.read() as conn:
        docs = load_documents(conn, Scope(org_id), ids)
        facturx = bool(
            conn.execute(
                select(t.organizations.c.facturx_enabled).where(t.organizations.c.id == org_id)
            ).scalar_one()
        )
        out = []
        for doc in docs:
            numbers = _related_numbers(conn, doc)
            hosted = (
                links(doc.organization_id, doc.id)
                if links is not None and has_hosted_page(doc.type, doc.status)
                else None
            )
            logo = frozen_logo(conn, doc.seller.get("logo_sha256"))
            vm = build_view_model(doc, **numbers, hosted_url=hosted, logo=logo)
            vm["corrected_number"] = numbers["corrected_number"]  # also for the e-invoice's reference
            out.append((doc, vm, facturx))
        return out


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _store(
    db: Database,
    clock: Clock,
    renderer: Renderer,
    store_dir: Path,
    doc: DocumentView,
    vm: dict[str, Any],
    pdf_a: bool,
) -> RenderedFile:
    data = renderer.render(vm, pdf_a=pdf_a)
    if pdf_a and doc.type is not DocumentType.PROFORMA:
        xml = build_cii_xml(doc, corrected_number=vm.get("corrected_number"))
        data = embed_facturx(data, xml, at=doc.issued_at)
    digest = hashlib.sha256(data).hexdigest()
    path = store_dir / str(doc.organization_id) / f"{doc.id}-{digest[:16]}.pdf"
    _write_atomically(path, data)
    now = clock.now()
    row = {
        "organization_id": doc.organization_id,
        "document_id": doc.id,
        "kind": PDF,
        "sha256": digest,
        "path": str(path),
        "size": len(data),
        "template_version": TEMPLATE_VERSION,
        "rendered_at": now,
    }
    after = {"kind": PDF, "sha256": digest, "size": len(data), "template_version": TEMPLATE_VERSION}
    try:
        with db.write() as conn:
            conn.execute(insert(t.document_files).values(**row))
            append_audit(
                conn,
                [
                    audit_row(
                        doc.organization_id, "document", doc.id, "pdf_rendered", "worker", now, None, after
                    )
                ],
            )
            payload = {"id": doc.id, "type": doc.type.value, "number": doc.number, **after}
            append_outbox(
                conn,
                [outbox_row(doc.organization_id, "document.pdf_rendered", "document", doc.id, now, payload)],
            )
    except IntegrityError:
        return _recorded_instead(db, doc, path, data)
    return RenderedFile(path, digest, len(data))


def _recorded_instead(db: Database, doc: DocumentView, ours: Path, data: bytes) -> RenderedFile:
    """Another renderer recorded this document's PDF first: its file is the document's; ours goes. If
    the recorded file is gone from disk (a lost volume), our bytes take its place: the template and data
    are the same, and the recorded SHA-256 says whether the bytes are too."""
    f = t.document_files.c
    with db.read() as conn:
        winner = conn.execute(
            select(f.path, f.sha256, f.size).where(f.document_id == doc.id, f.kind == PDF)
        ).one()
    recorded = Path(winner.path)
    if recorded != ours:
        if recorded.is_file():
            ours.unlink(missing_ok=True)
        else:
            recorded.parent.mkdir(parents=True, exist_ok=True)
            os.replace(ours, recorded)
    return RenderedFile(recorded, str(winner.sha256), int(winner.size))


def render_pending_documents(
    db: Database,
    clock: Clock,
    renderer: Renderer,
    store_dir: Path,
    *,
    limit: int = 100,
    links: DocumentLink | None = None,
) -> int:
    """Render up to `limit` issued documents that have no PDF yet, newest first (a fresh invoice is
    rendered at once, before a backlog such as the demo's year); returns how many were rendered.
    Called by the worker loop after issuing, never inside the issuing transaction."""
    d = t.documents.c
    f = t.document_files.c
    has_pdf = exists().where(f.document_id == d.id, f.kind == PDF)
    with db.read() as conn:
        candidates = conn.execute(
            select(d.organization_id, d.id)
            .where(d.status != DocumentStatus.DRAFT.value, ~has_pdf)
            .order_by(d.id.desc())
            .limit(limit)
        ).all()
    by_org: dict[int, list[int]] = {}
    for org_id, doc_id in candidates:
        by_org.setdefault(int(org_id), []).append(int(doc_id))
    rendered = 0
    for org_id, ids in by_org.items():
        for doc, vm, pdf_a in _render_inputs(db, org_id, ids, links):
            _store(db, clock, renderer, store_dir, doc, vm, pdf_a)
            rendered += 1
    return rendered


def draft_preview(
    db: Database, renderer: Renderer, org_id: int, document_id: int, *, links: DocumentLink | None = None
) -> bytes | None:
    """A draft's PDF, rendered on each request and never stored (a draft changes until it is issued, and
    is no legal document: the PDF says "Draft" and carries no number); None for an issued document (its
    PDF is `ensure_pdf`'s). Another organisation's document is NotFoundError."""
    with db.read() as conn:
        doc = get_scoped(conn, t.documents, org_id, document_id)
    if doc["status"] != DocumentStatus.DRAFT.value:
        return None
    [(_, vm, _)] = _render_inputs(db, org_id, [document_id], links)
    return renderer.render(vm)


def ensure_pdf(
    db: Database,
    clock: Clock,
    renderer: Renderer,
    store_dir: Path,
    org_id: int,
    document_id: int,
    *,
    links: DocumentLink | None = None,
) -> Path:
    """The stored PDF of an issued document of `org_id`, rendered now if the worker has not yet.

    Another organisation's document is NotFoundError; a draft has no PDF (NotFoundError too: it is
    not a legal document yet). A recorded file missing from disk is rendered again: the same bytes.
    """
    with db.read() as conn:
        doc = get_scoped(conn, t.documents, org_id, document_id)
        if doc["status"] == DocumentStatus.DRAFT.value:
            raise NotFoundError("document", document_id)
        f = t.document_files.c
        stored = conn.execute(
            select(f.path).where(f.document_id == document_id, f.kind == PDF, f.organization_id == org_id)
        ).scalar_one_or_none()
    if stored is not None and Path(stored).is_file():
        return Path(stored)
    [(view, vm, pdf_a)] = _render_inputs(db, org_id, [document_id], links)
    return _store(db, clock, renderer, store_dir, view, vm, pdf_a).path
