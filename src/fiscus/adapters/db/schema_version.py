"""Whether a database is at this code's schema revision, answered without importing Alembic.

Every command checks this at start-up (`bootstrap.build`); importing Alembic (and the Mako and Pygments
it pulls in) and loading every version file cost ~0.5 s of CPU per command. The version files are read
as text instead; when they do not name exactly one head (a merge in progress), Alembic decides.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import Engine, inspect, text

VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"
_REVISION = re.compile(r"""^revision\s*(?::\s*str\s*)?=\s*["']([^"']+)["']\s*$""", re.MULTILINE)
_DOWN_REVISION = re.compile(r"""^down_revision\s*(?::[^=]+)?=\s*(.+)$""", re.MULTILINE)
_QUOTED = re.compile(r"""["']([^"']+)["']""")


def head_revision() -> str | None:
    """The one revision no version file names as its parent; None unless there is exactly one."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in VERSIONS_DIR.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision = _REVISION.findall(source)
        down = _DOWN_REVISION.findall(source)
        if len(revision) != 1 or len(down) != 1:
            return None
        revisions.add(revision[0])
        parents.update(_QUOTED.findall(down[0]))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def is_up_to_date(engine: Engine) -> bool:
    """The database's recorded revision is the code's head (no version table: not migrated)."""
    head = head_revision()
    if head is None:
        from fiscus.adapters.db.migrations import is_up_to_date as alembic_is_up_to_date

        return alembic_is_up_to_date(engine)
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        current = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    return current == [head]
