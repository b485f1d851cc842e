"""Start the real daemon as a subprocess for tests: config file, free ports, readiness wait."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
    """GET a URL; (status, body), also for error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class DaemonProcess:
    """A running ``catalog-verifier run`` with its config and captured output."""

    config_path: Path
    ports: dict[str, int]
    proc: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def url(self, listener: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[listener]}{path}"

    def wait_ready(self, timeout_s: float = 30.0) -> float:
        """Poll /readyz until 200; return the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.output()}")
            try:
                status, _ = http_get(self.url("api", "/readyz"), timeout_s=1.0)
                if status == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"daemon not ready within {timeout_s} s:\n{self.output()}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        events = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                events.append(json.loads(line))
        return events


def write_config(path: Path, data_dir: Path, dsn: str = "", extra: str = "") -> dict[str, int]:
    """Write a config with free ports; return the ports by listener."""
    ports = {name: free_port() for name in ("ingest", "api", "metrics")}
    path.write_text(
        f'data_dir = "{data_dir}"\n'
        f'[database]\ndsn = "{dsn}"\n'
        f'[ingest]\nlisten = "127.0.0.1:{ports["ingest"]}"\n'
        f'[api]\nlisten = "127.0.0.1:{ports["api"]}"\n'
        f'[metrics]\nlisten = "127.0.0.1:{ports["metrics"]}"\n'
        f'[log]\nformat = "json"\n'
        f"[daemon]\nshutdown_grace_s = 10.0\n"
        f"{extra}"
    )
    return ports


def start_daemon(
    tmp_path: Path,
    dsn: str = "",
    extra_config: str = "",
    env: Mapping[str, str] | None = None,
) -> DaemonProcess:
    """Start ``python -m verifier run`` on a fresh config under tmp_path."""
    config_path = tmp_path / "config.toml"
    ports = write_config(config_path, tmp_path / "var", dsn, extra_config)
    log_path = tmp_path / "daemon.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_VERIFIER_")}
    full_env.update(env or {})
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "verifier", "run", "--config", str(config_path)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
    return DaemonProcess(config_path, ports, proc, log_path)


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m verifier ARGS`` to completion."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_VERIFIER_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "verifier", *args],
        capture_output=True,
        env=full_env,
        timeout=timeout_s,
        input=input_bytes,
        check=False,
    )
