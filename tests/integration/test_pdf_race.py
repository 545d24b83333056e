"""Two renderers of the same document: the first to record its PDF owns the file; the loser never
overwrites it (each rendering is written under its own name, and the loser's is removed)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from fiscus.adapters.db.engine import Database
from fiscus.adapters.pdf.renderer import PdfRenderer
from fiscus.domain.clock import FixedClock
from fiscus.domain.documents import DocumentType
from fiscus.services.orders import bill_order_now, create_order
from fiscus.services.rendering import _render_inputs, _store, ensure_pdf
from fiscus.services.subscriptions import ItemSpec
from tests.builders import make_customer, make_tenant


class _Stamped:
    """The real renderer, with a trailing PDF comment that makes each rendering's bytes differ (as two
    renderings of the same document in different seconds may)."""

    def __init__(self, stamp: str) -> None:
        self._real = PdfRenderer()
        self._stamp = stamp.encode()

    def render(self, view_model: dict[str, Any], *, pdf_a: bool = False) -> bytes:
        return self._real.render(view_model, pdf_a=pdf_a) + b"\n%" + self._stamp + b"\n"


def test_the_loser_of_a_render_race_keeps_the_winners_bytes(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    bg = make_tenant(db, clock, "bg", slug="race", order_document=DocumentType.INVOICE)
    cid = make_customer(db, clock, bg, 1)
    doc_id = bill_order_now(
        db, clock, bg.org_id, create_order(db, clock, bg.org_id, cid, [ItemSpec(bg.one_off, 1)])
    )
    [(view, vm, pdf_a)] = _render_inputs(db, bg.org_id, [doc_id])

    first = _store(db, clock, _Stamped("first"), tmp_path, view, vm, pdf_a)
    second = _store(db, clock, _Stamped("second"), tmp_path, view, vm, pdf_a)

    assert second == first
    assert hashlib.sha256(first.path.read_bytes()).hexdigest() == first.sha256
    assert first.path.read_bytes().endswith(b"%first\n")
    assert [p.name for p in (tmp_path / str(bg.org_id)).iterdir()] == [first.path.name]
    assert ensure_pdf(db, clock, _Stamped("third"), tmp_path, bg.org_id, doc_id) == first.path


def test_a_recorded_file_lost_from_disk_is_rendered_again_at_its_recorded_path(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    bg = make_tenant(db, clock, "bg", slug="lost", order_document=DocumentType.INVOICE)
    cid = make_customer(db, clock, bg, 1)
    doc_id = bill_order_now(
        db, clock, bg.org_id, create_order(db, clock, bg.org_id, cid, [ItemSpec(bg.one_off, 1)])
    )
    recorded = ensure_pdf(db, clock, PdfRenderer(), tmp_path, bg.org_id, doc_id)
    original = recorded.read_bytes()
    recorded.unlink()

    again = ensure_pdf(db, clock, PdfRenderer(), tmp_path, bg.org_id, doc_id)

    assert again == recorded
    assert again.read_bytes() == original
    assert [p.name for p in recorded.parent.iterdir()] == [recorded.name]
