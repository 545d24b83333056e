"""PDF rendering with Typst: one compiler per process, data only as JSON, fonts only from our folder.

The compiler is built once (font discovery and template parsing are the expensive part) and reused
for every document; a rendering then costs a few milliseconds. The template's root is its own
folder, so `read()`/`image()` cannot reach anything else, and no package import exists that could
touch the network.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Final

import typst

from fiscus.adapters.pdf.glyphs import coverage, drawable_model, fonts_in

HERE: Final = Path(__file__).resolve().parent
TEMPLATES: Final = HERE / "templates"
FONTS: Final = HERE / "fonts"
TEMPLATE: Final = TEMPLATES / "document.typ"


class PdfRenderer:
    """Renders document view models to PDF bytes; safe to share between threads of one process."""

    def __init__(self, template: Path = TEMPLATE) -> None:
        self._template = template
        self._compiler = typst.Compiler(
            template,
            root=template.parent,
            font_paths=[FONTS],
            ignore_system_fonts=True,
            package_path=template.parent,
            package_cache_path=template.parent,
        )
        self._covered = coverage(fonts_in(FONTS))
        self._lock = threading.Lock()  # the compiler keeps per-call inputs; one compile at a time

    def render(self, view_model: dict[str, Any], *, pdf_a: bool = False) -> bytes:
        """The PDF of `view_model` (PDF/A-3b when `pdf_a`, for Factur-X). The same model gives the
        same bytes: the template pins the metadata date to the document's own date. Every text goes
        through the one glyph fallback (`glyphs.drawable`): what no embedded font draws shows "?"."""
        return self._compile(drawable_model(view_model, self._covered), pdf_a)

    def _compile(self, model: Any, pdf_a: bool) -> bytes:
        payload = json.dumps(model, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        with self._lock:
            out = self._compiler.compile(
                format="pdf",
                sys_inputs={"data": payload},
                pdf_standards=["a-3b"] if pdf_a else [],
            )
        if not isinstance(out, bytes):
            raise TypeError("typst returned no single PDF")
        return out


_shared: PdfRenderer | None = None
_shared_lock = threading.Lock()


def shared_renderer() -> PdfRenderer:
    """The process's renderer, created on first use (workers and the API share this one)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = PdfRenderer()
        return _shared
