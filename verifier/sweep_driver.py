"""Drives one running sweep in this daemon: feeds the sweep lane, checkpoints, halts, finishes.

The feeder walks every product of the merchant, discontinued ones too (a product that comes
back is found again), in primary-key order with a keyset cursor (never OFFSET) and hands them
to the engine's ``sweep`` lane one by one: no job row per product, and at most
``max_in_flight`` products unfinished at a time (about ``in_flight_s`` of work, so a closing
window or a pause waits seconds, not minutes), on top of the lane's own capacity. Every
``checkpoint_s`` the control loop saves the checkpoint cursor (see ``SweepCursor``) with the
counters and renews the lease; losing the lease (another daemon took it over) stops the driver
at once.

Circuit breaker: a check that would flip a product to discontinued is held back (the engine's
``hold`` hook) until the breaker has seen ``window`` more products and still trusts the site;
only then is it written. When more than ``max_suspect_share`` of the recent products would be
discontinued or failed (after ``min_sample``), the sweep halts with "suspected site outage" and
the held flips are dropped: those products stay after the checkpoint and are checked again
when the sweep resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from ingest.context import Services
from verifier.engine import VerificationEngine, VerifyJob, job_from_row
from verifier.exceptions import CatalogVerifierError
from verifier.frontier import FrontierClosedError
from verifier.hostslot import Lane
from verifier.outcomes import Decision
from verifier.schedule import SweepSchedule, current_window
from verifier.sweep_flips import HeldFlips
from verifier.sweep_model import DriverSettings, ProductRow, Stop, SweepMerchant
from verifier.sweep_progress import (
    SUSPECTED_OUTAGE,
    CircuitBreaker,
    RateMeter,
    SweepCursor,
    eta_seconds,
    expected_rate_per_s,
    is_suspect,
    spill_warning,
    verdict_of,
)

log = structlog.get_logger(__name__)

_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, CatalogVerifierError)


class SweepDriver:
    """Runs one sweep whose lease this daemon holds, until it stops for one of ``Stop``."""

    def __init__(
        self,
        services: Services,
        engine: VerificationEngine,
        row: Mapping[str, Any],
        merchant: SweepMerchant,
        *,
        settings: DriverSettings,
        clock: Callable[[], datetime],
        schedule: Callable[[], SweepSchedule | None],
    ) -> None:
        self.services = services
        self.engine = engine
        self.sweep_id = row["id"]
        self.merchant = merchant
        self.settings = settings
        self.clock = clock
        self._schedule = schedule
        self.windowed: bool = row["windowed"]
        self.started_at: datetime = row["started_at"]
        self.window_end: datetime | None = row["window_end"]
        self.total: int = row["total"]
        self._base = (row["checked"], row["changed"], row["discontinued"], row["errors"])
        self.cursor = SweepCursor(checkpoint=row["cursor"])
        self.breaker = CircuitBreaker(settings.breaker)
        self.rate = RateMeter()
        self.eta: float | None = row["eta_seconds"]
        self.warning: str | None = row["warning"]
        self.stop_reason: Stop | None = None
        self._extra = {
            "slug": merchant.slug,
            "hosts": list(merchant.hosts),
            "currency": merchant.currency,
            "attempts": 0,
        }
        self._in_flight = 0
        self._exhausted = False
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._log = log.bind(sweep_id=str(self.sweep_id), merchant=merchant.slug)
        self.flips = HeldFlips(self.breaker, engine.record, self.cursor.finished, self._log)
        self.flips.on_applied = self._wake.set
        self._limit = self._max_in_flight()
        self._last_done_s = time.monotonic()
        self._counted = 0

    # -- progress as the rest of the daemon sees it ----------------------------------------

    @property
    def checked(self) -> int:
        """Products checked so far (the finished prefix)."""
        checked: int = self._base[0] + self.cursor.tally.checked
        return checked

    def stop(self, reason: Stop) -> None:
        """Stop feeding (the first reason wins); the control loop winds down and releases."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._wake.set()
        self._room.set()

    def summary(self) -> str:
        """One line for systemd's STATUS=."""
        total = max(self.total, self.checked)
        share = f"{100 * self.checked / total:.1f}%" if total else "-"
        rate = f", {self.rate.rate_per_s:.0f}/s" if self.rate.rate_per_s else ""
        return f"sweep {self.merchant.slug} {share} ({self.checked}/{total}{rate})"

    # -- the task --------------------------------------------------------------------------

    async def run(self) -> None:
        """Feed and checkpoint until the sweep stops; leaves the row released (or lost)."""
        self._log.info("sweep.driving", cursor=self.cursor.checkpoint, windowed=self.windowed)
        feeder = asyncio.create_task(self._feed(), name=f"sweep-feed-{self.sweep_id}")
        try:
            await self._control()
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder

    def _max_in_flight(self) -> int:
        s = self.settings
        rate = self._expected_rate()
        if self.rate.rate_per_s:
            rate = min(rate, max(self.rate.rate_per_s, s.min_in_flight / s.in_flight_s))
        wanted = int(rate * s.in_flight_s)
        return max(s.min_in_flight, min(s.max_in_flight, wanted))

    def _expected_rate(self) -> float:
        rate, _ = self.services.config.host_rate_for(self.merchant.slug)
        return expected_rate_per_s(rate, len(self.merchant.hosts))

    async def _feed(self) -> None:
        q = self.services.db.queries["sweep_products_after"]
        after = self.cursor.checkpoint or ""
        while self.stop_reason is None:
            try:
                rows = await self.services.db.pool.fetch(
                    q, self.merchant.id, after, self.settings.page_size
                )
            except _DB_ERRORS as exc:
                self._log.warning("sweep.read_failed", error=str(exc))
                await asyncio.sleep(self.settings.checkpoint_s)
                continue
            if not rows:
                self._exhausted = True
                self._wake.set()
                return
            for row in rows:
                if not await self._submit(row):
                    return
            after = rows[-1]["product_id"]

    async def _submit(self, row: asyncpg.Record) -> bool:
        while self._in_flight >= self._limit and self.stop_reason is None:
            self._room.clear()
            await self._room.wait()
        if self.stop_reason is not None:
            return False
        job = job_from_row(
            ProductRow(row, self._extra),
            Lane.SWEEP,
            sweep_id=self.sweep_id,
            on_done=self._on_done,
            hold=self.flips.hold,
        )
        self.cursor.fed(job.state.product_id)
        self._in_flight += 1
        try:
            while not await self.engine.submit(job):
                # Still queued from an earlier run of this sweep in this process: wait for it
                # to start, then queue our own check.
                await asyncio.sleep(0.2)
                if self.stop_reason is not None:
                    break
            else:
                return True
        except FrontierClosedError:
            self.stop(Stop.DRAIN)
        # Never queued: it stays unfinished, so the checkpoint cannot pass it.
        self._in_flight -= 1
        return False

    # -- engine callbacks (run inside the engine's workers) --------------------------------

    def _on_done(self, job: VerifyJob, decision: Decision) -> None:
        product_id = job.state.product_id
        if not self.cursor.is_outstanding(product_id):
            return
        self._in_flight -= 1
        self._last_done_s = time.monotonic()
        if self._in_flight <= self._limit * 3 // 4:
            # Wake the feeder for a batch, not for every product: fewer task switches.
            self._room.set()
        verdict = verdict_of(decision, job.state.availability == "discontinued")
        self.breaker.observe(is_suspect(verdict))
        if not self.flips.keep(job, decision):
            self.cursor.finished(product_id, verdict)
        if self.breaker.tripped:
            self.stop(Stop.HALTED)
        elif self.stop_reason is not Stop.HALTED:
            self.flips.release()
        if self._exhausted and self._in_flight == 0:
            self._wake.set()

    # -- control ---------------------------------------------------------------------------

    async def _control(self) -> None:
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        saved_at = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.checkpoint_s)
            self._wake.clear()
            self._check_window()
            self._check_stalled()
            if self._exhausted and self._in_flight == 0 and self.stop_reason is None:
                if self.breaker.tripped:
                    self.stop(Stop.HALTED)
                else:
                    self.flips.release(everything=True)
                    if not self.flips.applying:
                        self.stop(Stop.DONE)
            if self.stop_reason is None and loop.time() - saved_at < self.settings.checkpoint_s:
                continue
            state = await self._checkpoint()
            saved_at = loop.time()
            self._limit = self._max_in_flight()
            if state is None:
                self.stop(Stop.LEASE_LOST)
                self._log.warning("sweep.lease_lost")
                return
            if state != "running":
                self.stop(Stop.EXTERNAL)
            if state == "cancelled":
                # Nothing will resume it: what is still in flight need not be waited for.
                await self._release()
                return
            if self.stop_reason is None:
                continue
            if deadline is None:
                deadline = loop.time() + self.settings.wind_down_s
                if self.stop_reason is Stop.HALTED:
                    self.flips.drop()
            idle = self._in_flight == 0 and not self.flips.applying
            at_once = self.stop_reason in (Stop.DRAIN, Stop.STALLED)
            if idle or at_once or loop.time() >= deadline:
                await self._release()
                return

    def _check_stalled(self) -> None:
        idle_s = time.monotonic() - self._last_done_s
        if self.stop_reason is None and self._in_flight and idle_s > self.settings.stall_s:
            # A check the engine lost (e.g. a failed result write) would hold the checkpoint
            # and the end of the sweep forever: start over from the checkpoint instead.
            self._log.warning("sweep.stalled", in_flight=self._in_flight, idle_s=round(idle_s))
            self.stop(Stop.STALLED)

    def _check_window(self) -> None:
        if not self.windowed or self.stop_reason is not None:
            return
        schedule = self._schedule()
        if schedule is None:
            return
        window = current_window(schedule, self.clock(), self.started_at)
        if window is None:
            self.stop(Stop.WINDOW)
        else:
            self.window_end = window.end

    def _progress(self) -> tuple[Any, ...]:
        # Counted here rather than per product: the counter's lock costs on the hot path.
        self.services.metrics.sweep_checked.inc(self.breaker.observed - self._counted)
        self._counted = self.breaker.observed
        tally = self.cursor.tally
        checked, changed, discontinued, errors = self._base
        checked += tally.checked
        self.total = max(self.total, checked)
        rate = self.rate.sample(time.monotonic(), checked)
        shown_rate = rate if rate is not None else self._expected_rate()
        self.eta = eta_seconds(self.total - checked, shown_rate)
        left = None
        if self.windowed and self.window_end is not None:
            left = (self.window_end - self.clock()).total_seconds()
        warning = spill_warning(self.eta, left, shown_rate)
        if warning is not None and self.warning is None:
            self._log.warning("sweep.will_spill_over", warning=warning)
        self.warning = warning
        return (
            self.sweep_id,
            self.settings.owner,
            self.cursor.checkpoint,
            checked,
            changed + tally.changed,
            discontinued + tally.discontinued,
            errors + tally.errors,
            len(self.flips),
            self.total,
            self.eta,
            self.warning,
            rate,
            self.window_end,
        )

    async def _checkpoint(self) -> str | None:
        try:
            state: str | None = await self.services.db.pool.fetchval(
                self.services.db.queries["sweep_checkpoint"],
                *self._progress(),
                self.settings.lease_s,
            )
        except _DB_ERRORS as exc:
            # Keep going: the lease outlives a few failed checkpoints.
            self._log.warning("sweep.checkpoint_failed", error=str(exc))
            return "running"
        return state

    async def _release(self) -> None:
        reason = self.stop_reason
        target = {
            Stop.DONE: "done",
            Stop.WINDOW: "waiting_window",
            Stop.HALTED: "halted",
        }.get(reason or Stop.DRAIN, "running")
        for attempt in range(3):
            try:
                row = await self.services.db.pool.fetchrow(
                    self.services.db.queries["sweep_release"],
                    *self._progress(),
                    target,
                    SUSPECTED_OUTAGE,
                    self.clock(),
                )
                break
            except _DB_ERRORS as exc:
                # The lease expires by itself; the last periodic checkpoint stays valid.
                self._log.error("sweep.release_failed", error=str(exc), attempt=attempt + 1)
                await asyncio.sleep(self.settings.checkpoint_s)
        else:
            return
        if row is None:
            self._log.warning("sweep.lease_lost")
            return
        metrics = self.services.metrics
        state = row["state"]
        if state == "halted" and reason is Stop.HALTED:
            metrics.sweeps_halted.inc()
            self._log.error(
                "sweep.halted",
                reason=SUSPECTED_OUTAGE,
                suspect_share=round(self.breaker.suspect_share, 3),
                cursor=row["cursor"],
            )
        elif state == "done":
            metrics.sweep_last_success.set(time.time())
        self._log.info(
            "sweep.released",
            state=state,
            reason=reason.value if reason else None,
            checked=row["checked"],
            total=row["total"],
            cursor=row["cursor"],
        )
