"""The frontier: lanes, per-host politeness, global cap, feedback, buffers and lifecycle.

A fake worker records (time, host, lane, key) of every start; politeness is measured from those
timestamps with real time and small rates. Only generous lower bounds are asserted on timing.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier.backoff import HostBackoffPolicy
from verifier.frontier import (
    Feedback,
    Frontier,
    FrontierClosedError,
    HostLimits,
    Job,
    Lane,
    WorkerReport,
)

OK = WorkerReport(Feedback.OK)
FAST = HostLimits(rate_per_s=10_000.0, concurrency=4)
ONE_AT_A_TIME = HostLimits(rate_per_s=10_000.0, concurrency=1)


@dataclass(frozen=True)
class Start:
    at: float
    host: str
    lane: Lane
    key: Hashable


class FakeWorker:
    """Records every start; holds jobs until released when ``hold``; then reports."""

    def __init__(
        self,
        *,
        hold: bool = False,
        hold_s: float = 0.0,
        report: Callable[[Job[str]], WorkerReport] | None = None,
    ) -> None:
        self.starts: list[Start] = []
        self.finished: list[Hashable] = []
        self.cancelled: list[Hashable] = []
        self.max_running: Counter[str] = Counter()
        self.max_running_total = 0
        self._running: Counter[str] = Counter()
        self._hold = hold
        self._hold_s = hold_s
        self._report = report
        self._released = asyncio.Event()

    def release_all(self) -> None:
        self._hold = False
        self._released.set()

    def started_keys(self, host: str | None = None) -> list[Hashable]:
        return [s.key for s in self.starts if host is None or s.host == host]

    async def __call__(self, job: Job[str]) -> WorkerReport:
        self.starts.append(Start(asyncio.get_running_loop().time(), job.host, job.lane, job.key))
        self._running[job.host] += 1
        self.max_running[job.host] = max(self.max_running[job.host], self._running[job.host])
        self.max_running_total = max(self.max_running_total, self._running.total())
        try:
            if self._hold:
                await self._released.wait()
            if self._hold_s:
                await asyncio.sleep(self._hold_s)
        except asyncio.CancelledError:
            self.cancelled.append(job.key)
            raise
        finally:
            self._running[job.host] -= 1
        self.finished.append(job.key)
        return self._report(job) if self._report else OK


def make_job(host: str, key: Hashable, lane: Lane = Lane.SWEEP) -> Job[str]:
    return Job(host=host, lane=lane, key=key, payload=f"{host}/{key}")


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.005)


@asynccontextmanager
async def running(frontier: Frontier[str], worker: FakeWorker) -> AsyncIterator[asyncio.Task[None]]:
    """Run the frontier for the block, then release the worker, drain and check for leaks."""
    before = asyncio.all_tasks()
    task = asyncio.create_task(frontier.run())
    try:
        yield task
    finally:
        worker.release_all()
        if not task.done():
            await frontier.drain(timeout_s=2.0)
        await asyncio.gather(task, return_exceptions=True)
    leaked = asyncio.all_tasks() - before
    assert not leaked, f"tasks left behind: {leaked}"


def max_starts_in_any_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    return max(bisect.bisect_left(times, t + window_s) - i for i, t in enumerate(times))


async def test_host_never_gets_more_than_rate_plus_burst_starts_in_any_second() -> None:
    """At 10/s, any one-second window holds at most 11 starts and the pace is really 10/s."""
    worker = FakeWorker()
    frontier = Frontier(worker, concurrency=64, default_limits=HostLimits(10.0, 4))
    for key in range(22):
        frontier.try_put(make_job("a:443", key))
    async with running(frontier, worker):
        await wait_until(lambda: len(worker.finished) == 22, timeout_s=5.0)
    times = [s.at for s in worker.starts]
    assert max_starts_in_any_window(times, 1.0) <= 11
    assert max(times) - min(times) >= 21 * 0.1 * 0.9


async def test_per_host_concurrency_cap_is_never_exceeded() -> None:
    """A host with concurrency 2 never has more than 2 jobs running, and does reach 2."""
    worker = FakeWorker(hold_s=0.03)
    frontier = Frontier(worker, concurrency=64, default_limits=HostLimits(10_000.0, 2))
    for key in range(12):
        frontier.try_put(make_job("a:443", key))
    async with running(frontier, worker):
        await wait_until(lambda: len(worker.finished) == 12)
    assert worker.max_running["a:443"] == 2


async def test_global_concurrency_cap_holds_across_hosts() -> None:
    """With a global cap of 3, at most 3 jobs run at once over 10 hosts, and 3 do."""
    worker = FakeWorker(hold_s=0.03)
    frontier = Frontier(worker, concurrency=3, default_limits=FAST)
    for key in range(30):
        frontier.try_put(make_job(f"h{key % 10}:443", key))
    async with running(frontier, worker):
        await wait_until(lambda: len(worker.finished) == 30)
    assert worker.max_running_total == 3


async def test_on_demand_overtakes_a_ten_thousand_job_sweep_backlog_on_its_host() -> None:
    """An on_demand job put behind 10,000 sweep jobs on the same host starts at the next token."""
    worker = FakeWorker()
    frontier = Frontier(worker, concurrency=64, default_limits=HostLimits(10.0, 1))
    assert all(frontier.try_put(make_job("a:443", key)) for key in range(10_000))
    async with running(frontier, worker):
        await wait_until(lambda: len(worker.starts) >= 2)
        put_at = asyncio.get_running_loop().time()
        await frontier.put(make_job("a:443", "urgent", Lane.ON_DEMAND))
        await wait_until(lambda: "urgent" in worker.started_keys())
    urgent = next(s for s in worker.starts if s.key == "urgent")
    sweeps_between = [s for s in worker.starts if s.lane is Lane.SWEEP and s.at > put_at]
    sweeps_between = [s for s in sweeps_between if s.at < urgent.at]
    assert len(sweeps_between) <= 1
    assert urgent.at - put_at <= 2 * 0.1 + 0.8  # two token intervals plus scheduling slack


@pytest.mark.parametrize("host_was_waiting", [True, False], ids=["promoted", "new-host"])
async def test_on_demand_gets_the_next_global_slot_before_other_hosts_sweeps(
    host_was_waiting: bool,
) -> None:
    """With the global cap reached, a freed slot goes to an on_demand job before queued sweeps."""
    worker = FakeWorker(hold=True)
    frontier = Frontier(worker, concurrency=1, default_limits=FAST)
    for i in range(5):
        frontier.try_put(make_job(f"h{i}:443", f"sweep-{i}"))
    async with running(frontier, worker):
        await wait_until(lambda: len(worker.starts) == 1)
        host = "h3:443" if host_was_waiting else "fresh:443"
        await frontier.put(make_job(host, "urgent", Lane.ON_DEMAND))
        worker.release_all()
        await wait_until(lambda: len(worker.starts) >= 2)
        assert worker.starts[1].key == "urgent"


async def test_slow_host_does_not_stall_other_hosts() -> None:
    """A host whose requests hang uses only its own concurrency; other hosts keep flowing."""
    released = asyncio.Event()

    async def work(job: Job[str]) -> WorkerReport:
        await fast(job)
        if job.host == "slow:443":
            await released.wait()
        return OK

    fast = FakeWorker()
    frontier = Frontier(work, concurrency=4, default_limits=HostLimits(10_000.0, 2))
    for key in range(50):
        frontier.try_put(make_job("slow:443", f"s{key}"))
    for key in range(20):
        frontier.try_put(make_job("quick:443", f"q{key}"))
    async with running(frontier, fast):
        await wait_until(lambda: len(fast.started_keys("quick:443")) == 20)
        assert len(fast.started_keys("slow:443")) == 2
        released.set()


async def test_huge_backlog_on_one_host_does_not_stall_other_hosts() -> None:
    """Thousands of jobs queued on a slow-rate host do not delay a fast host's few jobs."""
    worker = FakeWorker()
    frontier = Frontier(worker, concurrency=8, default_limits=HostLimits(1_000.0, 4))
    frontier.set_limits_for(lambda host: HostLimits(2.0, 1) if host == "big:443" else FAST)
    for key in range(5_000):
        frontier.try_put(make_job("big:443", f"b{key}"))
    async with running(frontier, worker):
        for key in range(10):
            await frontier.put(make_job("small:443", f"s{key}"))
        await wait_until(lambda: len(worker.started_keys("small:443")) == 10)
        assert frontier.depth(Lane.SWEEP) >= 4_990


async def test_put_waits_while_its_lane_is_full_and_on_demand_never_waits() -> None:
    """A full lane makes put wait and try_put refuse; on_demand is accepted past capacity."""
    worker = FakeWorker()
    frontier = Frontier(worker, concurrency=4, default_limits=FAST, lane_capacity=2)
    assert await frontier.put(make_job("a:443", 1))
    assert await frontier.put(make_job("b:443", 2))
    blocked = asyncio.create_task(frontier.put(make_job("c:443", 3)))
    done, _ = await asyncio.wait([blocked], timeout=0.05)
    assert not done
    assert not frontier.try_put(make_job("c:443", 4))
    assert frontier.try_put(make_job("c:443", 4, Lane.CHANGED))
    for key in range(5):
        assert await frontier.put(make_job("d:443", f"od{key}", Lane.ON_DEMAND))
    assert frontier.depth(Lane.ON_DEMAND) == 5
    async with running(frontier, worker):
        assert await asyncio.wait_for(blocked, timeout=3.0)
        await wait_until(lambda: len(worker.finished) == 9)


async def test_a_key_is_queued_at_most_once_per_lane() -> None:
    """A duplicate put in the same lane is refused; the key may be queued again once started."""
    worker = FakeWorker(hold=True)
    frontier = Frontier(worker, concurrency=4, default_limits=FAST)
    assert frontier.try_put(make_job("a:443", "p1"))
    assert not await frontier.put(make_job("a:443", "p1"))
    assert frontier.try_put(make_job("a:443", "p1", Lane.CHANGED))
    assert frontier.contains(Lane.SWEEP, "p1")
    assert frontier.depth(Lane.SWEEP) == 1
    async with running(frontier, worker):
        await wait_until(lambda: len(worker.starts) == 2)
        assert not frontier.contains(Lane.SWEEP, "p1")
        assert frontier.try_put(make_job("a:443", "p1"))


async def test_rate_limited_report_pauses_the_whole_host_for_retry_after() -> None:
    """A 429 with Retry-After 0.4 s pauses every job of that host, not other hosts."""
    worker = FakeWorker(
        report=lambda job: WorkerReport(Feedback.RATE_LIMITED, 0.4) if job.key == 0 else OK
    )
    frontier = Frontier(worker, concurrency=8, default_limits=HostLimits(50.0, 1))
    for key in range(3):
        frontier.try_put(make_job("limited:443", key))
    async with running(frontier, worker):
        await wait_until(lambda: 0 in worker.finished)
        assert frontier.hosts_backing_off() == 1
        for key in range(5):
            await frontier.put(make_job("other:443", f"o{key}"))
        await wait_until(lambda: len(worker.started_keys("other:443")) == 5)
        await wait_until(lambda: len(worker.finished) == 8)
        assert frontier.hosts_backing_off() == 0
    limited = [s.at for s in worker.starts if s.host == "limited:443"]
    assert limited[1] - limited[0] >= 0.4 * 0.95


async def test_pause_stops_a_host_already_waiting_for_a_global_slot() -> None:
    """A 429 arriving while the host waits for a global slot still holds its next request."""
    worker = FakeWorker(
        hold_s=0.05,
        report=lambda job: WorkerReport(Feedback.RATE_LIMITED, 0.3) if job.key == 0 else OK,
    )
    frontier = Frontier(worker, concurrency=1, default_limits=HostLimits(10_000.0, 2))
    frontier.try_put(make_job("a:443", 0))
    frontier.try_put(make_job("a:443", 1))
    async with running(frontier, worker):
        await wait_until(lambda: len(worker.finished) == 2)
    assert worker.starts[1].at - worker.starts[0].at >= 0.3 * 0.95


async def test_rate_limited_host_ramps_back_up_from_a_fraction_of_its_rate() -> None:
    """After the pause the host starts at a quarter of its rate and doubles per success."""
    worker = FakeWorker(
        report=lambda job: WorkerReport(Feedback.RATE_LIMITED, 0.05) if job.key == 0 else OK
    )
    frontier = Frontier(worker, concurrency=8, default_limits=HostLimits(20.0, 1))
    for key in range(5):
        frontier.try_put(make_job("a:443", key))
    async with running(frontier, worker):
        await wait_until(lambda: len(worker.finished) == 5)
    times = [s.at for s in worker.starts]
    gaps = [b - a for a, b in itertools.pairwise(times[1:])]
    assert gaps[0] >= 0.2 * 0.9
    assert gaps[1] >= 0.1 * 0.9
    assert gaps[2] >= 0.05 * 0.9


@pytest.mark.parametrize(
    ("retry_after_s", "policy", "min_gap_s"),
    [
        (3600.0, HostBackoffPolicy(max_retry_after_s=0.2), 0.2),
        (None, HostBackoffPolicy(rate_limit_pause_s=0.3), 0.3 / 2),  # jitter: half at least
    ],
    ids=["retry-after-capped", "default-pause"],
)
async def test_rate_limit_pause_is_capped_or_defaulted(
    retry_after_s: float | None, policy: HostBackoffPolicy, min_gap_s: float
) -> None:
    """An hour-long Retry-After is cut to max_retry_after_s (the host resumes soon); without
    Retry-After the host pauses for the default pause."""
    worker = FakeWorker(
        report=lambda job: (
            WorkerReport(Feedback.RATE_LIMITED, retry_after_s) if job.key == 0 else OK
        )
    )
    frontier = Frontier(worker, concurrency=8, default_limits=ONE_AT_A_TIME, backoff=policy)
    frontier.try_put(make_job("a:443", 0))
    frontier.try_put(make_job("a:443", 1))
    async with running(frontier, worker):
        await wait_until(lambda: len(worker.finished) == 2)
    assert worker.starts[1].at - worker.starts[0].at >= min_gap_s * 0.95


async def test_errors_back_the_host_off_and_a_crashing_worker_counts_as_error() -> None:
    """An error report, or an exception from the worker, pauses the host; others are served."""

    class Low:
        def random(self) -> float:
            return 0.0

    def report(job: Job[str]) -> WorkerReport:
        if job.key == "boom":
            raise RuntimeError("worker bug")
        return WorkerReport(Feedback.ERROR) if job.key == "e0" else OK

    worker = FakeWorker(report=report)
    policy = HostBackoffPolicy(error_base_s=0.4)
    frontier = Frontier(
        worker, concurrency=8, default_limits=ONE_AT_A_TIME, backoff=policy, rng=Low()
    )
    for key in ["e0", "e1", "boom", "e2"]:
        frontier.try_put(make_job("err:443", key))
    async with running(frontier, worker):
        await wait_until(lambda: len(worker.starts) == 4, timeout_s=4.0)
    times = [s.at for s in worker.starts]
    assert times[1] - times[0] >= 0.2 * 0.95  # first error: half of base (low draw)
    assert times[3] - times[2] >= 0.2 * 0.95  # crash after a success: first error again


async def test_idle_host_slots_are_garbage_collected_but_paused_ones_kept() -> None:
    """Hosts seen once are forgotten after the idle TTL; a paused host is kept while paused."""
    worker = FakeWorker(
        report=lambda job: WorkerReport(Feedback.RATE_LIMITED, 30.0) if job.key == 0 else OK
    )
    frontier = Frontier(worker, concurrency=64, default_limits=FAST, idle_slot_ttl_s=0.05)
    for key in range(2_000):
        frontier.try_put(make_job(f"h{key}:443", key))
    assert frontier.host_slots() == 2_000
    async with running(frontier, worker):
        await wait_until(lambda: frontier.host_slots() == 1, timeout_s=4.0)
        assert frontier.hosts_backing_off() == 1
        assert len(worker.finished) == 2_000


async def test_new_limits_apply_live() -> None:
    """Lowering a host's rate while it runs spaces the following starts at the new rate."""
    worker = FakeWorker()
    frontier = Frontier(worker, concurrency=8, default_limits=HostLimits(20.0, 1))
    for key in range(6):
        frontier.try_put(make_job("a:443", key))
    async with running(frontier, worker):
        await wait_until(lambda: len(worker.starts) >= 1)
        frontier.set_limits_for(lambda host: HostLimits(4.0, 1))
        await wait_until(lambda: len(worker.finished) == 6, timeout_s=4.0)
    times = [s.at for s in worker.starts]
    changed_at = 1  # the start after the change may still follow the old pace
    for a, b in itertools.pairwise(times[changed_at:]):
        assert b - a >= 0.25 * 0.9


async def test_cancelling_run_cancels_workers_and_leaves_no_task() -> None:
    """Cancelling run() cancels running workers; drain then hands back queued and cut jobs."""
    worker = FakeWorker(hold=True)
    frontier = Frontier(worker, concurrency=2, default_limits=FAST)
    for key in range(5):
        frontier.try_put(make_job(f"h{key}:443", key))
    before = asyncio.all_tasks()
    task = asyncio.create_task(frontier.run())
    await wait_until(lambda: frontier.in_flight() == 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert set(worker.cancelled) == {s.key for s in worker.starts}
    assert len(worker.cancelled) == 2
    assert asyncio.all_tasks() - before == set()
    assert frontier.in_flight() == 0
    handed_back = await frontier.drain(timeout_s=1.0)
    assert Counter(job.key for job in handed_back) == Counter(range(5))
    with pytest.raises(FrontierClosedError):
        await frontier.put(make_job("a:443", 99))


async def test_drain_waits_for_running_jobs_and_returns_queued_ones() -> None:
    """drain() lets running jobs finish within the timeout and returns the never-started ones."""
    worker = FakeWorker(hold=True)
    frontier = Frontier(worker, concurrency=2, default_limits=HostLimits(10_000.0, 1))
    for key in range(6):
        frontier.try_put(make_job("a:443" if key < 3 else "b:443", key))
    before = asyncio.all_tasks()
    task = asyncio.create_task(frontier.run())
    await wait_until(lambda: frontier.in_flight() == 2)
    draining = asyncio.create_task(frontier.drain(timeout_s=5.0))
    await wait_until(lambda: frontier.depth(Lane.SWEEP) == 0)
    assert not draining.done()
    worker.release_all()
    handed_back = await draining
    await task
    assert Counter(job.key for job in handed_back) == Counter([1, 2, 4, 5])
    assert Counter(worker.finished) == Counter([0, 3])
    assert asyncio.all_tasks() - before == set()
    with pytest.raises(FrontierClosedError):
        frontier.try_put(make_job("a:443", 7))


async def test_drain_hands_back_jobs_still_running_at_the_timeout() -> None:
    """Jobs still running when the drain timeout ends are cancelled and handed back too."""
    worker = FakeWorker(hold=True)
    frontier = Frontier(worker, concurrency=2, default_limits=HostLimits(0.001, 1))
    frontier.try_put(make_job("a:443", "a-running"))
    frontier.try_put(make_job("b:443", "b-running", Lane.ON_DEMAND))
    task = asyncio.create_task(frontier.run())
    await wait_until(lambda: frontier.in_flight() == 2)
    frontier.try_put(make_job("b:443", "b-queued"))
    handed_back = await frontier.drain(timeout_s=0.05)
    await task
    assert handed_back[0].key == "b-running"  # highest lane first
    assert {job.key for job in handed_back} == {"a-running", "b-running", "b-queued"}
    assert set(worker.cancelled) == {"a-running", "b-running"}
    assert frontier.in_flight() == 0


async def _run_scenario(ops: list[tuple[int, Lane, int]], stop_after: int) -> None:
    worker = FakeWorker(hold_s=0.001)
    frontier = Frontier(worker, concurrency=2, default_limits=ONE_AT_A_TIME, lane_capacity=100)
    accepted: list[Job[str]] = []
    for host, lane, k in ops:
        job = make_job(f"h{host}:443", f"{lane.label}-{k}", lane)
        already = any(j.lane is lane and j.key == job.key for j in accepted)
        assert frontier.try_put(job) is not already
        if not already:
            accepted.append(job)
    task = asyncio.create_task(frontier.run())
    await wait_until(lambda: len(worker.starts) >= min(stop_after, len(accepted)))
    handed_back = await frontier.drain(timeout_s=0.0 if stop_after % 2 else 1.0)
    await task
    outcomes = Counter(worker.finished) + Counter(j.key for j in handed_back)
    assert outcomes == Counter(j.key for j in accepted)
    for host_key in {j.host for j in accepted}:
        expected = sorted((j for j in accepted if j.host == host_key), key=lambda j: j.lane)
        started = worker.started_keys(host_key)
        assert started == [j.key for j in expected][: len(started)]
    assert asyncio.all_tasks() == {asyncio.current_task()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from(list(Lane)), st.integers(0, 9)), max_size=40
    ),
    stop_after=st.integers(0, 45),
)
def test_every_accepted_job_runs_once_in_lane_order_or_is_handed_back(
    ops: list[tuple[int, Lane, int]], stop_after: int
) -> None:
    """Duplicates in a lane are refused; every accepted job finishes once or is handed back by
    drain (never both); per host, jobs start highest lane first and FIFO within a lane."""
    asyncio.run(_run_scenario(ops, stop_after))
