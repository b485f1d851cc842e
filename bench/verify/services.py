"""The processes the benchmark measures against: the shop, and the postmaster's pid."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from verifier.embedded_pg import EmbeddedPostgres


def free_port() -> int:
    """A TCP port nothing listens on, on any address (so every loopback host can bind it)."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        port: int = sock.getsockname()[1]
        return port


def postmaster_pid(cluster: EmbeddedPostgres) -> int:
    """The pid of the cluster's postmaster (first line of postmaster.pid)."""
    return int((cluster.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])


def postgres_errors(log_path: Path, limit: int = 50) -> list[str]:
    """The server log's ERROR lines, each with the DETAIL/STATEMENT lines that follow it."""
    if not log_path.exists():
        return []
    errors: list[str] = []
    for line in log_path.read_text("utf-8", errors="replace").splitlines():
        if "ERROR:" in line:
            errors.append(line.strip())
        elif errors and any(tag in line for tag in ("DETAIL:", "STATEMENT:", "CONTEXT:")):
            errors[-1] += " | " + line.strip()
    return errors[:limit]


class ShopProcess:
    """The benchmark shop running in its own processes until the ``with`` block ends."""

    def __init__(self, pages: int, hosts: int, port: int, processes: int, root: Path) -> None:
        self.command = [
            sys.executable,
            "-m",
            "bench.verify.shop",
            str(pages),
            str(hosts),
            str(port),
            str(processes),
        ]
        self.processes = processes
        self.root = root
        self.startup_s = 0.0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The shop's first process (its other processes are its children)."""
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> ShopProcess:
        started = time.monotonic()
        env = {**os.environ, "PYTHONPATH": str(self.root)}
        self._process = subprocess.Popen(
            self.command, cwd=self.root, env=env, stdout=subprocess.PIPE
        )
        assert self._process.stdout is not None
        ready = 0
        deadline = started + 300
        buffer = b""
        while ready < self.processes:
            if self._process.poll() is not None:
                raise RuntimeError(f"the shop exited with {self._process.returncode}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.__exit__(None, None, None)
                raise RuntimeError("the shop did not start")
            readable, _, _ = select.select([self._process.stdout], [], [], min(remaining, 1.0))
            if readable:
                buffer += os.read(self._process.stdout.fileno(), 4096)
                ready = buffer.count(b"ready ")
        self.startup_s = time.monotonic() - started
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
