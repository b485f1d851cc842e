"""The embedded PostgreSQL launcher: shared by processes, stopped by the last, self-healing."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import asyncpg
import psutil
import pytest

from verifier.embedded_pg import SYSTEM_USER, EmbeddedPostgres


def _server_pid(cluster: EmbeddedPostgres) -> int | None:
    try:
        return int((cluster.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except FileNotFoundError:
        return None


@pytest.fixture
def short_tmp() -> Path:
    """A short, world-traversable directory (socket paths are limited to ~100 bytes)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="cv-pg-"))
    path.chmod(0o755)
    return path


async def _query(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SELECT current_user"))
    finally:
        await conn.close()


async def test_initdb_once_and_reuse_across_acquires(short_tmp: Path) -> None:
    """The first acquire initialises the cluster; later ones reuse the same server."""
    first = EmbeddedPostgres(short_tmp)
    dsn = first.acquire()
    try:
        pid = _server_pid(first)
        assert pid is not None and await _query(first.dsn("postgres")) == "postgres"
        second = EmbeddedPostgres(short_tmp)
        assert second.acquire() == dsn
        assert _server_pid(second) == pid
        second.release()
        # still one live holder (this process, registered by `first`): the server keeps running
        assert psutil.pid_exists(pid)
    finally:
        first.release()
    assert _server_pid(first) is None


def test_server_stops_when_the_last_process_leaves(short_tmp: Path) -> None:
    """Another process holding the cluster keeps it up; it stops when that process releases."""
    code = (
        "import sys; from pathlib import Path; from verifier.embedded_pg import EmbeddedPostgres\n"
        "c = EmbeddedPostgres(Path(sys.argv[1])); c.acquire(); print('up', flush=True)\n"
        "sys.stdin.readline(); c.release()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(short_tmp)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        while (line := child.stdout.readline()) and line.strip() != "up":
            pass  # the launcher's own log lines
        assert line.strip() == "up"
        mine = EmbeddedPostgres(short_tmp)
        mine.acquire()
        mine.release()
        assert _server_pid(mine) is not None, "stopped while another process still holds it"
    finally:
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.flush()
        child.wait(timeout=60)
    assert _server_pid(EmbeddedPostgres(short_tmp)) is None


def test_holders_of_dead_processes_are_pruned(short_tmp: Path) -> None:
    """A holder killed with SIGKILL does not keep the server alive forever."""
    code = (
        "import sys, os, signal; from pathlib import Path\n"
        "from verifier.embedded_pg import EmbeddedPostgres\n"
        "EmbeddedPostgres(Path(sys.argv[1])).acquire(); os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(short_tmp)], check=False, timeout=60)
    cluster = EmbeddedPostgres(short_tmp)
    assert _server_pid(cluster) is not None  # left running by the killed process
    cluster.acquire()
    cluster.release()
    assert _server_pid(cluster) is None


def test_stale_postmaster_pid_file_is_recovered(short_tmp: Path) -> None:
    """A postmaster.pid left by a crash (pid not a postgres) does not block the next start."""
    cluster = EmbeddedPostgres(short_tmp)
    cluster.acquire()
    pid = _server_pid(cluster)
    assert pid is not None
    psutil.Process(pid).kill()
    psutil.Process(pid).wait(timeout=10)
    stale = (
        (cluster.pgdata / "postmaster.pid").read_text()
        if (cluster.pgdata / "postmaster.pid").exists()
        else f"{os.getpid()}\n"
    )
    # point the file at a live process that is not postgres (this test process)
    (cluster.pgdata / "postmaster.pid").write_text(f"{os.getpid()}\n" + stale.split("\n", 1)[1])
    cluster.release()
    again = EmbeddedPostgres(short_tmp)
    again.acquire()
    try:
        new_pid = _server_pid(again)
        assert new_pid is not None and new_pid != os.getpid()
        assert psutil.Process(new_pid).name().startswith("postgres")
    finally:
        again.release()


def test_server_never_runs_as_root(short_tmp: Path) -> None:
    """As root the server runs as the data dir owner or a system user; else as the caller."""
    if os.geteuid() == 0:
        owner = pwd.getpwnam("nobody")
        data_dir = short_tmp / "owned"
        data_dir.mkdir()
        os.chown(data_dir, owner.pw_uid, owner.pw_gid)
        expected = {data_dir: "nobody", short_tmp / "rootowned": SYSTEM_USER}
        (short_tmp / "rootowned").mkdir()
    else:
        expected = {short_tmp: pwd.getpwuid(os.geteuid()).pw_name}
    for path, user in expected.items():
        cluster = EmbeddedPostgres(path)
        cluster.acquire()
        try:
            pid = _server_pid(cluster)
            assert pid is not None
            assert psutil.Process(pid).username() == user
        finally:
            cluster.release()


def test_long_data_dir_paths_get_a_short_socket_directory(short_tmp: Path) -> None:
    """A data dir too deep for a Unix socket path still works (socket moved to a short dir)."""
    deep = short_tmp / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    cluster = EmbeddedPostgres(deep)
    assert not str(cluster.socket_dir).startswith(str(deep))
    cluster.acquire()
    cluster.release()
