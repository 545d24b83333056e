"""Legal document numbers: a series format applied to a gapless sequence value at issue.

The sequence comes from a counter row locked inside the issuing transaction (adapters/db), never
from a database sequence, which leaves gaps. This module only validates and applies formats.
Placeholders: `{seq}` or `{seq:0N}` (zero-padded to N digits), `{YYYY}`, `{YY}`, `{MM}` (the issue
date in the issuer's time zone). Everything else is literal text.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

from fiscus.domain.errors import InvalidFieldError

_TOKEN: Final = re.compile(r"\{(seq(?::0([0-9]{1,2}))?|YYYY|YY|MM)\}")
_ANY_BRACE: Final = re.compile(r"[{}]")


def validate_format(pattern: str, field: str = "number_format") -> str:
    """A format must contain exactly one `{seq}` and no other braces than known placeholders."""
    if not pattern or len(pattern) > 64:
        raise InvalidFieldError(field, "must be 1 to 64 characters")
    seqs = [m for m in _TOKEN.finditer(pattern) if m.group(1).startswith("seq")]
    if len(seqs) != 1:
        raise InvalidFieldError(field, "must contain exactly one {seq} or {seq:0N} placeholder")
    if _ANY_BRACE.search(_TOKEN.sub("", pattern)):
        raise InvalidFieldError(field, "unknown placeholder; use {seq}, {seq:0N}, {YYYY}, {YY}, {MM}")
    return pattern


def format_number(pattern: str, seq: int, issued_on: date) -> str:
    """The printed number of the `seq`-th document of a series issued on `issued_on`."""
    if seq < 1:
        raise ValueError("sequence values start at 1")

    def repl(match: re.Match[str]) -> str:
        token = match.group(1)
        if token == "YYYY":
            return f"{issued_on.year:04d}"
        if token == "YY":
            return f"{issued_on.year % 100:02d}"
        if token == "MM":
            return f"{issued_on.month:02d}"
        width = int(match.group(2) or 0)
        return str(seq).zfill(width)

    return _TOKEN.sub(repl, pattern)
