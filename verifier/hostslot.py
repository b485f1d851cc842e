"""One host's scheduling state: its queued jobs by lane, politeness limits and backoff.

A ``HostSlot`` holds no tasks of its own and never reads a clock: the frontier passes ``now``
in, so every state change here can be tested with plain numbers.
"""

from __future__ import annotations

import asyncio
import enum
import math
import re
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from aiolimiter import AsyncLimiter

from verifier.backoff import HostBackoffPolicy, RandomSource, host_backoff_s, rate_limit_pause_s
from verifier.records import record

T = TypeVar("T")

_DEFAULT_PORTS = {"http": 80, "https": 443}
# The common spelling, read without urlsplit: a lower-case scheme and host name (no user
# info, no IPv6 brackets, no byte urlsplit would strip), an optional port, then the path.
_PLAIN_ORIGIN = re.compile(r"(https?)://([a-z0-9.-]+)(?::([0-9]{1,5}))?(?=[/?#]|\Z)")


class Lane(enum.IntEnum):
    """Verification lanes; a lower value is served first."""

    ON_DEMAND = 0
    CHANGED = 1
    SWEEP = 2

    @property
    def label(self) -> str:
        """The lane's external name ("on_demand", "changed", "sweep")."""
        return self.name.lower()


@record
class Job(Generic[T]):
    """One unit of work aimed at one host; the payload is opaque to the scheduler."""

    host: str
    lane: Lane
    key: Hashable
    payload: T


@dataclass(frozen=True, slots=True)
class HostLimits:
    """Politeness limits of one host: request starts per second and requests in flight."""

    rate_per_s: float
    concurrency: int

    def __post_init__(self) -> None:
        if not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise ValueError("rate_per_s must be positive and finite")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")


class Feedback(enum.Enum):
    """What a finished job says about its host."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"  # 429/503: pause the host, honour Retry-After
    ERROR = "error"  # 5xx, timeout, connection failure: back the host off exponentially


@record
class WorkerReport:
    """The worker's verdict on the host after one job."""

    feedback: Feedback
    retry_after_s: float | None = None


def host_key(url: str) -> str:
    """The politeness key of a URL: lower-case ``host:port``, with the scheme's default port."""
    plain = _PLAIN_ORIGIN.match(url)
    if plain is not None:
        scheme, host, port_text = plain.groups()
        port = int(port_text) if port_text is not None else 0
        if port <= 65535:
            return f"{host}:{port or _DEFAULT_PORTS[scheme]}"
    return _host_key_of_parts(url)


def _host_key_of_parts(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class HostSlot(Generic[T]):
    """Queued jobs, in-flight count, rate pacing and backoff state of one host."""

    __slots__ = (
        "_interval_s",
        "_queues",
        "active",
        "errors",
        "freed",
        "gate_lane",
        "gate_waiter",
        "host",
        "last_start",
        "limiter",
        "limits",
        "next_start_at",
        "paused_until",
        "pump",
        "queued",
        "rate_factor",
        "rate_limits",
    )

    def __init__(self, host: str, limits: HostLimits) -> None:
        self.host = host
        self._queues: tuple[deque[Job[T]], ...] = tuple(deque() for _ in Lane)
        self.queued = 0
        self.active = 0
        self.last_start = -math.inf
        self.next_start_at = -math.inf
        self.paused_until = -math.inf
        self.errors = 0
        self.rate_limits = 0
        # Below 1 while ramping back up after a rate limit; never above 1, so the configured
        # rate is a ceiling.
        self.rate_factor = 1.0
        self.limits = limits
        self.limiter = AsyncLimiter(1, 1 / limits.rate_per_s)
        self._interval_s = 1 / limits.rate_per_s
        # Owned by the frontier: the host's dispatch task, the future it waits on for a free
        # concurrency slot, and its pending request for a global slot (with that request's lane).
        self.pump: asyncio.Task[None] | None = None
        self.freed: asyncio.Future[None] | None = None
        self.gate_waiter: asyncio.Future[None] | None = None
        self.gate_lane = Lane.SWEEP

    def push(self, job: Job[T]) -> None:
        """Queue a job behind the others of its lane."""
        self._queues[job.lane].append(job)
        self.queued += 1

    def pop(self) -> Job[T]:
        """Take the oldest job of the highest lane that has one."""
        for queue in self._queues:
            if queue:
                self.queued -= 1
                return queue.popleft()
        raise IndexError("no job queued for this host")

    def best_lane(self) -> Lane:
        """The highest lane with a queued job (SWEEP when none is queued)."""
        for lane, queue in zip(Lane, self._queues, strict=True):
            if queue:
                return lane
        return Lane.SWEEP

    def take_all(self) -> list[Job[T]]:
        """Remove and return every queued job, highest lane first."""
        jobs = [job for queue in self._queues for job in queue]
        for queue in self._queues:
            queue.clear()
        self.queued = 0
        return jobs

    @property
    def ready_at(self) -> float:
        """The earliest time the next request may start (pacing, pause and backoff)."""
        return max(self.paused_until, self.next_start_at)

    @property
    def can_start_more(self) -> bool:
        """Whether the host is below its concurrency cap."""
        return self.active < self.limits.concurrency

    def mark_started(self, now: float) -> None:
        """Record that a request started now; the next may start one interval later."""
        self.active += 1
        self.last_start = now
        # Fixed at start time: a ramp's reduced rate holds for a full interval even when the
        # request finishes (and doubles the rate) at once.
        self.next_start_at = now + self._interval_s

    def mark_finished(self) -> None:
        """Record that a request ended and wake the dispatcher waiting for a free slot."""
        self.active -= 1
        freed, self.freed = self.freed, None
        if freed is not None and not freed.done():
            freed.set_result(None)

    def set_limits(self, limits: HostLimits) -> None:
        """Apply new limits now; spacing from the last start is kept, so no burst follows."""
        if limits == self.limits:
            return
        self.limits = limits
        self.limiter = AsyncLimiter(1, 1 / limits.rate_per_s)
        self._update_interval()
        self.next_start_at = self.last_start + self._interval_s

    def apply(
        self, report: WorkerReport, now: float, policy: HostBackoffPolicy, rng: RandomSource
    ) -> None:
        """Update pause, backoff and ramp from one finished job's report."""
        if report.feedback is Feedback.OK:
            self.errors = 0
            self.rate_limits = 0
            if self.rate_factor < 1.0:
                self.rate_factor = min(1.0, self.rate_factor * 2)
                self._update_interval()
            return
        if report.feedback is Feedback.RATE_LIMITED:
            self.rate_limits += 1
            pause_s = rate_limit_pause_s(
                report.retry_after_s,
                self.rate_limits,
                default_s=policy.rate_limit_pause_s,
                cap_s=policy.max_retry_after_s,
                rng=rng,
            )
            self.rate_factor = policy.ramp_start_fraction
            self._update_interval()
        else:
            self.errors += 1
            pause_s = host_backoff_s(
                self.errors, base_s=policy.error_base_s, cap_s=policy.error_cap_s, rng=rng
            )
        self.paused_until = max(self.paused_until, now + pause_s)

    def is_idle(self, now: float) -> bool:
        """Whether the slot holds nothing that forgetting it would lose."""
        return self.queued == 0 and self.active == 0 and self.pump is None and self.ready_at <= now

    def _update_interval(self) -> None:
        self._interval_s = 1 / (self.limits.rate_per_s * self.rate_factor)
