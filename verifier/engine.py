"""The verification engine: feeds the frontier from the database and verifies product pages.

Feeders claim durable work with leases (so several daemons can share one database): on-demand
requests (woken by LISTEN/NOTIFY, with a polling fallback) and products marked due in the
``changed`` lane. Sweeps submit their jobs through :meth:`VerificationEngine.submit`. The worker
fetches, parses, decides (``verifier.outcomes``) and hands the decision to the batched
:class:`~verifier.results.ResultWriter`. Leases of claimed work are renewed while it is queued
or in flight; work claimed but not started is handed back on a graceful stop, and work of a
daemon that died is reclaimed when its leases expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from ingest.context import Services
from verifier.config import Config
from verifier.exceptions import CatalogVerifierError
from verifier.fetcher import Fetcher, FetchOptions
from verifier.frontier import Frontier, FrontierClosedError
from verifier.hostslot import Feedback, HostLimits, Job, Lane, WorkerReport, host_key
from verifier.outcomes import Decision, Policy, ProductState, decide
from verifier.parser import parse_product_page
from verifier.records import record
from verifier.results import ResultRecord, ResultWriter

log = structlog.get_logger(__name__)

WAKE_CHANNEL = "cv_verify"
LANE_CAPACITY = {Lane.ON_DEMAND: 10_000, Lane.CHANGED: 2_000, Lane.SWEEP: 2_000}
ON_DEMAND_POLICY = Policy(max_attempts=3, retry_base_s=2.0, retry_cap_s=60.0)
CHANGED_POLICY = Policy(max_attempts=5, retry_base_s=30.0, retry_cap_s=3600.0)
SWEEP_POLICY = Policy(max_attempts=2, retry_base_s=5.0, retry_cap_s=60.0, confirm_not_found=True)
POLICIES = {
    Lane.ON_DEMAND: ON_DEMAND_POLICY,
    Lane.CHANGED: CHANGED_POLICY,
    Lane.SWEEP: SWEEP_POLICY,
}


@record
class VerifyJob:
    """One product to verify, with what the worker needs to decide its outcome."""

    merchant_id: int
    slug: str
    hosts: tuple[str, ...]
    currency: str
    state: ProductState
    etag: str | None
    last_modified: str | None
    lane: Lane
    request_id: uuid.UUID | None = None
    requested_at: datetime | None = None
    claimed_at: datetime | None = None
    sweep_id: uuid.UUID | None = None
    # Called with every final decision, after it is written (or held).
    on_done: Callable[[VerifyJob, Decision], None] | None = None
    # Asked before a final decision is written; True holds it back (the sweep's circuit
    # breaker), and the caller may later write it with VerificationEngine.record().
    hold: Callable[[VerifyJob, Decision], bool] | None = None

    @property
    def key(self) -> tuple[int, str]:
        return (self.merchant_id, self.state.product_id)


def job_from_row(
    row: Mapping[str, Any], lane: Lane, hosts: tuple[str, ...] | None = None, **extra: Any
) -> VerifyJob:
    """A job from a claim query's row (product columns plus slug, hosts, currency).

    ``hosts``: the merchant's hosts when the row leaves them out (see merchant_hosts). A row
    whose ``pending_is_data`` is true has its pending observation equal to its data.
    """
    data = row["data"] or {}
    state = ProductState(
        product_id=row["product_id"],
        url=row["url"],
        status=row["status"],
        availability=row["availability"],
        data=data,
        pending=data if row.get("pending_is_data") else row["pending"],
        content_sha256=row["content_sha256"],
        not_found_count=row["not_found_count"],
        attempts=row["attempts"],
    )
    verified = row["status"] == "verified"
    return VerifyJob(
        merchant_id=row["merchant_id"],
        slug=row["slug"],
        hosts=hosts if hosts is not None else tuple(row["hosts"]),
        currency=row["currency"],
        state=state,
        # validators only make sense against a stored snapshot
        etag=row["etag"] if verified else None,
        last_modified=row["last_modified"] if verified else None,
        lane=lane,
        **extra,
    )


def merchant_hosts(rows: Sequence[Mapping[str, Any]]) -> dict[int, tuple[str, ...]]:
    """Each merchant's hosts from claimed rows that state them once per merchant."""
    return {row["merchant_id"]: tuple(row["hosts"]) for row in rows if row["hosts"] is not None}


def fetch_options(config: Config) -> FetchOptions:
    """The fetcher's options from the [crawler] section."""
    crawler = config.crawler
    return FetchOptions(
        user_agent=crawler.user_agent,
        timeout_s=crawler.timeout_s,
        connect_timeout_s=min(10.0, crawler.timeout_s),
        max_body_bytes=crawler.max_body_bytes,
        allow_private_networks=crawler.allow_private_networks,
        respect_robots_txt=crawler.respect_robots_txt,
        max_connections=crawler.concurrency,
        max_connections_per_host=crawler.per_host_concurrency,
    )


def _feedback(outcome: str, http_status: int | None, retry_after_s: float | None) -> WorkerReport:
    if outcome == "rate_limited":
        return WorkerReport(Feedback.RATE_LIMITED, retry_after_s)
    if outcome == "fetch_error" and (http_status is None or http_status >= 500):
        return WorkerReport(Feedback.ERROR)
    return WorkerReport(Feedback.OK)


class VerificationEngine:
    """The ``verification`` daemon component."""

    name = "verification"

    def __init__(
        self,
        services: Services,
        *,
        owner: str | None = None,
        lease_s: float | None = None,
        poll_s: float | None = None,
        fetcher: Fetcher | None = None,
        lane_capacity: Mapping[Lane, int] | None = None,
        policies: Mapping[Lane, Policy] | None = None,
    ) -> None:
        self.services = services
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_s = lease_s or services.config.daemon.work_lease_s
        self.poll_s = poll_s or services.config.daemon.poll_interval_s
        self._fetcher = fetcher
        # Retry and confirmation rules per lane (tests shorten the delays).
        self._policies = {**POLICIES, **(policies or {})}
        self._rng = random.Random()
        # The merchant (slug) whose limits each host gets, and each slug's limits until a reload.
        self._host_merchants: dict[str, str] = {}
        self._merchant_limits: dict[str, HostLimits] = {}
        self._claimed_requests: set[uuid.UUID] = set()
        self._claimed_changed: set[tuple[int, str]] = set()
        self._changed_per_merchant: Counter[int] = Counter()
        self._changed_finished = asyncio.Event()
        self._wake = asyncio.Event()
        self._stopping = False
        self._started = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self.writer = ResultWriter(services.db, self.owner)
        config = services.config
        self.frontier: Frontier[VerifyJob] = Frontier(
            self._work,
            concurrency=config.crawler.concurrency,
            default_limits=HostLimits(
                config.crawler.per_host_rate, config.crawler.per_host_concurrency
            ),
            limits_for=self._limits_for,
            lane_capacity=lane_capacity or LANE_CAPACITY,
        )
        self._lane_capacity = dict(lane_capacity or LANE_CAPACITY)
        services.extras["verification_engine"] = self

    # -- component -----------------------------------------------------------------------

    async def run(self) -> None:
        """Fetch and verify until cancelled."""
        async with contextlib.AsyncExitStack() as stack:
            if self._fetcher is None:
                self._fetcher = await stack.enter_async_context(
                    Fetcher(fetch_options(self.services.config))
                )
            await self.writer.start()
            stack.push_async_callback(self.writer.close)
            listener = await self._listen()
            if listener is not None:
                stack.push_async_callback(self._unlisten, listener)
            self._started.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.frontier.run(), name="frontier")
                tg.create_task(self._feed_on_demand(), name="feed-on-demand")
                tg.create_task(self._feed_changed(), name="feed-changed")
                tg.create_task(self._renew_leases(), name="lease-renewal")
                tg.create_task(self._update_gauges(), name="lane-gauges")

    async def drain(self, timeout_s: float) -> None:
        """Stop claiming, let in-flight fetches finish, hand queued work back to the database."""
        self._stopping = True
        self._wake.set()
        returned = await self.frontier.drain(timeout_s)
        requests = [j.payload.request_id for j in returned if j.payload.request_id is not None]
        changed = [j.payload.key for j in returned if j.lane == Lane.CHANGED]
        q = self.services.db.queries
        try:
            async with self.services.db.pool.acquire() as conn:
                if requests:
                    await conn.execute(q["release_on_demand"], requests, self.owner)
                if changed:
                    await conn.execute(
                        q["release_changed"],
                        [k[0] for k in changed],
                        [k[1] for k in changed],
                        self.owner,
                    )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            # The leases expire by themselves; another daemon picks the work up then.
            log.warning("verification.hand_back_failed", error=str(exc))
        log.info("verification.drained", handed_back=len(returned))

    def reload(self, config: Config) -> None:
        """Apply new per-host rates to known hosts."""
        self._merchant_limits.clear()
        self.frontier.set_limits_for(self._limits_for)

    def status(self) -> str | None:
        depth = {lane.label: self.frontier.depth(lane) for lane in Lane}
        return f"queued {depth['on_demand']}/{depth['changed']}/{depth['sweep']}"

    # -- intake --------------------------------------------------------------------------

    async def submit(self, job: VerifyJob) -> bool:
        """Queue a job (waits while its lane is full); False if that product is already queued."""
        host = host_key(job.state.url)
        self._host_merchants[host] = job.slug
        return await self.frontier.put(Job(host, job.lane, job.key, job))

    def wake(self) -> None:
        """Look for new on-demand work now (same-process shortcut for NOTIFY)."""
        self._wake.set()

    def _limits_for(self, host: str) -> HostLimits:
        # "": a host no job named yet, under the [crawler] defaults (no slug is empty)
        slug = self._host_merchants.get(host, "")
        limits = self._merchant_limits.get(slug)
        if limits is None:
            rate, concurrency = self.services.config.host_rate_for(slug)
            limits = self._merchant_limits[slug] = HostLimits(rate, concurrency)
        return limits

    async def _listen(self) -> asyncpg.Connection | None:
        try:
            conn = await self.services.db.pool.acquire()
            await conn.add_listener(WAKE_CHANNEL, self._on_wake)
            return conn
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            log.warning("verification.listen_failed", error=str(exc), fallback="polling")
            return None

    def _on_wake(self, *_: object) -> None:
        self._wake.set()

    async def _unlisten(self, conn: asyncpg.Connection) -> None:
        with contextlib.suppress(asyncpg.InterfaceError, OSError):
            await conn.remove_listener(WAKE_CHANNEL, self._on_wake)
        await self.services.db.pool.release(conn)

    async def _claim(self, query: str, limit: int, *extra: object) -> list[asyncpg.Record]:
        try:
            async with self.services.db.pool.acquire() as conn:
                rows: list[asyncpg.Record] = await conn.fetch(
                    self.services.db.queries[query], limit, self.owner, self.lease_s, *extra
                )
                return rows
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            log.warning("verification.claim_failed", query=query, error=str(exc))
            return []

    async def _feed_on_demand(self) -> None:
        while not self._stopping:
            rows = await self._claim("claim_on_demand", 100)
            hosts = merchant_hosts(rows)
            for row in rows:
                job = job_from_row(
                    row,
                    Lane.ON_DEMAND,
                    hosts[row["merchant_id"]],
                    request_id=row["request_id"],
                    requested_at=row["requested_at"],
                )
                self._claimed_requests.add(row["request_id"])
                await self._submit_claimed(job)
            if len(rows) < 100:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
                self._wake.clear()

    def _merchant_share(self) -> int:
        """Changed-lane jobs one merchant may hold: ~30 s of work, a quarter of the lane at most."""
        rate = self.services.config.crawler.per_host_rate
        return max(10, min(int(rate * 30), self._lane_capacity[Lane.CHANGED] // 4))

    async def _feed_changed(self) -> None:
        # Claims are spread over merchants and capped per merchant, so one merchant's backlog
        # never fills the lane while another merchant's changes wait.
        capacity = self._lane_capacity[Lane.CHANGED]
        # While the lane still holds this much work, wait for this much room: claims then
        # come in useful batches instead of one small query per finished job.
        low_water = max(1, capacity // 8)
        while not self._stopping:
            depth = self.frontier.depth(Lane.CHANGED)
            room = capacity - depth
            if room < low_water and depth >= low_water:
                await self._wait_changed_finished()
                continue
            share = self._merchant_share()
            full = [m for m, n in self._changed_per_merchant.items() if n >= share]
            want = min(room, 500)
            rows = await self._claim("claim_changed", want, share, full) if want > 0 else []
            if full and len(rows) < want:
                # No other merchant has due work: the capped ones may use the free room.
                rows += await self._claim("claim_changed", want - len(rows), want, [])
            hosts = merchant_hosts(rows)
            for row in rows:
                job = job_from_row(
                    row, Lane.CHANGED, hosts[row["merchant_id"]], claimed_at=row["claimed_at"]
                )
                self._claimed_changed.add(job.key)
                self._changed_per_merchant[job.merchant_id] += 1
                await self._submit_claimed(job)
            if not rows:
                await self._wait_changed_finished()

    async def _wait_changed_finished(self) -> None:
        # Woken as soon as a changed job finishes (room), else polls for new markers.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed_finished.wait(), timeout=self.poll_s)
        self._changed_finished.clear()

    async def _submit_claimed(self, job: VerifyJob) -> None:
        # stopping: the lease expires or drain hands it back
        with contextlib.suppress(FrontierClosedError):
            await self.submit(job)

    async def _renew_leases(self) -> None:
        q = self.services.db.queries
        while True:
            await asyncio.sleep(self.lease_s / 3)
            requests = list(self._claimed_requests)
            changed = list(self._claimed_changed)
            try:
                async with self.services.db.pool.acquire() as conn:
                    if requests:
                        await conn.execute(
                            q["renew_on_demand_leases"], requests, self.owner, self.lease_s
                        )
                    if changed:
                        await conn.execute(
                            q["renew_changed_leases"],
                            [k[0] for k in changed],
                            [k[1] for k in changed],
                            self.owner,
                            self.lease_s,
                        )
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.warning("verification.lease_renewal_failed", error=str(exc))

    async def _update_gauges(self) -> None:
        metrics = self.services.metrics
        tick = 0
        while True:
            for lane in Lane:
                metrics.lane_depth.labels(lane.label).set(self.frontier.depth(lane))
            metrics.in_flight.set(self.frontier.in_flight())
            metrics.hosts_backing_off.set(self.frontier.hosts_backing_off())
            if tick % 15 == 0:
                with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    async with self.services.db.pool.acquire() as conn:
                        row = await conn.fetchrow(self.services.db.queries["lane_backlog"])
                    metrics.lane_due.labels("on_demand").set(row["on_demand"])
                    metrics.lane_due.labels("changed").set(row["changed"])
            tick += 1
            await asyncio.sleep(1.0)

    # -- the worker ----------------------------------------------------------------------

    async def _work(self, frontier_job: Job[VerifyJob]) -> WorkerReport:
        job = frontier_job.payload
        structlog.contextvars.bind_contextvars(
            merchant=job.slug, product=job.state.product_id, lane=job.lane.label
        )
        try:
            return await self._verify(job)
        except CatalogVerifierError as exc:
            # The result could not be written: the lease expires and the work is claimed again.
            log.error("verification.failed", error=str(exc))
            return WorkerReport(Feedback.OK)
        except Exception as exc:
            # A bug must not loop on one page forever: record it as a final failure.
            log.exception("verification.crashed")
            decision = Decision(
                "fetch_error",
                http_status=None,
                error=f"internal error: {type(exc).__name__}",
                counts_as_failure=True,
                not_found_count=job.state.not_found_count,
            )
            with contextlib.suppress(CatalogVerifierError):
                await self.record(job, decision)
            return WorkerReport(Feedback.OK)
        finally:
            if job.request_id is not None:
                self._claimed_requests.discard(job.request_id)
            if job.lane == Lane.CHANGED:
                self._claimed_changed.discard(job.key)
                self._changed_per_merchant[job.merchant_id] -= 1
                if self._changed_per_merchant[job.merchant_id] <= 0:
                    del self._changed_per_merchant[job.merchant_id]
                self._changed_finished.set()
            structlog.contextvars.unbind_contextvars("merchant", "product", "lane")

    async def _verify(self, job: VerifyJob) -> WorkerReport:
        assert self._fetcher is not None
        metrics = self.services.metrics
        started_at = datetime.now(UTC)
        fetch = await self._fetcher.fetch(
            job.state.url, job.hosts, etag=job.etag, last_modified=job.last_modified
        )
        metrics.fetches_by_outcome[fetch.outcome].inc()
        metrics.fetch_duration.observe(fetch.elapsed_s)
        metrics.fetched_bytes.inc(fetch.bytes_read)
        parsed = None
        if fetch.outcome == "ok" and fetch.body is not None:
            parsed = parse_product_page(fetch.body, fetch.url, fetch.content_type)
        decision = decide(
            job.state,
            fetch,
            parsed,
            hosts=job.hosts,
            currency=job.currency,
            policy=self._policies[job.lane],
            rng=self._rng,
        )
        held = decision.final and job.hold is not None and job.hold(job, decision)
        if not held:
            await self.record(job, decision, started_at)
        log.debug("verification.done", outcome=decision.outcome, final=decision.final)
        if decision.final:
            metrics.verifications_by_outcome[decision.outcome].inc()
            if job.requested_at is not None:
                metrics.on_demand_latency.observe(
                    max(0.0, (datetime.now(UTC) - job.requested_at).total_seconds())
                )
        if job.lane == Lane.SWEEP and not decision.final:
            self._retry_sweep_job(job, decision)
        elif job.on_done is not None:
            job.on_done(job, decision)
        return _feedback(fetch.outcome, fetch.http_status, fetch.retry_after_s)

    async def record(
        self, job: VerifyJob, decision: Decision, started_at: datetime | None = None
    ) -> None:
        """Write one decision durably (batched with others); raises DatabaseError.

        ``started_at`` (when the fetch began) bounds which tag observations the page confirmed:
        one that arrived later stays pending and keeps the product due.
        """
        await self.writer.write(
            ResultRecord(
                merchant_id=job.merchant_id,
                product_id=job.state.product_id,
                lane=job.lane.label,
                decision=decision,
                claimed_at=job.claimed_at or started_at,
                request_id=job.request_id,
                sweep_id=job.sweep_id,
            )
        )

    def _retry_sweep_job(self, job: VerifyJob, decision: Decision) -> None:
        """Sweeps keep no durable per-product queue: their retries wait in memory."""
        retry = replace(
            job,
            state=replace(
                job.state,
                attempts=job.state.attempts + 1,
                not_found_count=decision.not_found_count,
            ),
        )
        loop = asyncio.get_running_loop()

        def requeue() -> None:
            task = loop.create_task(self._submit_claimed(retry))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        loop.call_later(decision.retry_in_s or 0.0, requeue)
