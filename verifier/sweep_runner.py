"""The sweep scheduler: the daemon component that starts, resumes and drives sweeps.

Every ``poll_s`` it reads each merchant's schedule (config file plus the merchant's override),
its last sweep start and its active sweep, and

* starts a scheduled sweep when one is due (``verifier.schedule.is_due``) and no sweep began or
  finished inside the current window (the database refuses a second active sweep anyway);
* resumes a sweep waiting for its window when the window opens, and retries a halted one when a
  window opens after the halt (not when the schedule is disabled);
* takes the lease of every running sweep nobody holds (new, resumed by hand, or left by a daemon
  that stopped or died: leases expire after ``lease_s`` without renewal) and drives it with a
  :class:`~verifier.sweep_driver.SweepDriver`.

Manual actions (API, CLI) only change rows, so they work without a daemon and reach the driver
at its next checkpoint. ``reload`` needs no work: schedules and rates are read from the current
config at every poll, and running sweeps keep their progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from ingest.context import Services
from verifier.config import Config
from verifier.engine import VerificationEngine
from verifier.exceptions import CatalogVerifierError, StartupError
from verifier.schedule import SweepSchedule, current_window, is_due, next_window
from verifier.sweep_driver import SweepDriver
from verifier.sweep_model import DriverSettings, Stop, SweepMerchant
from verifier.sweep_progress import BreakerPolicy
from verifier.sweep_schedules import effective
from verifier.sweeps import SweepStore, start_estimate

log = structlog.get_logger(__name__)

_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, CatalogVerifierError)


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


def orphaned(owner: str | None) -> bool:
    """Whether a lease owner ("host:pid:tag") is a process of this host that no longer runs.

    A daemon restarted after a crash then resumes its sweeps at once instead of waiting for
    their leases to expire; owners on other hosts are left to expiry.
    """
    if owner is None:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, run by another user
    return False


class SweepScheduler:
    """The ``sweeps`` daemon component."""

    name = "sweeps"

    def __init__(
        self,
        services: Services,
        *,
        engine: VerificationEngine | None = None,
        clock: Callable[[], datetime] = utc_now,
        owner: str | None = None,
        poll_s: float = 1.0,
        lease_s: float = 30.0,
        checkpoint_s: float = 1.0,
        wind_down_s: float = 30.0,
        breaker: BreakerPolicy | None = None,
    ) -> None:
        self.services = services
        self.clock = clock
        self.poll_s = poll_s
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.settings = DriverSettings(
            owner=self.owner,
            lease_s=lease_s,
            checkpoint_s=checkpoint_s,
            wind_down_s=wind_down_s,
            breaker=breaker or BreakerPolicy(),
        )
        self.store = SweepStore(services.db)
        self._engine = engine
        self._drivers: dict[uuid.UUID, tuple[SweepDriver, asyncio.Task[None]]] = {}
        self._schedules: dict[int, SweepSchedule | None] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        services.extras["sweep_scheduler"] = self

    # -- component -----------------------------------------------------------------------

    async def run(self) -> None:
        """Poll and drive sweeps until cancelled (a cancel leaves leases to expire)."""
        if self._engine is None:
            self._engine = self.services.extras.get("verification_engine")
            if self._engine is None:
                raise StartupError("the sweep scheduler needs the verification engine")
        try:
            while not self._stopping:
                try:
                    await self.tick()
                except _DB_ERRORS as exc:
                    log.warning("sweeps.poll_failed", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
                self._wake.clear()
        finally:
            tasks = [task for _, task in self._drivers.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self, timeout_s: float) -> None:
        """Stop starting sweeps; save every driven sweep's progress and hand it back."""
        self._stopping = True
        self._wake.set()
        drivers = list(self._drivers.values())
        for driver, _ in drivers:
            driver.stop(Stop.DRAIN)
        tasks = [task for _, task in drivers]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=max(timeout_s, 0.001))
            for task in late:
                task.cancel()
        log.info("sweeps.drained", handed_back=len(tasks))

    def reload(self, config: Config) -> None:
        """Schedules and rates are read at every poll: look at them again now."""
        self._wake.set()

    def status(self) -> str | None:
        """Progress of the sweeps this daemon drives."""
        lines = [driver.summary() for driver, _ in self._drivers.values()]
        return "; ".join(lines) if lines else None

    def wake(self) -> None:
        """Poll now (a sweep was started or resumed in this process)."""
        self._wake.set()

    def driving(self, sweep_id: uuid.UUID) -> SweepDriver | None:
        """The driver of a sweep this daemon runs now, if any."""
        entry = self._drivers.get(sweep_id)
        return entry[0] if entry else None

    # -- one poll --------------------------------------------------------------------------

    async def tick(self) -> None:
        """Start due sweeps, resume those whose window opened, claim unowned running ones."""
        db = self.services.db
        rows = await db.pool.fetch(db.queries["sweep_merchants"])
        now = self.clock()
        for row in rows:
            if self._stopping:
                return
            schedule = self._schedule_of(row)
            self._schedules[row["id"]] = schedule
            sweep_id = row["sweep_id"]
            if sweep_id is None:
                if schedule is not None and is_due(schedule, row["last_started_at"], now):
                    await self._start_scheduled(row, schedule, now)
            elif sweep_id in self._drivers:
                continue
            elif row["state"] in ("waiting_window", "halted"):
                if schedule is not None and schedule.enabled:
                    await self._resume_in_window(row, schedule, now)
            elif row["state"] == "running":
                owner = row["lease_owner"]
                if row["lease_free"] or owner == self.owner:
                    await self._claim(row, sweep_id)
                elif orphaned(owner):
                    log.info("sweep.taking_over", sweep_id=str(sweep_id), dead_owner=owner)
                    await self._claim(row, sweep_id, dead_owner=owner)
        self._update_metrics()

    def _schedule_of(self, row: Mapping[str, Any]) -> SweepSchedule | None:
        config = self.services.config
        try:
            return effective(config, row["slug"], row["sweep_override"]).schedule
        except CatalogVerifierError as exc:
            log.error("sweeps.bad_override", merchant=row["slug"], error=str(exc))
        try:
            return effective(config, row["slug"], None).schedule
        except CatalogVerifierError as exc:
            log.error("sweeps.bad_schedule", merchant=row["slug"], error=str(exc))
            return None

    async def _start_scheduled(
        self, row: Mapping[str, Any], schedule: SweepSchedule, now: datetime
    ) -> None:
        window = next_window(schedule, row["last_started_at"], now)
        total = await self.store.count_products(row["id"])
        eta, warning = start_estimate(
            self.services.config, row["slug"], len(row["hosts"]), total, now, window.end
        )
        sweep = await self.store.insert(
            row["id"],
            trigger="schedule",
            now=now,
            total=total,
            windowed=True,
            window_end=window.end,
            eta=eta,
            warning=warning,
            unless_since=window.start,
        )
        if sweep is None:
            return
        log.info(
            "sweep.started",
            merchant=row["slug"],
            sweep_id=str(sweep["id"]),
            trigger="schedule",
            total=total,
            window_end=window.end.isoformat() if window.end else None,
        )
        if warning is not None:
            log.warning("sweep.will_spill_over", merchant=row["slug"], warning=warning)
        await self._claim(row, sweep["id"])

    async def _resume_in_window(
        self, row: Mapping[str, Any], schedule: SweepSchedule, now: datetime
    ) -> None:
        window = current_window(schedule, now, row["started_at"])
        if window is None:
            return
        halted_at = row["halted_at"]
        if row["state"] == "halted" and halted_at is not None and halted_at >= window.start:
            return  # halted in this very window: wait for the next one or an operator
        db = self.services.db
        resumed = await db.pool.fetchrow(
            db.queries["sweep_resume_window"],
            row["sweep_id"],
            [row["state"]],
            window.end if row["windowed"] else None,
        )
        if resumed is not None:
            log.info(
                "sweep.resumed", merchant=row["slug"], sweep_id=str(row["sweep_id"]), by="window"
            )
            await self._claim(row, row["sweep_id"])

    async def _claim(
        self, merchant: Mapping[str, Any], sweep_id: uuid.UUID, dead_owner: str | None = None
    ) -> None:
        assert self._engine is not None
        db = self.services.db
        if dead_owner is None:
            row = await db.pool.fetchrow(
                db.queries["sweep_claim"], sweep_id, self.owner, self.settings.lease_s
            )
        else:
            row = await db.pool.fetchrow(
                db.queries["sweep_take_over"],
                sweep_id,
                self.owner,
                dead_owner,
                self.settings.lease_s,
            )
        if row is None:
            return  # another daemon was faster
        left = await db.pool.fetchval(
            db.queries["sweep_count_after"], merchant["id"], row["cursor"] or ""
        )
        sweep = {**dict(row), "total": row["checked"] + left}
        info = SweepMerchant(
            merchant["id"], merchant["slug"], tuple(merchant["hosts"]), merchant["currency"]
        )
        merchant_id = merchant["id"]
        driver = SweepDriver(
            self.services,
            self._engine,
            sweep,
            info,
            settings=self.settings,
            clock=self.clock,
            schedule=lambda: self._schedules.get(merchant_id),
        )
        task = asyncio.create_task(driver.run(), name=f"sweep-{sweep_id}")
        self._drivers[sweep_id] = (driver, task)
        task.add_done_callback(lambda t: self._driver_done(sweep_id, t))

    def _driver_done(self, sweep_id: uuid.UUID, task: asyncio.Task[None]) -> None:
        self._drivers.pop(sweep_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("sweep.driver_failed", sweep_id=str(sweep_id), exc_info=task.exception())
        self._update_metrics()
        self._wake.set()

    def _update_metrics(self) -> None:
        metrics = self.services.metrics
        drivers = [driver for driver, _ in self._drivers.values()]
        metrics.sweeps_running.set(len(drivers))
        metrics.sweep_products.set(sum(max(d.total, d.checked) for d in drivers))
        metrics.sweep_products_checked.set(sum(d.checked for d in drivers))
