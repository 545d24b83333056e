"""PDF rendering with Typst: one compiler per process, data only as JSON, fonts only from our folder.

The compiler is built once (font discovery and template parsing are the expensive part) and reused
for every document; a rendering then costs a few milliseconds. The template's root is its own
folder, so `read()`/`image()` cannot reach anything else, and no package import exists that could
touch the network.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any, Final

import typst

HERE: Final = Path(__file__).resolve().parent
TEMPLATES: Final = HERE / "templates"
FONTS: Final = HERE / "fonts"
TEMPLATE: Final = TEMPLATES / "document.typ"
_MISSING_GLYPHS: Final = re.compile(r'the text `?"((?:[^"\\]|\\.)*)"`? could not be displayed with font')
_ESCAPE: Final = re.compile(r"\\u\{([0-9a-fA-F]{1,6})\}|\\(.)")
MAX_GLYPH_RETRIES: Final = 8


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
        self._lock = threading.Lock()  # the compiler keeps per-call inputs; one compile at a time

    def render(self, view_model: dict[str, Any], *, pdf_a: bool = False) -> bytes:
        """The PDF of `view_model` (PDF/A-3b when `pdf_a`, for Factur-X). The same model gives the
        same bytes: the template pins the metadata date to the document's own date."""
        model: Any = view_model
        for _ in range(MAX_GLYPH_RETRIES):
            try:
                return self._compile(model, pdf_a)
            except typst.TypstError as exc:
                missing = _missing_glyphs(str(exc)) if pdf_a else frozenset()
                if not missing:
                    raise
                # PDF/A forbids text no embedded font can draw (characters outside DejaVu's
                # coverage, typed by a user): the PDF shows "?" there; the data keeps the text.
                model = _replace(model, missing)
        return self._compile(model, pdf_a)

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


def _missing_glyphs(message: str) -> frozenset[str]:
    """The non-ASCII characters typst names in its "could not be displayed with font" errors (ASCII
    is always covered, so a run's context never loses its letters)."""
    found: set[str] = set()
    for text in _MISSING_GLYPHS.findall(message):
        unescaped = _ESCAPE.sub(lambda m: chr(int(m[1], 16)) if m[1] else m[2], text)
        found.update(ch for ch in unescaped if ord(ch) > 0x7F)
    return frozenset(found)


def _replace(value: Any, missing: frozenset[str]) -> Any:
    """`value` with every missing character in its strings (keys too) shown as "?"."""
    if isinstance(value, str):
        return "".join("?" if ch in missing else ch for ch in value)
    if isinstance(value, dict):
        return {_replace(k, missing): _replace(v, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, missing) for v in value]
    return value


_shared: PdfRenderer | None = None
_shared_lock = threading.Lock()


def shared_renderer() -> PdfRenderer:
    """The process's renderer, created on first use (workers and the API share this one)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = PdfRenderer()
        return _shared
