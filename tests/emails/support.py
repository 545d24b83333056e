"""The SMTP sink process for the email tests, and reading what it received."""

from __future__ import annotations

import email
import email.policy
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from tests.api_support import free_port


@dataclass
class SmtpSink:
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=10"

    def clear(self) -> None:
        for f in self.directory.glob("*.eml"):
            f.unlink()
        for name in ("stall", "stalled"):
            (self.directory / name).unlink(missing_ok=True)

    def messages(self) -> list[EmailMessage]:
        out = []
        for f in sorted(self.directory.glob("*.eml")):
            parsed = email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            out.append(parsed)
        return out


@contextmanager
def smtp_sink(directory: Path) -> Iterator[SmtpSink]:
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.emails.smtp_sink", "--port", str(port), "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not (directory / "ready").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"SMTP sink did not start: {process.stderr.read() if process.stderr else ''!r}"
                )
            time.sleep(0.05)
        yield SmtpSink(port, directory, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
