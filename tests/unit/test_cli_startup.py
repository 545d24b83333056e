"""The CLI loads the database stack only for the command that needs it: every command, every CLI
process a test starts and every `fiscus gateway` process pays for what `import fiscus.cli` loads."""

from __future__ import annotations

import subprocess
import sys

from fiscus import cli_usage
from fiscus.services import usage_ingest

HEAVY = ("sqlalchemy", "alembic", "pydantic_settings", "fastapi", "fiscus.bootstrap", "fiscus.services")


def test_importing_the_cli_loads_no_database_stack() -> None:
    code = f"import sys, fiscus.cli; print([m for m in sys.modules if m.startswith({HEAVY!r})])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_the_import_batch_is_the_services_one() -> None:
    assert cli_usage.IMPORT_BATCH == usage_ingest.IMPORT_BATCH
