"""The in-memory scheduler: priority lanes, per-host politeness and a global concurrency cap.

Each host has a ``HostSlot`` with its queued jobs by lane. While a host has queued jobs, one
dispatch task (its "pump") waits in turn for a free per-host concurrency slot, for its pacing,
pause and backoff time, for a global slot (granted highest lane first, FIFO within a lane) and
for a token of the host's ``AsyncLimiter``. Only then does it pick the job, so the highest lane
queued at that moment is served. Nothing iterates over all hosts per job.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable, Mapping
from functools import partial
from typing import Generic, TypeVar

import structlog

from verifier.backoff import HostBackoffPolicy, RandomSource
from verifier.exceptions import CatalogVerifierError
from verifier.hostslot import Feedback, HostLimits, HostSlot, Job, Lane, WorkerReport, host_key

# Re-exported: callers need only this module.
__all__ = ["Feedback", "Frontier", "FrontierClosedError", "HostLimits", "Job", "Lane"]
__all__ += ["WorkerReport", "host_key"]

T = TypeVar("T")

DEFAULT_LANE_CAPACITY = 10_000
_CRASHED = WorkerReport(Feedback.ERROR)


class FrontierClosedError(CatalogVerifierError):
    """Raised by ``Frontier.put``/``try_put`` once the frontier drains or has stopped."""


class _LaneGate:
    """Global concurrency slots, granted to waiters highest lane first, FIFO within a lane."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, capacity: int) -> None:
        self._free = capacity
        self._waiters: tuple[deque[asyncio.Future[None]], ...] = tuple(deque() for _ in Lane)

    def try_take(self) -> bool:
        # A free slot implies no live waiter: release() hands slots straight to waiters.
        if self._free > 0:
            self._free -= 1
            return True
        return False

    def enqueue(self, waiter: asyncio.Future[None], lane: Lane) -> None:
        # A waiter may sit in several lanes after a promotion; the first grant marks it done and
        # its other entries are skipped.
        self._waiters[lane].append(waiter)

    def release(self) -> None:
        for queue in self._waiters:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1


class Frontier(Generic[T]):
    """Schedules jobs onto a worker coroutine by lane, host politeness and global concurrency."""

    def __init__(
        self,
        worker: Callable[[Job[T]], Awaitable[WorkerReport]],
        *,
        concurrency: int,
        default_limits: HostLimits,
        limits_for: Callable[[str], HostLimits] | None = None,
        lane_capacity: Mapping[Lane, int] | int = DEFAULT_LANE_CAPACITY,
        backoff: HostBackoffPolicy | None = None,
        idle_slot_ttl_s: float = 60.0,
        rng: RandomSource | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if idle_slot_ttl_s <= 0:
            raise ValueError("idle_slot_ttl_s must be positive")
        self._worker = worker
        self._gate = _LaneGate(concurrency)
        self._default_limits = default_limits
        self._limits_for = limits_for
        if isinstance(lane_capacity, int):
            self._capacity = tuple(lane_capacity for _ in Lane)
        else:
            self._capacity = tuple(lane_capacity.get(lane, DEFAULT_LANE_CAPACITY) for lane in Lane)
        if min(self._capacity[Lane.CHANGED :]) < 1:
            raise ValueError("lane capacity must be at least 1")
        self._backoff = backoff or HostBackoffPolicy()
        self._idle_ttl_s = idle_slot_ttl_s
        self._rng: RandomSource = rng or random.Random()
        self._keys: tuple[set[Hashable], ...] = tuple(set() for _ in Lane)
        self._space_waiters: tuple[deque[asyncio.Future[None]], ...] = tuple(deque() for _ in Lane)
        self._slots: dict[str, HostSlot[T]] = {}
        # Hosts with nothing queued or running, oldest first: the garbage collector's work list.
        self._idle: OrderedDict[str, float] = OrderedDict()
        self._paused: dict[str, float] = {}
        self._running: dict[asyncio.Task[None], Job[T]] = {}
        self._pumps: set[asyncio.Task[None]] = set()
        self._interrupted: list[Job[T]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._stopped = asyncio.Event()

    # -- intake ---------------------------------------------------------------------------

    async def put(self, job: Job[T]) -> bool:
        """Queue a job, waiting while its lane is full (ON_DEMAND never waits); False if queued.

        A worker re-queueing work must use ``try_put``: waiting here would hold its global slot.
        """
        lane = job.lane
        woken = False
        while True:
            self._check_open()
            if job.key in self._keys[lane]:
                if woken:
                    self._wake_space(lane)
                return False
            if lane is Lane.ON_DEMAND or len(self._keys[lane]) < self._capacity[lane]:
                self._enqueue(job)
                return True
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            # A waiter woken but beaten to the space keeps its place at the head.
            if woken:
                self._space_waiters[lane].appendleft(waiter)
            else:
                self._space_waiters[lane].append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_space(lane)
                raise
            woken = True

    def try_put(self, job: Job[T]) -> bool:
        """Queue a job if its lane has room (ON_DEMAND always has); False if full or queued."""
        self._check_open()
        lane = job.lane
        if job.key in self._keys[lane]:
            return False
        if lane is not Lane.ON_DEMAND and len(self._keys[lane]) >= self._capacity[lane]:
            return False
        self._enqueue(job)
        return True

    def contains(self, lane: Lane, key: Hashable) -> bool:
        """Whether a job with this key is queued (not yet started) in this lane."""
        return key in self._keys[lane]

    # -- metrics --------------------------------------------------------------------------

    def depth(self, lane: Lane) -> int:
        """Jobs queued in this lane, all hosts together."""
        return len(self._keys[lane])

    def in_flight(self) -> int:
        """Jobs whose worker is running."""
        return len(self._running)

    def host_slots(self) -> int:
        """Hosts the frontier keeps state for (queued, running, paused or recently seen)."""
        return len(self._slots)

    def hosts_backing_off(self) -> int:
        """Hosts paused now by rate limiting or errors."""
        now = self._now()
        for host in [host for host, until in self._paused.items() if until <= now]:
            del self._paused[host]
        return len(self._paused)

    # -- configuration --------------------------------------------------------------------

    def set_limits_for(self, limits_for: Callable[[str], HostLimits] | None) -> None:
        """Replace the per-host limits policy and apply it to every known host (config reload)."""
        self._limits_for = limits_for
        for slot in self._slots.values():
            slot.set_limits(self._limits(slot.host))

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Dispatch jobs until ``drain`` finishes (returns) or the task is cancelled (re-raises).

        Cancelling cancels the running workers; their jobs are returned by a later ``drain``.
        """
        if self._loop is not None:
            raise RuntimeError("Frontier.run() may only be called once")
        if self._closing:
            return  # drained before it started: nothing left to dispatch
        loop = self._loop = asyncio.get_running_loop()
        for slot in self._slots.values():
            if slot.queued:
                self._spawn_pump(slot, loop)
        collector = loop.create_task(self._collect_idle_slots(), name="frontier-slot-gc")
        try:
            await self._stopped.wait()
        finally:
            self._close()
            collector.cancel()
            await _cancel_and_wait([collector, *self._pumps, *self._running])

    async def drain(self, timeout_s: float) -> list[Job[T]]:
        """Stop taking work, give running jobs up to ``timeout_s``, cancel the rest, and return
        every accepted job that did not finish (queued or interrupted), highest lane first."""
        self._close()
        await _cancel_and_wait(list(self._pumps))
        handed_back: list[Job[T]] = []
        for slot in self._slots.values():
            handed_back.extend(slot.take_all())
        for keys in self._keys:
            keys.clear()
        if self._running:
            _, late = await asyncio.wait(list(self._running), timeout=max(timeout_s, 0.0))
            await _cancel_and_wait(list(late))
        handed_back.extend(self._interrupted)
        self._interrupted.clear()
        self._stopped.set()
        handed_back.sort(key=lambda job: job.lane)
        return handed_back

    # -- internals ------------------------------------------------------------------------

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else time.monotonic()

    def _limits(self, host: str) -> HostLimits:
        return self._limits_for(host) if self._limits_for is not None else self._default_limits

    def _check_open(self) -> None:
        if self._closing:
            raise FrontierClosedError("the frontier is draining or stopped")

    def _close(self) -> None:
        self._closing = True
        for waiters in self._space_waiters:
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)

    def _wake_space(self, lane: Lane) -> None:
        waiters = self._space_waiters[lane]
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _enqueue(self, job: Job[T]) -> None:
        self._keys[job.lane].add(job.key)
        slot = self._slots.get(job.host)
        if slot is None:
            slot = self._slots[job.host] = HostSlot(job.host, self._limits(job.host))
        else:
            self._idle.pop(job.host, None)
        slot.push(job)
        if slot.pump is None:
            if self._loop is not None:
                self._spawn_pump(slot, self._loop)
        elif slot.gate_waiter is not None and job.lane < slot.gate_lane:
            # The host waits for a global slot on behalf of a lower lane: move it up.
            self._gate.enqueue(slot.gate_waiter, job.lane)
            slot.gate_lane = job.lane

    def _spawn_pump(self, slot: HostSlot[T], loop: asyncio.AbstractEventLoop) -> None:
        pump = slot.pump = loop.create_task(self._pump(slot))
        self._pumps.add(pump)
        pump.add_done_callback(partial(self._pump_done, slot))

    async def _pump(self, slot: HostSlot[T]) -> None:
        loop = asyncio.get_running_loop()
        while slot.queued:
            if not slot.can_start_more:
                slot.freed = loop.create_future()
                await slot.freed
                continue
            delay_s = slot.ready_at - loop.time()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
                continue
            await self._take_global_slot(slot, loop)
            try:
                # The configured rate's hard ceiling; pacing above normally makes this immediate.
                await slot.limiter.acquire()
            except BaseException:
                self._gate.release()
                raise
            if not slot.queued or slot.ready_at > loop.time():
                # Paused by another job's feedback while waiting.
                self._gate.release()
                continue
            self._start(slot, slot.pop(), loop)
        # No await since the loop test: a put arriving after this line spawns a new pump.
        slot.pump = None

    async def _take_global_slot(self, slot: HostSlot[T], loop: asyncio.AbstractEventLoop) -> None:
        if self._gate.try_take():
            return
        waiter: asyncio.Future[None] = loop.create_future()
        slot.gate_waiter, slot.gate_lane = waiter, slot.best_lane()
        self._gate.enqueue(waiter, slot.gate_lane)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._gate.release()
            raise
        finally:
            slot.gate_waiter = None

    def _pump_done(self, slot: HostSlot[T], pump: asyncio.Task[None]) -> None:
        self._pumps.discard(pump)
        if slot.pump is pump:
            slot.pump = None
        if not pump.cancelled() and pump.exception() is not None:
            structlog.get_logger(__name__).error(
                "frontier.pump_failed", host=slot.host, exc_info=pump.exception()
            )
        self._note_if_idle(slot)

    def _start(self, slot: HostSlot[T], job: Job[T], loop: asyncio.AbstractEventLoop) -> None:
        slot.mark_started(loop.time())
        self._keys[job.lane].discard(job.key)
        if job.lane is not Lane.ON_DEMAND:
            self._wake_space(job.lane)
        task = loop.create_task(self._work(slot, job))
        self._running[task] = job
        # A callback, not a finally: a task cancelled before its first step never runs its body.
        task.add_done_callback(partial(self._work_done, slot))

    async def _work(self, slot: HostSlot[T], job: Job[T]) -> None:
        try:
            report = await self._worker(job)
        except Exception:
            structlog.get_logger(__name__).exception(
                "frontier.worker_failed", host=slot.host, lane=job.lane.label
            )
            report = _CRASHED
        now = asyncio.get_running_loop().time()
        slot.apply(report, now, self._backoff, self._rng)
        if slot.paused_until > now:
            self._paused[slot.host] = slot.paused_until

    def _work_done(self, slot: HostSlot[T], task: asyncio.Task[None]) -> None:
        job = self._running.pop(task)
        if task.cancelled():
            self._interrupted.append(job)
        elif (error := task.exception()) is not None:
            structlog.get_logger(__name__).error(
                "frontier.feedback_failed", host=slot.host, exc_info=error
            )
        slot.mark_finished()
        self._gate.release()
        self._note_if_idle(slot)

    def _note_if_idle(self, slot: HostSlot[T]) -> None:
        if slot.queued == 0 and slot.active == 0 and slot.pump is None:
            self._idle[slot.host] = self._now()
            self._idle.move_to_end(slot.host)

    async def _collect_idle_slots(self) -> None:
        interval_s = min(max(self._idle_ttl_s / 2, 0.01), 30.0)
        while True:
            await asyncio.sleep(interval_s)
            self._collect(self._now())

    def _collect(self, now: float) -> None:
        cutoff = now - self._idle_ttl_s
        while self._idle:
            host, since = next(iter(self._idle.items()))
            if since > cutoff:
                return
            del self._idle[host]
            slot = self._slots.get(host)
            if slot is None:
                continue
            if slot.is_idle(now):
                del self._slots[host]
                self._paused.pop(host, None)
            elif slot.queued == 0 and slot.active == 0 and slot.pump is None:
                # Still paused or pacing: forgetting it now would forget the pause.
                self._idle[host] = now


async def _cancel_and_wait(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
