"""What the embedded fonts can draw, read from their own `cmap` tables, and the one fallback that shows
"?" for everything else.

PDF/A (Factur-X) forbids text no embedded font draws, and typst names only the base letter of a
cluster it cannot shape (`a` for `a` + U+20DD), so a fallback that reacts to its error messages
misses cases. Every string of a view model passes `drawable` before it reaches the typst source:
characters outside the fonts' coverage, unassigned and private-use code points, surrogates and control
characters become "?" (newlines and tabs stay, as typst takes them as white space). The stored data
keeps the text as typed; only the picture of it changes."""

from __future__ import annotations

import struct
import unicodedata
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any, Final

KEPT_CONTROLS: Final = frozenset("\n\t")
REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cs", "Co", "Cn"})
IMAGE_KEYS: Final = frozenset({"logo", "qr"})
"""View-model keys holding images (SVG text, PNG bytes), not text to draw: passed through untouched."""


def _cmap_offset(data: bytes) -> int:
    (count,) = struct.unpack_from(">H", data, 4)
    for i in range(count):
        tag, _checksum, offset, _length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
        if tag == b"cmap":
            return int(offset)
    raise ValueError("font has no cmap table")


def _format12(data: bytes, at: int) -> set[int]:
    (groups,) = struct.unpack_from(">I", data, at + 12)
    found: set[int] = set()
    for g in range(groups):
        start, end, _glyph = struct.unpack_from(">III", data, at + 16 + 12 * g)
        found.update(range(start, end + 1))
    return found


def _format4(data: bytes, at: int) -> set[int]:
    (seg_x2,) = struct.unpack_from(">H", data, at + 6)
    seg = seg_x2 // 2
    ends = struct.unpack_from(f">{seg}H", data, at + 14)
    starts = struct.unpack_from(f">{seg}H", data, at + 16 + seg_x2)
    deltas = struct.unpack_from(f">{seg}h", data, at + 16 + 2 * seg_x2)
    ranges_at = at + 16 + 3 * seg_x2
    offsets = struct.unpack_from(f">{seg}H", data, ranges_at)
    found: set[int] = set()
    for i in range(seg):
        for code in range(starts[i], min(ends[i], 0xFFFE) + 1):
            if offsets[i] == 0:
                glyph = (code + deltas[i]) & 0xFFFF
            else:
                (glyph,) = struct.unpack_from(
                    ">H", data, ranges_at + 2 * i + offsets[i] + 2 * (code - starts[i])
                )
                glyph = (glyph + deltas[i]) & 0xFFFF if glyph else 0
            if glyph:
                found.add(code)
    return found


def font_coverage(path: Path) -> frozenset[int]:
    """The code points a TrueType/OpenType font maps to a glyph (its Unicode cmap subtable)."""
    data = path.read_bytes()
    cmap = _cmap_offset(data)
    (count,) = struct.unpack_from(">H", data, cmap + 2)
    subtables: dict[tuple[int, int], int] = {}
    for i in range(count):
        platform, encoding, offset = struct.unpack_from(">HHI", data, cmap + 4 + 8 * i)
        subtables[(platform, encoding)] = cmap + offset
    for key in ((3, 10), (0, 4), (0, 6), (3, 1), (0, 3)):
        at = subtables.get(key)
        if at is None:
            continue
        (fmt,) = struct.unpack_from(">H", data, at)
        if fmt == 12:
            return frozenset(_format12(data, at))
        if fmt == 4:
            return frozenset(_format4(data, at))
    raise ValueError(f"{path.name}: no Unicode cmap subtable of format 4 or 12")


@cache
def coverage(fonts: tuple[Path, ...]) -> frozenset[int]:
    """What every one of `fonts` draws (text may be set in any of them: regular, bold)."""
    sets = [font_coverage(p) for p in fonts]
    return frozenset.intersection(*sets)


def _drawable_char(ch: str, covered: frozenset[int]) -> bool:
    if ch in KEPT_CONTROLS:
        return True
    return ord(ch) in covered and unicodedata.category(ch) not in REFUSED_CATEGORIES


def drawable(text: str, covered: frozenset[int]) -> str:
    """`text` with every character the fonts cannot draw (or PDF/A cannot carry) shown as "?"."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(ch if _drawable_char(ch, covered) else "?" for ch in text)


def drawable_model(value: Any, covered: frozenset[int]) -> Any:
    """Every string of a view model (dict keys too) through `drawable`; images pass untouched."""
    if isinstance(value, str):
        return drawable(value, covered)
    if isinstance(value, dict):
        return {
            drawable(k, covered): (v if k in IMAGE_KEYS else drawable_model(v, covered))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [drawable_model(v, covered) for v in value]
    return value


def fonts_in(folder: Path, suffixes: Iterable[str] = (".ttf", ".otf")) -> tuple[Path, ...]:
    return tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes))
