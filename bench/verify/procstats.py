"""CPU and memory accounting of the measured processes, and the result files children write."""

from __future__ import annotations

import contextlib
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by a process and all its descendants, reaped ones included."""
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        # children_* holds the CPU of descendants already waited for (exited backends).
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
        return total
    except psutil.NoSuchProcess:
        return 0.0


@dataclass(slots=True)
class CpuWindow:
    """CPU used by this process and by watched process trees between start() and stop()."""

    watched: dict[str, int]
    self_start_s: float = 0.0
    self_cpu_s: float = 0.0
    others_start: dict[str, float] | None = None
    others_cpu_s: dict[str, float] | None = None
    wait_start_s: float = 0.0
    runqueue_wait_s: float = 0.0

    def start(self) -> None:
        """Take the opening sample."""
        self.others_start = {name: tree_cpu_s(pid) for name, pid in self.watched.items()}
        self.wait_start_s = _runqueue_wait_s()
        self.self_start_s = _own_cpu_s()

    def stop(self) -> None:
        """Take the closing sample."""
        self.self_cpu_s = _own_cpu_s() - self.self_start_s
        self.runqueue_wait_s = _runqueue_wait_s() - self.wait_start_s
        assert self.others_start is not None
        self.others_cpu_s = {
            name: tree_cpu_s(pid) - self.others_start[name] for name, pid in self.watched.items()
        }


def _runqueue_wait_s() -> float:
    """Time the main thread was runnable but waited for a CPU (other processes had them)."""
    try:
        with open("/proc/thread-self/schedstat", encoding="ascii") as schedstat:
            return int(schedstat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB.

    Read from VmHWM: ru_maxrss survives execve on Linux, so a child would report its parent's
    peak whenever that is higher.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def parse_watch(values: list[str]) -> dict[str, int]:
    """``name=pid`` arguments as a dict."""
    watched: dict[str, int] = {}
    for value in values:
        name, _, pid = value.partition("=")
        watched[name] = int(pid)
    return watched


def write_result(path: Path, result: dict[str, Any]) -> None:
    """Hand a child's measurements to the orchestrator."""
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


def read_result(path: Path) -> dict[str, Any]:
    """A child's measurements."""
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data
