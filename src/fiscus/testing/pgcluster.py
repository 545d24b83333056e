"""A throwaway PostgreSQL cluster for the test suite and the benchmarks.

Each pytest-xdist worker (or benchmark script) gets its own cluster in a fresh
temporary directory, on 127.0.0.1 and a free port, so runs never share state
with each other or with a PostgreSQL the developer may already have running.

Clusters live in ``<tmp>/fiscus-pg-*`` directories. They are stopped and
removed by :meth:`ThrowawayPostgres.stop`, by an ``atexit`` handler and, when
the owning process was killed before either could run, by
:func:`remove_stale_clusters` (which :meth:`ThrowawayPostgres.start` calls).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg import sql

__all__ = [
    "PostgresUnavailable",
    "ThrowawayPostgres",
    "find_pg_bin",
    "remove_stale_clusters",
]

HOST = "127.0.0.1"
SUPERUSER = "postgres"
DIR_PREFIX = "fiscus-pg-"
_META_FILE = "fiscus-cluster.json"
_LOG_FILE = "postgres.log"
_DATA_DIR = "data"
_PORT_ATTEMPTS = 3
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_BIND_FAILURE = re.compile(
    r"could not bind|address already in use|could not create any TCP/IP sockets", re.IGNORECASE
)


class PostgresUnavailable(RuntimeError):
    """No usable PostgreSQL server here; callers turn this into a skip or a clear failure."""


# --------------------------------------------------------------------------- discovery


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _has_server_binaries(bin_dir: Path) -> bool:
    return _is_executable(bin_dir / "initdb") and _is_executable(bin_dir / "pg_ctl")


def _version_key(name: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return None


def find_pg_bin() -> Path | None:
    """Locate PostgreSQL server binaries, so tests can skip rather than fail when there are none.

    Order: ``$FISCUS_PG_BIN`` (if it contains ``initdb``), the newest
    ``/usr/lib/postgresql/*/bin`` (Debian layout), then ``pg_config --bindir``.
    """
    override = os.environ.get("FISCUS_PG_BIN")
    if override:
        candidate = Path(override).expanduser()
        if _is_executable(candidate / "initdb"):
            return candidate

    versions: list[tuple[tuple[int, ...], Path]] = []
    debian_root = Path("/usr/lib/postgresql")
    if debian_root.is_dir():
        for version_dir in debian_root.iterdir():
            key = _version_key(version_dir.name)
            if key is not None and _has_server_binaries(version_dir / "bin"):
                versions.append((key, version_dir / "bin"))
    if versions:
        return max(versions)[1]

    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            result = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        bindir = Path(result.stdout.strip())
        if result.returncode == 0 and result.stdout.strip() and _has_server_binaries(bindir):
            return bindir
    return None


# --------------------------------------------------------------------------- process helpers


@dataclass(frozen=True)
class _Account:
    """The unprivileged user the server runs as when we are root (PostgreSQL refuses root)."""

    uid: int
    gid: int
    home: str


def _server_account() -> _Account | None:
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable(
            "running as root, but PostgreSQL refuses to run as root and there is no 'postgres' "
            "system user to run it as: create one (adduser --system --group postgres) or run the "
            "tests as a non-root user"
        ) from None
    return _Account(uid=entry.pw_uid, gid=entry.pw_gid, home=entry.pw_dir)


def _tmp_root() -> Path:
    """FISCUS_PG_TMPDIR if set (tests use /dev/shm: creating a database from a template is ~15x
    faster on tmpfs here), else /tmp rather than $TMPDIR: the postgres user must be able to traverse
    to it when we are root, and unix socket paths must stay short."""
    chosen = os.environ.get("FISCUS_PG_TMPDIR")
    if chosen and Path(chosen).is_dir() and os.access(chosen, os.W_OK | os.X_OK):
        return Path(chosen)
    root = Path("/tmp")
    if root.is_dir() and os.access(root, os.W_OK | os.X_OK):
        return root
    return Path(tempfile.gettempdir())


def _child_env(account: _Account | None) -> dict[str, str]:
    """Our environment minus libpq/server variables (PGDATA, PGPORT...), with C messages so the
    log can be parsed."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    if account is not None:
        env["HOME"] = account.home
        env["USER"] = env["LOGNAME"] = "postgres"
    return env


def _run(
    args: list[str], *, account: _Account | None, cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool, dropping to the postgres user when we are root."""
    return subprocess.run(
        args,
        cwd=cwd,
        env=_child_env(account),
        user=account.uid if account else None,
        group=account.gid if account else None,
        extra_groups=[] if account else None,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is as good as dead (nobody may ever reap it in a container)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    fields = stat.rsplit(")", 1)[-1].split()
    return not fields or fields[0] != "Z"


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        first_line = (data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        return int(first_line.strip())
    except (OSError, ValueError):
        return None


def _is_postmaster_of(pid: int, data_dir: Path) -> bool | None:
    """Whether ``pid`` is the postmaster of ``data_dir`` (None when /proc cannot tell), so a
    recycled pid is never killed."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return None if not Path("/proc/self").exists() else False
    except OSError:
        return None
    return os.fsencode(str(data_dir)) in cmdline


def _wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _shutdown(data_dir: Path, bin_dir: Path | None, account: _Account | None, *, trust_pid: bool) -> None:
    """Stop a cluster as fast as possible: pg_ctl -m immediate, then SIGKILL as a last resort."""
    pid = _postmaster_pid(data_dir)
    if pid is None or not _pid_alive(pid):
        return
    if bin_dir is not None and _is_executable(bin_dir / "pg_ctl"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            _run(
                # -W: we poll for the pid ourselves, faster than pg_ctl's 100 ms ticks.
                [str(bin_dir / "pg_ctl"), "stop", "-D", str(data_dir), "-m", "immediate", "-W"],
                account=account,
                cwd=data_dir.parent,
                timeout=20,
            )
    if _wait_dead(pid, 10.0):
        return
    is_ours = _is_postmaster_of(pid, data_dir)
    if is_ours or (is_ours is None and trust_pid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        _wait_dead(pid, 5.0)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 40, offset: int = 0) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


def _conf_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _check_identifier(name: str, what: str) -> None:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"{what} {name!r} is not a safe identifier ([a-z_][a-z0-9_]{{0,62}})")


# --------------------------------------------------------------------------- cleanup

_LIVE: set[ThrowawayPostgres] = set()


def _stop_all_at_exit() -> None:
    for cluster in list(_LIVE):
        with contextlib.suppress(Exception):
            cluster.stop()


atexit.register(_stop_all_at_exit)


def _read_meta(cluster_dir: Path) -> dict[str, Any]:
    try:
        meta = json.loads((cluster_dir / _META_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def remove_stale_clusters(max_age_seconds: float = 6 * 3600) -> int:
    """Stop and delete ``fiscus-pg-*`` clusters left behind by killed processes; returns how many.

    A cluster is stale when it is older than ``max_age_seconds``, when the
    process that created it is dead (atexit would otherwise have removed it), or,
    if its creator is unknown, when its postmaster.pid names a dead process.
    Clusters of this process are kept.
    """
    own = {cluster._base_dir for cluster in _LIVE}
    try:
        account = _server_account()
    except PostgresUnavailable:
        account = None
    removed = 0
    now = time.time()
    for cluster_dir in _tmp_root().glob(DIR_PREFIX + "*"):
        try:
            if cluster_dir in own or cluster_dir.is_symlink() or not cluster_dir.is_dir():
                continue
            meta = _read_meta(cluster_dir)
            created = meta.get("created")
            if not isinstance(created, (int, float)):
                created = cluster_dir.stat().st_mtime
            owner = meta.get("owner_pid")
            data_dir = cluster_dir / _DATA_DIR
            pid = _postmaster_pid(data_dir)
            if now - created > max_age_seconds:
                stale = True
            elif isinstance(owner, int):
                # A live owner is still busy with it: initdb's bootstrap backends and a start()
                # retrying another port leave a postmaster.pid naming a dead pid for a moment.
                stale = not _pid_alive(owner)
            else:
                stale = pid is not None and not _pid_alive(pid)
            if not stale:
                continue
            bin_dir = Path(meta["bin_dir"]) if isinstance(meta.get("bin_dir"), str) else find_pg_bin()
            _shutdown(data_dir, bin_dir, account, trust_pid=False)
            shutil.rmtree(cluster_dir, ignore_errors=True)
            if not cluster_dir.exists():
                removed += 1
        except OSError:
            continue
    return removed


# --------------------------------------------------------------------------- the cluster


class ThrowawayPostgres:
    """A private PostgreSQL cluster in a temp dir: trust auth, 127.0.0.1 only, gone after stop().

    ``durable=False`` (tests) turns off fsync, synchronous_commit and
    full_page_writes for speed; ``durable=True`` keeps PostgreSQL's defaults so
    benchmark figures are honest.
    """

    def __init__(
        self, *, bin_dir: Path | None = None, durable: bool = False, port: int | None = None
    ) -> None:
        self._requested_bin_dir = bin_dir
        self._durable = durable
        self._requested_port = port
        self._bin_dir: Path | None = None
        self._account: _Account | None = None
        self._base_dir: Path | None = None
        self._port: int | None = None
        self._running = False

    # ---- lifecycle

    def start(self) -> None:
        """initdb into a fresh temp dir and start the server; raises PostgresUnavailable with the log."""
        if self._running:
            return
        bin_dir = self._requested_bin_dir or find_pg_bin()
        if bin_dir is None or not _has_server_binaries(bin_dir):
            where = (
                f"in {bin_dir}"
                if bin_dir
                else "(looked at $FISCUS_PG_BIN, /usr/lib/postgresql/*/bin, pg_config)"
            )
            raise PostgresUnavailable(
                f"no PostgreSQL server binaries (initdb, pg_ctl) {where}: install them "
                "(apt-get install postgresql-15) or point FISCUS_PG_BIN at their directory"
            )
        self._bin_dir = bin_dir
        self._account = _server_account()
        with contextlib.suppress(Exception):
            remove_stale_clusters()
        try:
            self._create_dir()
            self._initdb()
            self._write_config()
            self._start_server()
        except BaseException:
            self.stop()
            raise
        self._running = True

    def stop(self) -> None:
        """Stop the server (immediate mode: nothing to keep) and delete the temp dir; idempotent."""
        base_dir = self._base_dir
        if base_dir is None:
            return
        try:
            _shutdown(base_dir / _DATA_DIR, self._bin_dir, self._account, trust_pid=True)
        finally:
            shutil.rmtree(base_dir, ignore_errors=True)
            self._base_dir = None
            self._port = None
            self._running = False
            _LIVE.discard(self)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- addresses

    @property
    def port(self) -> int:
        """The TCP port the server listens on (known before start() only if it was given)."""
        port = self._port if self._port is not None else self._requested_port
        if port is None:
            raise RuntimeError("the cluster is not started, so it has no port yet")
        return port

    @property
    def host(self) -> str:
        """Always 127.0.0.1: the cluster never listens on other interfaces."""
        return HOST

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) for a database of this cluster."""
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{dbname}"

    # ---- databases

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create a database (optionally a copy of ``template``, the fast way to get a migrated
        schema per test) and return its URL."""
        _check_identifier(name, "database name")
        if template is not None:
            _check_identifier(template, "template name")
        with self._admin_connection() as conn:
            if template is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                return self.url(name)
            statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
            for attempt in range(3):
                # CREATE DATABASE ... TEMPLATE fails while anyone is connected to the template.
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (template,),
                )
                try:
                    conn.execute(statement)
                    break
                except psycopg.errors.ObjectInUse:
                    if attempt == 2:
                        raise
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database even if connections remain (WITH (FORCE)); no error if it is absent."""
        _check_identifier(name, "database name")
        with self._admin_connection() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    # ---- internals

    def _admin_connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(
            host=HOST,
            port=self.port,
            user=SUPERUSER,
            dbname="postgres",
            sslmode="disable",
            connect_timeout=10,
            autocommit=True,
        )

    def _create_dir(self) -> None:
        base_dir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=_tmp_root()))
        self._base_dir = base_dir
        _LIVE.add(self)
        # World-traversable so the postgres user can reach it when we are root.
        base_dir.chmod(0o755)
        meta = {"owner_pid": os.getpid(), "created": time.time(), "bin_dir": str(self._bin_dir)}
        (base_dir / _META_FILE).write_text(json.dumps(meta))
        if self._account is not None:
            os.chown(base_dir, self._account.uid, self._account.gid)

    def _tool(self, name: str) -> str:
        assert self._bin_dir is not None
        return str(self._bin_dir / name)

    def _initdb(self) -> None:
        assert self._base_dir is not None
        args = [
            self._tool("initdb"),
            "-D",
            str(self._base_dir / _DATA_DIR),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
        ]
        if not self._durable:
            args.append("--no-sync")
        try:
            result = _run(args, account=self._account, cwd=self._base_dir, timeout=120)
        except (OSError, subprocess.SubprocessError) as exc:
            raise PostgresUnavailable(f"initdb could not run: {exc}") from exc
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"initdb failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}".rstrip()
            )

    def _write_config(self) -> None:
        assert self._base_dir is not None
        settings = {
            "listen_addresses": _conf_string(HOST),
            "unix_socket_directories": _conf_string(str(self._base_dir)),
            "max_connections": "200",
            "shared_buffers": _conf_string("256MB"),
            "timezone": _conf_string("UTC"),
        }
        if not self._durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        lines = ["", "# fiscus.testing.pgcluster"] + [f"{key} = {value}" for key, value in settings.items()]
        with (self._base_dir / _DATA_DIR / "postgresql.conf").open("a") as fh:
            fh.write("\n".join(lines) + "\n")

    def _start_server(self) -> None:
        assert self._base_dir is not None
        log = self._base_dir / _LOG_FILE
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port if self._requested_port is not None else _free_port()
            log_offset = log.stat().st_size if log.exists() else 0
            args = [self._tool("pg_ctl"), "start", "-D", str(self._base_dir / _DATA_DIR)]
            args += ["-l", str(log), "-w", "-t", "60", "-o", f"-p {port}"]
            try:
                result = _run(args, account=self._account, cwd=self._base_dir, timeout=90)
            except (OSError, subprocess.SubprocessError) as exc:
                raise PostgresUnavailable(f"pg_ctl could not run: {exc}") from exc
            if result.returncode == 0:
                self._port = port
                return
            tail = _tail(log, offset=log_offset)
            if attempt < attempts and _BIND_FAILURE.search(tail):
                continue  # someone took the port between our probe and the server's bind
            raise PostgresUnavailable(
                f"PostgreSQL did not start on {HOST}:{port} (pg_ctl exit {result.returncode})\n"
                f"{result.stderr.strip()}\n--- tail of {log} ---\n{tail}"
            )
