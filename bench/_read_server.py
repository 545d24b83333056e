"""api_read.py's server under test (`fiscus serve`, pinned) and its load (wrk)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _read_common import (
    FISCUS,
    ROOT,
    SERVER_CPU,
    WARMUP_SECONDS,
    WRK_CPU,
    Endpoint,
    Fixture,
    Non2xxError,
    say,
)

# --------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


class Server:
    """`fiscus serve --workers 1` as a subprocess pinned to one CPU; its output goes to a log file."""

    def __init__(self, database_url: str, log_dir: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"server-{self.port}.log"
        self.env = {
            **os.environ,
            "FISCUS_DATABASE_URL": database_url,
            "FISCUS_RATE_LIMIT_PER_SECOND": "1000000",
            "FISCUS_RATE_LIMIT_BURST": "1000000",
            "FISCUS_ACCESS_LOG": "false",
            "FISCUS_LOG_LEVEL": "WARNING",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        serve = [str(FISCUS), "serve", "--port", str(self.port), "--workers", "1"]
        return ["taskset", "-c", SERVER_CPU, *serve]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> float:
        """Start and wait for /readyz; returns the seconds that took."""
        started = time.perf_counter()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                status, _ = self.get("/readyz")
                if status == 200:
                    return time.perf_counter() - started
            time.sleep(0.1)
        raise RuntimeError(f"the server was not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def get(self, path: str, secret: str | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path)
        if secret:
            request.add_header("Authorization", f"Bearer {secret}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")

    def cpu_seconds(self) -> tuple[float, float]:
        """User and system CPU time of the server so far (taskset execs: the child's pid is the server's)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"

    def stop(self) -> str:
        """SIGTERM (uvicorn shuts down gracefully, then re-raises the signal), SIGKILL after 15 s."""
        if self.proc is None:
            return "not started"
        if self.proc.poll() is not None:
            return f"had already exited with {self.proc.returncode}:\n{self.log_tail()}"
        self.proc.terminate()
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return "did not stop within 15 s of SIGTERM: killed"
        if code in (0, -signal.SIGTERM):
            return "stopped cleanly on SIGTERM"
        return f"exited with {code} on SIGTERM:\n{self.log_tail()}"


# --------------------------------------------------------------------------- wrk

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TIME = r"([\d.]+)(us|ms|s|m|h)"
_MEAN = re.compile(rf"^\s*Latency\s+{_TIME}", re.MULTILINE)
_P99 = re.compile(rf"^\s*99(?:\.0+)?%\s+{_TIME}\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(rf"(\d+) requests in {_TIME}")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def seconds_of(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p99_ms: float
    mean_ms: float
    non_2xx: int
    """wrk's "Non-2xx or 3xx responses" (it counts statuses above 399)."""
    socket_errors: dict[str, int]
    output: str


def parse_wrk(output: str) -> WrkResult:
    rps, p99, total = _RPS.search(output), _P99.search(output), _TOTAL.search(output)
    mean = _MEAN.search(output)
    if not (rps and p99 and total and mean):
        raise RuntimeError(f"could not parse wrk's output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    sock = _SOCKET.search(output)
    names = ("connect", "read", "write", "timeout")
    errors = dict(zip(names, map(int, sock.groups()), strict=True)) if sock else {}
    return WrkResult(
        requests=int(total.group(1)),
        seconds=seconds_of(total.group(2), total.group(3)),
        rps=float(rps.group(1)),
        p99_ms=seconds_of(p99.group(1), p99.group(2)) * 1000,
        mean_ms=seconds_of(mean.group(1), mean.group(2)) * 1000,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors={k: v for k, v in errors.items() if v},
        output=output,
    )


def wrk(url: str, connections: int, seconds: int, secret: str) -> WrkResult:
    command = ["taskset", "-c", WRK_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    command += ["--timeout", "10s"]  # a million-document COUNT under load exceeds wrk's default 2 s
    command += ["-H", f"Authorization: Bearer {secret}", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


@dataclass(slots=True)
class Measurement:
    endpoint: Endpoint
    db: str
    connections: int
    result: WrkResult
    server_cpu: float
    """Server CPU seconds per wall second during the timed run (1.0: its core was busy all along)."""
    server_sys: float
    """The kernel's (system) part of server_cpu."""
    cpu_us: float
    """Server CPU (user + system, from /proc) per request served in the timed run, in microseconds: the
    figure that stays fair when the machine is shared (wall-clock req/s then measure the scheduler)."""
    baseline_rps: float | None = None
    baseline_cpu_us: float | None = None
    documents: int = 0
    """Documents in the organisation (the ~3,000 billed, or the bulk-copied size)."""

    @property
    def ratio(self) -> float | None:
        return self.result.rps / self.baseline_rps if self.baseline_rps else None

    @property
    def cpu_ratio(self) -> float | None:
        """/healthz's CPU per request over this endpoint's: the req/s ratio a saturated worker would show
        if it had its core to itself."""
        return self.baseline_cpu_us / self.cpu_us if self.baseline_cpu_us and self.cpu_us else None


def measure(
    server: Server, fixture: Fixture, db: str, endpoint: Endpoint, connections: int, seconds: int
) -> Measurement:
    url = server.base + fixture.path(endpoint)
    tag = f"[{db} {endpoint.label} c={connections}]"
    for phase, length in (("warm-up", WARMUP_SECONDS), ("timed", seconds)):
        load = load_average()
        (user0, sys0), wall0 = server.cpu_seconds(), time.perf_counter()
        result = wrk(url, connections, length, fixture.secret)
        (user1, sys1), wall = server.cpu_seconds(), time.perf_counter() - wall0
        cpu, kernel = (user1 - user0 + sys1 - sys0) / wall, (sys1 - sys0) / wall
        cpu_us = (user1 - user0 + sys1 - sys0) / max(result.requests, 1) * 1e6
        if server.proc is not None and server.proc.poll() is not None:
            raise RuntimeError(f"{tag} the server died ({server.proc.returncode}):\n{server.log_tail()}")
        if result.non_2xx or result.requests == 0:
            say(f"{tag} {phase}: {result.non_2xx:,} NON-2xx RESPONSES of {result.requests:,}")
            say(result.output.rstrip())
            status, body = server.get(fixture.path(endpoint), fixture.secret)
            say(f"one request by hand: HTTP {status}: {str(body)[:500]}")
            raise Non2xxError(
                f"{tag} {phase}: {result.non_2xx:,} non-2xx responses: the figures are worthless"
            )
    errors = f", socket errors {result.socket_errors}" if result.socket_errors else ""
    say(
        f"{tag} {result.requests:,} requests in {result.seconds:.2f}s = {result.rps:,.0f} req/s, "
        f"mean {result.mean_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, server CPU {cpu:.0%} "
        f"(system {kernel:.0%}), {cpu_us:,.0f} us CPU per request, 0 non-2xx{errors} "
        f"(load avg {load})"
    )
    return Measurement(endpoint, db, connections, result, cpu, kernel, cpu_us)
