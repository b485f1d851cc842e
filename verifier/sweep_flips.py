"""Discontinuations a sweep holds back until its circuit breaker vindicates them.

The engine asks the sweep (``VerifyJob.hold``) before writing a final decision. A check that
would flip a product to discontinued is kept here instead, and written with
``VerificationEngine.record`` only once ``window`` more products were checked after it and the
breaker still trusts the site (or at the end of a healthy sweep). When the breaker trips, the
held flips are dropped: their products stay after the checkpoint and are checked again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import structlog

from verifier.engine import VerifyJob
from verifier.outcomes import Decision
from verifier.sweep_progress import CircuitBreaker, Verdict, verdict_of

Record = Callable[[VerifyJob, Decision], Awaitable[None]]
Finished = Callable[[str, Verdict], object]


class HeldFlips:
    """Held discontinuations in check order, and the writes of those released."""

    def __init__(
        self,
        breaker: CircuitBreaker,
        record: Record,
        finished: Finished,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self.breaker = breaker
        self._record = record
        self._finished = finished
        self._log = log
        self._holding: set[str] = set()
        self._held: deque[tuple[int, VerifyJob, Decision]] = deque()
        self._applying: set[asyncio.Task[None]] = set()
        self.on_applied: Callable[[], None] = lambda: None

    def __len__(self) -> int:
        return len(self._held)

    @property
    def applying(self) -> bool:
        """Whether released flips are being written now."""
        return bool(self._applying)

    def hold(self, job: VerifyJob, decision: Decision) -> bool:
        """The engine's hold hook: True (keep it here) for a flip to discontinued."""
        verdict = verdict_of(decision, job.state.availability == "discontinued")
        if verdict is not Verdict.DISCONTINUED:
            return False
        self._holding.add(job.state.product_id)
        return True

    def keep(self, job: VerifyJob, decision: Decision) -> bool:
        """Keep a finished check if it was held (after the breaker observed it)."""
        product_id = job.state.product_id
        if product_id not in self._holding:
            return False
        self._holding.discard(product_id)
        self._held.append((self.breaker.observed, job, decision))
        return True

    def drop(self) -> None:
        """Forget every held flip (the breaker tripped)."""
        self._held.clear()

    def release(self, everything: bool = False) -> None:
        """Write the flips the breaker vindicated (all of them with ``everything``)."""
        batch = []
        while self._held and (everything or self.breaker.vindicated(self._held[0][0])):
            _, job, decision = self._held.popleft()
            batch.append((job, decision))
        if batch:
            task = asyncio.get_running_loop().create_task(self._apply(batch))
            self._applying.add(task)
            task.add_done_callback(self._applying.discard)

    async def _apply(self, batch: list[tuple[VerifyJob, Decision]]) -> None:
        results = await asyncio.gather(
            *(self._record(job, decision) for job, decision in batch),
            return_exceptions=True,
        )
        for (job, decision), result in zip(batch, results, strict=True):
            verdict = verdict_of(decision, job.state.availability == "discontinued")
            if isinstance(result, BaseException):
                # Not written: counted as a failed check; the next sweep checks it again.
                self._log.error(
                    "sweep.apply_failed", product=job.state.product_id, error=str(result)
                )
                verdict = Verdict.FAILED
            self._finished(job.state.product_id, verdict)
        self.on_applied()
