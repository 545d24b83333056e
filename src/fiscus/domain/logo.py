"""An organisation's logo: a PNG checked by signature and dimensions, or an SVG rebuilt from a whitelist.

A logo ends up in PDFs and on the hosted payment page that customers open, so an SVG must never carry
script: it is parsed with the standard library's expat with any DOCTYPE refused (so no entity, internal
or external, is ever expanded), and a new tree is built holding only whitelisted SVG elements and
presentation attributes. Links may only point inside the document (`#id`). What cannot be kept safely is
dropped and reported; what cannot be parsed is refused with the reason.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass, field
from typing import Final
from xml.etree import ElementTree as ET
from xml.parsers import expat

from fiscus.domain.errors import InvalidFieldError

MAX_LOGO_BYTES: Final = 512 * 1024
MAX_PNG_SIDE: Final = 4096
PNG: Final = "image/png"
SVG: Final = "image/svg+xml"
_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
SVG_NS: Final = "http://www.w3.org/2000/svg"
XLINK_NS: Final = "http://www.w3.org/1999/xlink"

ALLOWED_ELEMENTS: Final = frozenset(
    {
        "svg", "g", "defs", "symbol", "use", "title", "desc", "path", "rect", "circle", "ellipse",
        "line", "polyline", "polygon", "text", "tspan", "linearGradient", "radialGradient", "stop",
        "clipPath", "mask", "pattern",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: Final = frozenset(
    {
        "id", "class", "viewBox", "width", "height", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy",
        "r", "rx", "ry", "d", "points", "transform", "fill", "fill-opacity", "fill-rule", "stroke",
        "stroke-width", "stroke-opacity", "stroke-linecap", "stroke-linejoin", "stroke-miterlimit",
        "stroke-dasharray", "stroke-dashoffset", "opacity", "clip-path", "clip-rule", "mask",
        "offset", "stop-color", "stop-opacity", "gradientUnits", "gradientTransform", "spreadMethod",
        "fx", "fy", "fr", "preserveAspectRatio", "font-family", "font-size", "font-weight",
        "font-style", "text-anchor", "dominant-baseline", "letter-spacing", "dx", "dy",
        "patternUnits", "patternTransform", "clipPathUnits", "maskUnits", "maskContentUnits",
        "version", "style", "href", "visibility", "display", "color",
    }
)  # fmt: skip
_URL: Final = re.compile(r"url\s*\(\s*['\"]?\s*([^)'\"\s]*)", re.IGNORECASE)
_STYLE_DANGER: Final = re.compile(r"@import|expression\s*\(|javascript:|behavior\s*:|-moz-binding", re.I)


@dataclass(frozen=True, slots=True)
class Logo:
    """A logo ready to store: sanitised bytes, their type, size and hash (documents freeze the hash)."""

    content_type: str
    data: bytes
    width: int | None
    height: int | None
    removed: tuple[str, ...] = field(default=())

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def accept_logo(data: bytes, declared_type: str | None = None, field_name: str = "logo") -> Logo:
    """Check a PNG, or sanitise an SVG; the type comes from the content, never from the name."""
    if not data:
        raise InvalidFieldError(field_name, "is empty")
    if len(data) > MAX_LOGO_BYTES:
        raise InvalidFieldError(field_name, f"is {len(data)} bytes; at most {MAX_LOGO_BYTES} (512 kB)")
    if data.startswith(_PNG_SIGNATURE):
        return _png(data, field_name)
    head = data[:1024].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype")) or declared_type == SVG:
        return sanitize_svg(data, field_name)
    raise InvalidFieldError(field_name, "must be a PNG or an SVG image")


def _png(data: bytes, field_name: str) -> Logo:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise InvalidFieldError(field_name, "is not a valid PNG (no IHDR header)")
    width, height = struct.unpack(">II", data[16:24])
    if not (1 <= width <= MAX_PNG_SIDE and 1 <= height <= MAX_PNG_SIDE):
        raise InvalidFieldError(
            field_name, f"is {width}×{height} pixels; each side must be 1 to {MAX_PNG_SIDE}"
        )
    if not data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82"):
        raise InvalidFieldError(field_name, "is not a complete PNG (no IEND chunk)")
    return Logo(PNG, data, width, height)


def _refuse_doctype(*_args: object) -> int:
    """Any DOCTYPE, entity declaration or external entity reference ends the parse."""
    raise InvalidFieldError("logo", "an SVG with a DOCTYPE or entities is refused (they can expand or fetch)")


def _qualified(name: str) -> str:
    ns, sep, local = name.rpartition(" ")
    return f"{{{ns}}}{local}" if sep else name


def _parse(data: bytes, field_name: str) -> ET.Element:
    """Parse with expat directly: namespaces resolved, any DOCTYPE (hence any entity) refused."""
    builder = ET.TreeBuilder()
    raw = expat.ParserCreate(namespace_separator=" ")
    raw.StartDoctypeDeclHandler = _refuse_doctype
    raw.EntityDeclHandler = _refuse_doctype
    raw.ExternalEntityRefHandler = _refuse_doctype
    raw.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    raw.StartElementHandler = lambda name, attrs: builder.start(
        _qualified(name), {_qualified(k): v for k, v in attrs.items()}
    )
    raw.EndElementHandler = lambda name: builder.end(_qualified(name))
    raw.CharacterDataHandler = builder.data
    try:
        raw.Parse(data, True)
        return builder.close()
    except InvalidFieldError as exc:
        raise InvalidFieldError(field_name, str(exc).split(": ", 1)[-1]) from None
    except (expat.ExpatError, AssertionError) as exc:
        raise InvalidFieldError(field_name, f"is not well-formed SVG ({exc})") from None


def _local(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def _safe_link(value: str) -> bool:
    return value.strip().startswith("#") and len(value.strip()) > 1


def _clean_style(value: str) -> str | None:
    if _STYLE_DANGER.search(value):
        return None
    if any(not _safe_link(u) for u in _URL.findall(value)):
        return None
    return value


def _copy(src: ET.Element, removed: list[str], path: str) -> ET.Element | None:
    ns, name = _local(src.tag)
    if ns not in (SVG_NS, "") or name not in ALLOWED_ELEMENTS:
        removed.append(f"element <{name}> at {path}")
        return None
    out = ET.Element(f"{{{SVG_NS}}}{name}")
    for key, value in src.attrib.items():
        ans, aname = _local(key)
        where = f"{path}/@{aname}"
        if aname.lower().startswith("on"):
            removed.append(f"event handler {where}")
            continue
        if ans == XLINK_NS and aname == "href":
            aname, ans = "href", ""
        if ans or aname not in ALLOWED_ATTRIBUTES:
            removed.append(f"attribute {where}")
            continue
        if aname == "href" and not _safe_link(value):
            removed.append(f"link {where} (only #fragment links are kept)")
            continue
        if aname == "style":
            cleaned = _clean_style(value)
            if cleaned is None:
                removed.append(f"style {where}")
                continue
            value = cleaned
        elif "url(" in value.lower() and any(not _safe_link(u) for u in _URL.findall(value)):
            removed.append(f"external reference {where}")
            continue
        out.set(aname, value)
    out.text = src.text if name in ("text", "tspan", "title", "desc") else None
    for i, child in enumerate(src):
        kept = _copy(child, removed, f"{path}/{_local(child.tag)[1]}[{i}]")
        if kept is not None:
            kept.tail = child.tail if name in ("text", "tspan") else None
            out.append(kept)
    return out


def sanitize_svg(data: bytes, field_name: str = "logo") -> Logo:
    """Rebuild an SVG from its whitelisted parts; refuse it if nothing drawable remains."""
    root = _parse(data, field_name)
    if _local(root.tag) != (SVG_NS, "svg") and _local(root.tag) != ("", "svg"):
        raise InvalidFieldError(field_name, "an SVG's root element must be <svg>")
    removed: list[str] = []
    clean = _copy(root, removed, "svg")
    if clean is None or len(clean) == 0:
        raise InvalidFieldError(field_name, "the SVG has nothing drawable left once sanitised")
    ET.register_namespace("", SVG_NS)
    out = ET.tostring(clean, encoding="utf-8", xml_declaration=True, short_empty_elements=True)
    if len(out) > MAX_LOGO_BYTES:
        raise InvalidFieldError(field_name, f"is more than {MAX_LOGO_BYTES} bytes once sanitised")
    return Logo(SVG, out, _dimension(clean.get("width")), _dimension(clean.get("height")), tuple(removed))


def _dimension(value: str | None) -> int | None:
    match = re.fullmatch(r"\s*(\d{1,5})(?:\.\d+)?(?:px)?\s*", value or "")
    return int(match.group(1)) if match else None
