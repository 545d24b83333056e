"""A development mailer: each message becomes one .eml file in a directory (open it in any mail
client). Named by its Message-ID, so a resend of the same message replaces, never duplicates, it."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fiscus.domain.email import OutgoingEmail, TemporaryFailure


@dataclass(frozen=True, slots=True)
class FileMailer:
    directory: Path

    @staticmethod
    def from_url(url: str) -> FileMailer:
        """`file:///abs/dir` or `file://rel/dir` (relative to the working directory)."""
        parts = urlsplit(url)
        path = unquote(parts.netloc + parts.path)
        return FileMailer(Path(path or "."))

    def path_for(self, message: OutgoingEmail) -> Path:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", message.message_id.strip("<>"))
        return self.directory / f"{stem}.eml"

    def send(self, message: OutgoingEmail, raw: bytes) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
            os.replace(tmp, self.path_for(message))
        except OSError as exc:
            raise TemporaryFailure(f"cannot write {self.directory}: {exc}") from exc
