"""The real daemon process: readiness, signals, systemd notifications, startup errors."""

from __future__ import annotations

import gc
import json
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess, free_port, http_get, run_cli, start_daemon
from verifier.daemon import GC_THRESHOLDS, tune_garbage_collector


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd's notification socket (abstract namespace)."""
    name = f"@cv-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    sock.settimeout(0.5)
    yield sock, name
    sock.close()


def _receive_until(sock: socket.socket, wanted: str, timeout_s: float = 30.0) -> list[str]:
    received: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            received.extend(sock.recv(4096).decode().split("\n"))
        except TimeoutError:
            continue
        if wanted in received:
            return received
    raise AssertionError(f"{wanted} not received; got {received}")


def _wait_for_event(
    daemon: DaemonProcess, event: str, timeout_s: float = 10.0
) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for entry in daemon.log_events():
            if entry.get("event") == event:
                return entry
        time.sleep(0.05)
    raise AssertionError(f"no {event} in log:\n{daemon.output()}")


def test_embedded_default_is_ready_and_sigterm_exits_zero(tmp_path: Path) -> None:
    """With no DSN the daemon starts its own PostgreSQL, is ready, and drains on SIGTERM."""
    daemon = start_daemon(tmp_path)
    try:
        assert daemon.wait_ready(timeout_s=30.0) < 30.0
        status, body = http_get(daemon.url("api", "/healthz"))
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, body = http_get(daemon.url("metrics", "/metrics"))
        assert status == 200 and b"catalog_verifier_build_info" in body
        assert (tmp_path / "var" / "postgres" / "data" / "PG_VERSION").exists()
    finally:
        code = daemon.stop()
    assert code == 0
    events = [e["event"] for e in daemon.log_events()]
    assert "daemon.ready" in events and events[-1] == "daemon.stopped"
    # the embedded cluster was stopped with its last user
    assert not (tmp_path / "var" / "postgres" / "data" / "postmaster.pid").exists()


def test_log_lines_are_json_with_timestamp_and_level(tmp_path: Path, db_dsn: str) -> None:
    """Every stdout line is one JSON event with an ISO timestamp and a level."""
    daemon = start_daemon(tmp_path, dsn=db_dsn)
    try:
        daemon.wait_ready()
    finally:
        daemon.stop()
    lines = [line for line in daemon.output().splitlines() if line.strip()]
    assert lines
    for line in lines:
        entry = json.loads(line)
        assert {"event", "level", "timestamp"} <= entry.keys()
        assert entry["timestamp"].endswith("Z") and "T" in entry["timestamp"]


def test_notify_socket_gets_ready_watchdog_and_stopping(
    tmp_path: Path, db_dsn: str, notify_socket: tuple[socket.socket, str]
) -> None:
    """Under systemd the daemon sends READY=1, WATCHDOG=1 pings and STOPPING=1 on SIGTERM."""
    sock, name = notify_socket
    daemon = start_daemon(
        tmp_path, dsn=db_dsn, env={"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "2000000"}
    )
    try:
        _receive_until(sock, "READY=1")
        _receive_until(sock, "WATCHDOG=1", timeout_s=10.0)
        daemon.signal(signal.SIGTERM)
        _receive_until(sock, "STOPPING=1")
    finally:
        code = daemon.stop()
    assert code == 0


def test_sighup_applies_a_good_config_and_keeps_the_old_one_on_a_bad_one(
    tmp_path: Path, db_dsn: str
) -> None:
    """SIGHUP reloads the file; an invalid file is logged and the running config is kept."""
    daemon = start_daemon(tmp_path, dsn=db_dsn)
    try:
        daemon.wait_ready()
        original = daemon.config_path.read_text()
        daemon.config_path.write_text(original + '[sweep]\nstart_time = "03:30"\n')
        daemon.signal(signal.SIGHUP)
        _wait_for_event(daemon, "config.reloaded")
        daemon.config_path.write_text(original + '[crawler]\nper_host_rate = "fast"\n')
        daemon.signal(signal.SIGHUP)
        failed = _wait_for_event(daemon, "config.reload_failed")
        assert "crawler.per_host_rate" in str(failed["error"])
        assert http_get(daemon.url("api", "/readyz"))[0] == 200
    finally:
        code = daemon.stop()
    assert code == 0


def test_listener_that_cannot_bind_is_a_clear_startup_error(tmp_path: Path, db_dsn: str) -> None:
    """A port already in use gives exit 2 and a message naming the listener, not a traceback."""
    daemon = start_daemon(tmp_path, dsn=db_dsn)
    try:
        daemon.wait_ready()
        config = tmp_path / "second.toml"
        text = daemon.config_path.read_text()
        # a second daemon with the same api port, other ports free
        for listener in ("ingest", "metrics"):
            text = text.replace(str(daemon.ports[listener]), str(free_port()))
        config.write_text(text)
        result = run_cli("run", "--config", str(config))
    finally:
        daemon.stop()
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert "cannot listen on" in stderr and "api listener" in stderr
    assert "Traceback" not in stderr


def test_unreachable_dsn_exits_2_naming_the_database(tmp_path: Path) -> None:
    """A DSN that nothing answers on fails fast with exit 2 and says which database."""
    port = free_port()
    env = {
        "CATALOG_VERIFIER_DATABASE__DSN": f"postgresql://u:secret@127.0.0.1:{port}/x",
        "CATALOG_VERIFIER_DATABASE__CONNECT_TIMEOUT_S": "3",
    }
    result = run_cli("migrate", env=env)
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert "cannot connect to the database" in stderr and f"127.0.0.1:{port}" in stderr
    assert "secret" not in stderr


@pytest.mark.parametrize(
    ("config_text", "expected"),
    [
        ("[crawler]\nconcurency = 3\n", "crawler.concurency: unknown key"),
        ("bogus = 1\n", "bogus: unknown key"),
        ('[crawler]\nper_host_rate = "fast"\n', "crawler.per_host_rate"),
        ('[api]\nlisten = "localhost"\n', "api.listen"),
        ('[api]\nlisten = "127.0.0.1:99999"\n', "api.listen"),
        ('[sweep]\ntimezone = "Mars/Olympus"\n', "sweep.timezone"),
        ('[sweep]\nevery = "daily"\n', "sweep.every"),
        ("[crawler\n", "not valid TOML"),
    ],
)
def test_bad_config_files_exit_2_naming_the_problem(
    tmp_path: Path, config_text: str, expected: str
) -> None:
    """Unknown keys, wrong types and bad values make run and check-config exit 2 with the key."""
    path = tmp_path / "bad.toml"
    path.write_text(config_text)
    for command in ("check-config", "run"):
        result = run_cli(command, "--config", str(path))
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr.decode()


def test_missing_config_file_exits_2() -> None:
    """A --config path that does not exist is a config error."""
    result = run_cli("check-config", "--config", "/nonexistent/catalog-verifier.toml")
    assert result.returncode == 2
    assert "does not exist" in result.stderr.decode()


def test_config_env_variable_names_the_file(tmp_path: Path) -> None:
    """$CATALOG_VERIFIER_CONFIG is used when --config is absent."""
    path = tmp_path / "c.toml"
    path.write_text("[crawler]\nper_host_rate = 2.5\n")
    result = run_cli("check-config", "--json", env={"CATALOG_VERIFIER_CONFIG": str(path)})
    assert result.returncode == 0
    assert json.loads(result.stdout)["crawler"]["per_host_rate"] == 2.5


def test_python_dash_m_and_console_script_agree() -> None:
    """``python -m verifier --version`` works like the console script."""
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.decode().startswith("catalog-verifier ")


def test_garbage_collector_tuning_freezes_start_up_objects_and_raises_thresholds() -> None:
    """After start-up, collections skip start-up objects and run less often."""
    thresholds = gc.get_threshold()
    try:
        tune_garbage_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > thresholds[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
