"""A real SMTP server process for the suite (aiosmtpd): every accepted message is saved as one .eml file
in a directory. Two behaviours on demand: a recipient whose local part starts with "bounce" is refused
with 550 (a permanent failure), and while a file named `stall` exists, the server holds its answer to
the end of DATA (it writes `stalled` so the test knows) and then refuses the message with 451: a message
it never acknowledged is never delivered, as with a real MTA.

Run: python -m tests.emails.smtp_sink --port N --dir D
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class Sink:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.split("@", 1)[0].lower().startswith("bounce"):
            return f"550 5.1.1 <{address}>: no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        stall = self.directory / "stall"
        if stall.exists():
            (self.directory / "stalled").write_text(str(time.time()))
            while stall.exists():
                await asyncio.sleep(0.05)
            return "451 4.3.0 not accepted"
        data: Any = envelope.original_content or envelope.content
        name = f"{time.time_ns()}-{os.getpid()}"
        tmp = self.directory / f"{name}.tmp"
        tmp.write_bytes(bytes(data))
        tmp.rename(self.directory / f"{name}.eml")
        return "250 2.0.0 OK: queued"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    controller = Controller(Sink(args.dir), hostname="127.0.0.1", port=args.port)
    controller.start()
    (args.dir / "ready").write_text(str(os.getpid()))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    controller.stop()


if __name__ == "__main__":
    main()
