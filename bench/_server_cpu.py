"""CPU time of PostgreSQL's server processes, read from /proc: on a machine shared with other work,
CPU time (the client's and the server's) is the fair figure of what a request costs."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from fiscus.adapters.db.engine import Database


def backends(db: Database) -> list[int]:
    """The server processes of this database's connections (PostgreSQL), to read their CPU time."""
    if db.is_sqlite:
        return []
    with db.read() as conn:
        return list(
            conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            ).scalars()
        )


def server_cpu_ms(pids: list[int]) -> float:
    """utime + stime of these processes so far, in ms (0 for processes gone)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total * 1000 / os.sysconf("SC_CLK_TCK")
