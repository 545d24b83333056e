"""Hypothesis example counts: modest in `make test` (CI budget), the full counts with
FISCUS_FULL_PROPERTIES=1 (by hand, or a nightly run)."""

from __future__ import annotations

import os


def examples(full: int, suite: int) -> int:
    """`suite` examples in the suite, `full` when FISCUS_FULL_PROPERTIES is set."""
    return full if os.environ.get("FISCUS_FULL_PROPERTIES") else suite
