"""A type model derived from the three seed documents' response examples, and a checker that walks a
response against it.

Each example (`tests/dialects/seeds/*.json`, copied verbatim from the JSON in
`../shared/seeds/*.txt`; a test checks the copies against the originals when they are there) says, for
every field, what the original system shows: a value of some JSON type, or `null`. Every field the
example shows as a value must carry a value of that JSON type on every response (never null), and a
string whose example is a date-time must parse with the example's own format. Fields the seed's schema
text declares nullable (`string<uri> | null`, `null`) are listed in `NULLABLE`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

SEEDS_DIR: Final = Path(__file__).parent / "seeds"
SHARED_SEEDS: Final = Path(__file__).resolve().parents[2].parent / "shared" / "seeds"

DATE_TIME_FORMATS: Final = {
    re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"): "%Y-%m-%dT%H:%M:%SZ",
    re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z"): "%Y-%m-%dT%H:%M:%S.%fZ",
}
"""The date-time shapes the seeds show (seed 000 and 001 `…:56Z`, seed 002 Carbon's `….000000Z`)."""

NULLABLE: Final = {
    "billing": {"$.next", "$.previous"},  # seed 000's schema: `string<uri> | null`
    "vps": {"$.links.prev", "$.links.next"},  # seed 002's schema: `prev null`, `next null`
}

SCHEMA_TYPES: Final = {
    "vps": {"$.data[].amount": "number", "$.data[].amount_with_vat": "number"},
}
"""Where a seed's schema text names a wider type than its example shows (seed 002: `amount number`,
example `15`)."""


@dataclass(frozen=True, slots=True)
class Shape:
    """What the example shows at one place: a JSON type, a date-time format, and nested shapes."""

    kind: str  # "null", "string", "integer", "number", "boolean", "object", "array"
    date_format: str | None = None
    fields: dict[str, Shape] = field(default_factory=dict)
    item: Shape | None = None


def derive(example: Any, types: Mapping[str, str] | None = None, path: str = "$") -> Shape:
    """The shape of an example value; `types` widens the JSON type at some paths (`SCHEMA_TYPES`)."""
    wider = (types or {}).get(path)
    if example is None:
        return Shape("null")
    if isinstance(example, bool):
        return Shape("boolean")
    if isinstance(example, int):
        return Shape(wider or "integer")
    if isinstance(example, float):
        return Shape("number")
    if isinstance(example, str):
        fmt = next((f for pattern, f in DATE_TIME_FORMATS.items() if pattern.fullmatch(example)), None)
        return Shape("string", date_format=fmt)
    if isinstance(example, list):
        return Shape("array", item=derive(example[0], types, f"{path}[]") if example else None)
    if isinstance(example, dict):
        return Shape("object", fields={k: derive(v, types, f"{path}.{k}") for k, v in example.items()})
    raise TypeError(type(example))


def seed_example(name: str) -> Any:
    return json.loads((SEEDS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _type_ok(kind: str, value: Any) -> bool:
    match kind:
        case "string":
            return isinstance(value, str)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "object":
            return isinstance(value, dict)
        case "array":
            return isinstance(value, list)
    return True


def violations(
    shape: Shape, value: Any, path: str = "$", nullable: frozenset[str] = frozenset()
) -> list[str]:
    """Every place where `value` breaks the seed's shape, as `path: problem` (generic paths, `[]` for any
    array element, so that the same fault on many documents counts under one name)."""
    if shape.kind == "null" or path in nullable:
        if value is None:
            return []
        if shape.kind == "null":
            return []
    if value is None:
        return [f"{path}: null where the seed shows {shape.kind}"]
    if not _type_ok(shape.kind, value):
        return [f"{path}: {type(value).__name__} where the seed shows {shape.kind}"]
    out: list[str] = []
    if shape.date_format is not None:
        try:
            datetime.strptime(value, shape.date_format)
        except ValueError:
            out.append(f"{path}: {value!r} does not parse as {shape.date_format}")
    for name, sub in shape.fields.items():
        if name not in value:
            out.append(f"{path}.{name}: missing")
            continue
        out.extend(violations(sub, value[name], f"{path}.{name}", nullable))
    if shape.item is not None:
        for element in value:
            out.extend(violations(shape.item, element, f"{path}[]", nullable))
    return out
