"""Labels of the web surfaces in the four languages documents are printed in (en, bg, ru, kk). A page
shows a document the way its PDF does (`fiscus.documents.labels`) plus the surface's own texts; a
missing language or key falls back to English, so an unusual locale still gets a complete page."""

from __future__ import annotations

from collections.abc import Mapping

from fiscus.documents.labels import LANGUAGES, labels_for

__all__ = ["LANGUAGES", "language_of", "surface_labels"]


def language_of(locale: str | None) -> str:
    """The language part of a locale (`bg-BG`, `bg_BG` → `bg`); English when there is none."""
    return str(locale or "en").replace("-", "_").split("_")[0]


def surface_labels(own: Mapping[str, Mapping[str, str]], language: str) -> dict[str, str]:
    """The document's labels plus a surface's own texts (`own`, keyed by language), in `language`."""
    return {**labels_for(language), **own["en"], **own.get(language, {})}
