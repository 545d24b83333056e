"""`fiscus …` run in this process, exactly as the console script runs it (`fiscus.cli:main`, with its
exit codes and its separate stdout and stderr), for tests about what a command does rather than about
the process: a real `fiscus` process costs ~2.5 s of CPU in imports alone. The process-level behaviour
(exit codes of the real entry point, signals, kill -9, stdin) stays in real processes (test_cli.py)."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner


def fiscus_here(
    url: str, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`fiscus *args` against `url` (and `env`), in-process; the result shape of test_cli.fiscus."""
    from fiscus import cli

    runner = CliRunner()
    argv = sys.argv
    code: int = 0
    with runner.isolation(
        input=stdin, env={"FISCUS_DATABASE_URL": url, "NO_COLOR": "1", **(env or {})}
    ) as streams:
        sys.argv = ["fiscus", *args]
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = argv
            sys.stdout.flush()
            sys.stderr.flush()
        out, err = streams[0].getvalue(), streams[1].getvalue()
    return subprocess.CompletedProcess(["fiscus", *args], code, out.decode(), err.decode())
