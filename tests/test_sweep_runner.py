"""Sweeps end to end: real PostgreSQL, a real local shop, the real engine, a controlled clock."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from ingest.context import Services
from tests.daemon_process import DaemonProcess, start_daemon
from verifier.config import Config
from verifier.database import Database
from verifier.engine import VerificationEngine, VerifyJob
from verifier.hostslot import Lane
from verifier.merchants import Merchant, MerchantStore
from verifier.metrics import Metrics
from verifier.outcomes import Decision, Policy
from verifier.sweep_progress import SUSPECTED_OUTAGE, BreakerPolicy
from verifier.sweep_runner import SweepScheduler
from verifier.sweep_schedules import store_override
from verifier.sweeps import SweepStore

# A sweep confirms a 404 and retries errors after seconds; keep tests short.
FAST_SWEEP_POLICY = Policy(
    max_attempts=2, retry_base_s=0.05, retry_cap_s=0.1, confirm_not_found=True
)

ETAG = '"v1"'
# 02:10 UTC: ten minutes into the default test window (02:00, 1h).
IN_WINDOW = datetime(2030, 1, 7, 2, 10, tzinfo=UTC)


def tag_page(product_id: str, price: str) -> bytes:
    """A product page with the hidden cn_product_visited block."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'></head><body>"
        "<div class='cn_product_visited' style='display:none'>"
        f"<span class='product_id'>{product_id}</span><span class='name'>Mug</span>"
        f"<span class='unit_price'>{price}</span><span class='availability'>InStock</span>"
        "</div></body></html>"
    ).encode()


@dataclass
class CatalogShop:
    """Answers every /p/{id}: a tag page (304 for the stored ETag), or 404 in an outage."""

    hits: Counter[str] = field(default_factory=Counter)
    gone: bool = False
    gone_ids: set[str] = field(default_factory=set)
    price: str = "9.99"
    base: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        product_id = request.match_info["product_id"]
        self.hits[product_id] += 1
        if self.gone or product_id in self.gone_ids:
            return web.Response(status=404, text="no such page")
        if request.headers.get("If-None-Match") == ETAG:
            return web.Response(status=304, headers={"ETag": ETAG})
        body = tag_page(product_id, self.price)
        return web.Response(body=body, content_type="text/html", headers={"ETag": ETAG})


async def start_catalog_shop() -> tuple[CatalogShop, TestServer]:
    """A CatalogShop served on 127.0.0.1 (close the server when done)."""
    shop = CatalogShop()
    app = web.Application()
    app.router.add_get("/p/{product_id}", shop.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    shop.base = str(server.make_url("/"))
    return shop, server


@dataclass
class Clock:
    """The clock the scheduler reads; tests move it."""

    now: datetime = IN_WINDOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Env:
    db: Database
    shop: CatalogShop
    merchant: Merchant
    services: Services
    engine: VerificationEngine
    clock: Clock
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    schedulers: list[SweepScheduler] = field(default_factory=list)

    def scheduler(self, **options: Any) -> SweepScheduler:
        """Start a scheduler on the shared engine (a 'daemon'); stopped at teardown."""
        settings: dict[str, Any] = {
            "poll_s": 0.05,
            "lease_s": 5.0,
            "checkpoint_s": 0.1,
            "wind_down_s": 30.0,
            **options,
        }
        scheduler = SweepScheduler(self.services, engine=self.engine, clock=self.clock, **settings)
        self.schedulers.append(scheduler)
        self.tasks.append(asyncio.create_task(scheduler.run()))
        return scheduler

    async def add_products(self, count: int, *, verified: bool = True) -> list[str]:
        """Insert products 00001..count with a stored ETag (a sweep gets cheap 304s)."""
        await self.db.pool.execute(
            "INSERT INTO products (merchant_id, product_id, status, source, url, data, "
            "availability, etag) "
            "SELECT $1, id, CASE WHEN $4 THEN 'verified' ELSE 'unverified' END, 'page', "
            "$2 || id, jsonb_build_object('product_id', id, 'url', $2 || id, 'name', 'Mug', "
            "'unit_price', '9.99'), CASE WHEN $4 THEN 'in_stock' END, $3 "
            "FROM (SELECT lpad(g::text, 5, '0') AS id FROM generate_series(1, $5) g) s",
            self.merchant.id,
            self.shop.base + "p/",
            ETAG,
            verified,
            count,
        )
        return [f"{i:05d}" for i in range(1, count + 1)]

    async def sweep(self) -> asyncpg.Record:
        row = await SweepStore(self.db).latest(self.merchant.id)
        assert row is not None
        return row

    async def until(
        self, predicate: Callable[[asyncpg.Record], bool], timeout_s: float = 30.0
    ) -> asyncpg.Record:
        """Poll the latest sweep until `predicate` holds (deadline, not a sleep)."""
        deadline = time.monotonic() + timeout_s
        while True:
            row = await SweepStore(self.db).latest(self.merchant.id)
            if row is not None and predicate(row):
                return row
            assert time.monotonic() < deadline, dict(row) if row else "no sweep"
            await asyncio.sleep(0.02)


def make_config(**sweep: Any) -> Config:
    return Config.model_validate(
        {
            "crawler": {
                "allow_private_networks": True,
                "respect_robots_txt": False,
                "per_host_rate": 5000.0,
                "per_host_concurrency": 64,
                "concurrency": 64,
                "timeout_s": 5.0,
            },
            "sweep": {
                "enabled": True,
                "every": "1d",
                "start_time": "02:00",
                "window": "1h",
                "timezone": "UTC",
                **sweep,
            },
        }
    )


@pytest.fixture
async def env(database: Database) -> AsyncIterator[Env]:
    shop, server = await start_catalog_shop()
    merchant = await MerchantStore(database).create("shop-a", ["127.0.0.1"])
    services = Services(config=make_config(), db=database, metrics=Metrics())
    engine = VerificationEngine(
        services, poll_s=0.05, lease_s=5.0, policies={Lane.SWEEP: FAST_SWEEP_POLICY}
    )
    engine_task = asyncio.create_task(engine.run())
    test_env = Env(database, shop, merchant, services, engine, Clock())
    try:
        yield test_env
    finally:
        for scheduler in test_env.schedulers:
            await scheduler.drain(1.0)
        for task in test_env.tasks:
            task.cancel()
        await asyncio.gather(*test_env.tasks, return_exceptions=True)
        await engine.drain(2.0)
        engine_task.cancel()
        await asyncio.gather(engine_task, return_exceptions=True)
        await server.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Poll an async check until it holds."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_due_scheduled_sweep_starts_and_checks_every_product(env: Env) -> None:
    """Inside the window a scheduled sweep starts by itself and checks the whole catalog."""
    ids = await env.add_products(300)
    env.scheduler()
    row = await env.until(lambda r: r["state"] == "done")
    assert row["trigger"] == "schedule" and row["checked"] == 300 and row["total"] == 300
    assert row["finished_at"] is not None and row["lease_owner"] is None
    assert all(env.shop.hits[i] >= 1 for i in ids)
    assert row["cursor"] == ids[-1]


async def test_disabled_schedule_starts_no_sweep(env: Env) -> None:
    """With the schedule disabled, polling inside the window starts nothing."""
    env.services.config = make_config(enabled=False)
    await env.add_products(10)
    scheduler = SweepScheduler(env.services, engine=env.engine, clock=env.clock)
    await scheduler.tick()
    await scheduler.tick()
    assert await SweepStore(env.db).latest(env.merchant.id) is None


async def test_no_scheduled_sweep_outside_the_window(env: Env) -> None:
    """Outside the window nothing is due."""
    env.clock.now = IN_WINDOW.replace(hour=10)
    await env.add_products(10)
    scheduler = SweepScheduler(env.services, engine=env.engine, clock=env.clock)
    await scheduler.tick()
    assert await SweepStore(env.db).latest(env.merchant.id) is None


async def test_manual_start_outside_the_window_runs_to_the_end(env: Env) -> None:
    """A manual sweep runs at once and until done, whatever the window says."""
    env.services.config = make_config(enabled=False)
    env.clock.now = IN_WINDOW.replace(hour=10)
    await env.add_products(200)
    await SweepStore(env.db).start_manual(env.services.config, env.merchant.id, "shop-a", ["x"])
    env.scheduler()
    row = await env.until(lambda r: r["state"] == "done")
    assert row["trigger"] == "manual" and row["checked"] == 200


async def test_window_close_waits_and_next_window_resumes_without_skipping(env: Env) -> None:
    """5,000 products: the window closes midway (waiting_window), the next one finishes the
    catalog; every product is checked and none twice (the wind-down checkpoints exactly)."""
    ids = await env.add_products(5000)
    env.scheduler()
    await env.until(lambda r: r["checked"] >= 1000)
    env.clock.now = IN_WINDOW.replace(hour=3)  # the 02:00-03:00 window is over
    waiting = await env.until(lambda r: r["state"] == "waiting_window" and not r["lease_owner"])
    assert 1000 <= waiting["checked"] < 5000
    cursor = waiting["cursor"]
    assert all(env.shop.hits[i] >= 1 for i in ids if i <= cursor)
    before = sum(env.shop.hits.values())
    env.clock.now = IN_WINDOW.replace(hour=12)  # still closed: nothing moves
    await asyncio.sleep(0.3)
    assert sum(env.shop.hits.values()) == before
    env.clock.now = IN_WINDOW + timedelta(days=1)  # next day's window
    done = await env.until(lambda r: r["state"] == "done")
    assert done["id"] == waiting["id"] and done["checked"] == 5000
    assert all(env.shop.hits[i] >= 1 for i in ids)
    repeated = sum(n - 1 for n in env.shop.hits.values())
    assert repeated == 0
    # The same window's schedule does not start another sweep right after.
    count = await env.db.pool.fetchval("SELECT count(*) FROM sweeps")
    assert count == 1


async def test_killed_daemon_is_taken_over_from_its_checkpoint(env: Env) -> None:
    """A daemon dies mid-sweep (its engine and runner are cancelled, no drain): another one
    takes the expired lease over and finishes from the checkpoint; nothing is skipped and only
    work past the checkpoint is repeated."""
    ids = await env.add_products(4000)
    # Outside the window: the runners drive only the manual sweep, never a scheduled one.
    env.clock.now = IN_WINDOW.replace(hour=10)
    services_a = Services(config=env.services.config, db=env.db, metrics=Metrics())
    engine_a = VerificationEngine(
        services_a, poll_s=0.05, lease_s=5.0, policies={Lane.SWEEP: FAST_SWEEP_POLICY}
    )
    runner_a = SweepScheduler(
        services_a,
        engine=engine_a,
        clock=env.clock,
        owner="daemon-a",
        poll_s=0.05,
        lease_s=1.0,
        checkpoint_s=0.1,
    )
    daemon_a = [asyncio.create_task(engine_a.run()), asyncio.create_task(runner_a.run())]
    try:
        await SweepStore(env.db).start_manual(env.services.config, env.merchant.id, "shop-a", ["x"])
        await env.until(lambda r: r["checked"] >= 1000)
    finally:
        # the "crash": no drain, no hand-back (and, if the test fails, no stray daemon left)
        for task in daemon_a:
            task.cancel()
        await asyncio.gather(*daemon_a, return_exceptions=True)
    at_crash = await env.sweep()
    assert at_crash["state"] == "running" and at_crash["lease_owner"] == "daemon-a"
    assert at_crash["checked"] >= 1000
    hits_at_crash = Counter(env.shop.hits)
    env.scheduler(owner="daemon-b", lease_s=1.0)
    done = await env.until(lambda r: r["state"] == "done")
    assert done["checked"] == 4000
    assert all(env.shop.hits[i] >= 1 for i in ids)
    # Only products past the checkpoint are checked twice: those daemon A had in flight.
    repeated = [i for i in ids if env.shop.hits[i] > 1]
    assert all(i > at_crash["cursor"] for i in repeated)
    in_flight_at_crash = sum(1 for i in ids if hits_at_crash[i] and i > at_crash["cursor"])
    assert len(repeated) <= in_flight_at_crash + env.services.config.crawler.concurrency


async def test_site_outage_halts_the_sweep_and_discontinues_nothing(env: Env) -> None:
    """Every page answering 404 trips the breaker: halted, suspected site outage, and no
    product is discontinued; once the site is back a resume finishes the sweep."""
    ids = await env.add_products(600)
    env.shop.gone = True
    scheduler = env.scheduler()
    halted = await env.until(lambda r: r["state"] == "halted" and not r["lease_owner"])
    assert halted["halted_reason"] == SUSPECTED_OUTAGE and halted["discontinued"] == 0
    gone = await env.db.pool.fetchval(
        "SELECT count(*) FROM products WHERE availability = 'discontinued'"
    )
    assert gone == 0
    assert env.services.metrics.sweeps_halted._value.get() == 1
    assert scheduler.driving(halted["id"]) is None
    env.shop.gone = False
    await SweepStore(env.db).resume(env.merchant.id)
    done = await env.until(lambda r: r["state"] == "done")
    assert done["checked"] == 600 and done["discontinued"] == 0
    assert all(env.shop.hits[i] >= 1 for i in ids)


async def test_real_discontinuations_are_applied_when_the_site_is_healthy(env: Env) -> None:
    """A few gone products among many (below the share) are discontinued once vindicated."""
    await env.add_products(400)
    gone = {"00010", "00200", "00399"}
    env.shop.gone_ids = gone
    env.scheduler()
    done = await env.until(lambda r: r["state"] in ("done", "halted"))
    assert done["state"] == "done" and done["discontinued"] == 3
    rows = await env.db.pool.fetch(
        "SELECT product_id FROM products WHERE availability = 'discontinued' ORDER BY 1"
    )
    assert [r["product_id"] for r in rows] == sorted(gone)


async def test_pause_stops_feeding_and_resume_continues(env: Env) -> None:
    """A manual pause releases the sweep with its checkpoint; resume finishes it."""
    ids = await env.add_products(3000)
    env.scheduler()
    await env.until(lambda r: r["checked"] >= 500)
    await SweepStore(env.db).pause(env.merchant.id)
    paused = await env.until(lambda r: r["state"] == "paused" and not r["lease_owner"])
    before = sum(env.shop.hits.values())
    await asyncio.sleep(0.3)
    assert sum(env.shop.hits.values()) == before
    resumed = await SweepStore(env.db).resume(env.merchant.id)
    assert resumed["state"] == "running" and not resumed["windowed"]
    done = await env.until(lambda r: r["state"] == "done")
    assert done["id"] == paused["id"] and done["checked"] == 3000
    assert all(env.shop.hits[i] >= 1 for i in ids)


async def test_cancel_ends_the_sweep(env: Env) -> None:
    """A cancelled sweep stops and is not resumed by the schedule."""
    await env.add_products(3000)
    scheduler = env.scheduler()
    running = await env.until(lambda r: r["checked"] >= 300)
    await SweepStore(env.db).cancel(env.merchant.id)
    await eventually(lambda: _not_driving(scheduler, running["id"]))
    row = await env.sweep()
    assert row["state"] == "cancelled" and row["finished_at"] is not None
    assert row["checked"] < 3000 and row["lease_owner"] is None
    await scheduler.tick()
    assert (await env.sweep())["id"] == running["id"]


async def _not_driving(scheduler: SweepScheduler, sweep_id: Any) -> bool:
    return scheduler.driving(sweep_id) is None


async def test_sweep_changes_are_logged_with_the_sweep_id(env: Env) -> None:
    """Price changes found by a sweep land in the sync log under that sweep."""
    await env.add_products(20, verified=False)
    env.shop.price = "12.50"
    env.scheduler()
    done = await env.until(lambda r: r["state"] == "done")
    assert done["changed"] == 20
    rows, _ = await SweepStore(env.db).changes(env.merchant.id, done["id"], 100)
    prices = [r for r in rows if r["field"] == "unit_price"]
    assert len(prices) == 20 and prices[0]["new_value"] == "12.50"


async def test_slow_host_gets_a_spill_over_warning(env: Env) -> None:
    """At 1 product/s, 5,000 products cannot finish in a 50-minute window: a warning."""
    env.services.config = Config.model_validate(
        {
            **make_config().model_dump(),
            "crawler": {**make_config().crawler.model_dump(), "per_host_rate": 1.0},
        }
    )
    await env.add_products(5000)
    scheduler = SweepScheduler(env.services, engine=env.engine, clock=env.clock)
    with capture_logs() as logs:
        await scheduler.tick()
    row = await env.sweep()
    assert row["warning"] is not None and "will not finish" in row["warning"]
    assert row["eta_seconds"] == pytest.approx(5000.0)
    assert any(e["event"] == "sweep.will_spill_over" for e in logs)
    await scheduler.drain(1.0)


async def test_breaker_policy_rejects_a_sample_larger_than_the_window() -> None:
    """min_sample must fit in the judged window."""
    with pytest.raises(ValueError):
        BreakerPolicy(min_sample=500, window=200)


async def test_daemon_killed_mid_sweep_resumes_after_restart(
    database: Database, tmp_path: Path
) -> None:
    """The real daemon is SIGKILLed mid-sweep; the restarted daemon takes the dead one's lease
    over at once and finishes from the checkpoint: every product checked, none skipped."""
    shop, server = await start_catalog_shop()
    merchant = await MerchantStore(database).create("shop-a", ["127.0.0.1"])
    env = Env(database, shop, merchant, None, None, Clock())  # type: ignore[arg-type]
    ids = await env.add_products(2000)
    extra = (
        "[crawler]\nallow_private_networks = true\nrespect_robots_txt = false\n"
        "per_host_rate = 400.0\n[sweep]\nenabled = false\n"
    )
    dsn = database.dsn
    daemons: list[DaemonProcess] = []
    try:
        (tmp_path / "a").mkdir()
        first = start_daemon(tmp_path / "a", dsn=dsn, extra_config=extra)
        daemons.append(first)
        await asyncio.to_thread(first.wait_ready)
        await SweepStore(database).start_manual(Config(), merchant.id, "shop-a", ["127.0.0.1"])
        await env.until(lambda r: r["checked"] >= 300)
        first.signal(signal.SIGKILL)
        await asyncio.to_thread(first.proc.wait)
        at_kill = await env.sweep()
        assert at_kill["state"] == "running" and f":{first.proc.pid}:" in at_kill["lease_owner"]
        (tmp_path / "b").mkdir()
        second = start_daemon(tmp_path / "b", dsn=dsn, extra_config=extra)
        daemons.append(second)
        await asyncio.to_thread(second.wait_ready)
        done = await env.until(lambda r: r["state"] == "done", timeout_s=60)
        assert done["checked"] == 2000 and done["id"] == at_kill["id"]
        assert all(shop.hits[i] >= 1 for i in ids)
        assert all(i > at_kill["cursor"] for i in ids if shop.hits[i] > 1)
        assert any(e.get("event") == "sweep.taking_over" for e in second.log_events())
        assert await asyncio.to_thread(second.stop) == 0
    finally:
        for daemon in daemons:
            if daemon.proc.poll() is None:
                daemon.proc.kill()
                daemon.proc.wait()
        await server.close()


async def test_halted_sweep_retries_when_the_next_window_opens(env: Env) -> None:
    """A halted scheduled sweep is not retried in the window it halted in, but in the next."""
    ids = await env.add_products(400)
    env.shop.gone = True
    scheduler = env.scheduler()
    halted = await env.until(lambda r: r["state"] == "halted" and not r["lease_owner"])
    env.shop.gone = False
    await scheduler.tick()
    assert (await env.sweep())["state"] == "halted"
    env.clock.now = IN_WINDOW + timedelta(days=1)
    done = await env.until(lambda r: r["state"] == "done")
    assert done["id"] == halted["id"] and done["checked"] == 400
    assert all(env.shop.hits[i] >= 1 for i in ids)


async def test_reloaded_schedule_applies_and_keeps_the_sweep_progress(env: Env) -> None:
    """SIGHUP with a window that is already over pauses the running sweep at its checkpoint;
    the old window back resumes it from there."""
    await env.add_products(3000)
    scheduler = env.scheduler()
    await env.until(lambda r: r["checked"] >= 500)
    env.services.config = make_config(window="5m")  # 02:00-02:05: closed at 02:10
    scheduler.reload(env.services.config)
    waiting = await env.until(lambda r: r["state"] == "waiting_window" and not r["lease_owner"])
    assert waiting["checked"] >= 500
    env.services.config = make_config()
    scheduler.reload(env.services.config)
    done = await env.until(lambda r: r["state"] == "done")
    assert done["id"] == waiting["id"] and done["checked"] == 3000


async def test_merchant_override_disabling_the_schedule_wins_over_the_file(env: Env) -> None:
    """PATCHed enabled=false (stored in the database) keeps the schedule from starting."""
    await env.add_products(10)
    await store_override(env.db, env.merchant.id, {"enabled": False})
    scheduler = SweepScheduler(env.services, engine=env.engine, clock=env.clock)
    await scheduler.tick()
    assert await SweepStore(env.db).latest(env.merchant.id) is None
    await store_override(env.db, env.merchant.id, None)
    await scheduler.tick()
    assert (await env.sweep())["trigger"] == "schedule"
    await scheduler.drain(1.0)


async def test_status_line_shows_the_progress_of_driven_sweeps(env: Env) -> None:
    """The component's status() (systemd STATUS=) names the merchant and the share done."""
    await env.add_products(3000)
    scheduler = env.scheduler()
    row = await env.until(lambda r: r["checked"] >= 100)
    line = scheduler.status()
    assert line is not None and line.startswith("sweep shop-a ") and "%" in line
    assert scheduler.driving(row["id"]) is not None
    assert env.services.metrics.sweeps_running._value.get() == 1


@pytest.mark.parametrize(
    ("first", "later"),
    [
        # Spring forward: 02:30 does not exist on 2026-03-29 in Madrid; the run starts at 03:00.
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), datetime(2026, 3, 29, 1, 40, tzinfo=UTC)),
        # Fall back: 02:30 happens twice on 2026-10-25; only the first one starts a run.
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
    ],
)
async def test_dst_days_run_exactly_one_scheduled_sweep(
    env: Env, first: datetime, later: datetime
) -> None:
    """On DST change days a daily sweep at 02:30 Madrid starts once, not zero or two times."""
    env.services.config = make_config(start_time="02:30", timezone="Europe/Madrid", window="2h")
    await env.add_products(20)
    scheduler = SweepScheduler(env.services, engine=env.engine, clock=env.clock, checkpoint_s=0.05)
    env.clock.now = first - timedelta(minutes=5)
    await scheduler.tick()
    assert await SweepStore(env.db).latest(env.merchant.id) is None
    env.clock.now = first
    await scheduler.tick()
    await env.until(lambda r: r["state"] == "done")
    env.clock.now = later
    await scheduler.tick()
    assert await env.db.pool.fetchval("SELECT count(*) FROM sweeps") == 1
    await scheduler.drain(1.0)


class LossyEngine:
    """Completes sweep jobs at once with not_modified, but silently loses the first one."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    async def submit(self, job: VerifyJob) -> bool:
        product_id = job.state.product_id
        self.seen[product_id] += 1
        if sum(self.seen.values()) > 1:
            assert job.on_done is not None
            job.on_done(job, Decision("not_modified", http_status=304, error=None))
        return True

    async def record(self, job: VerifyJob, decision: Decision) -> None:
        return None


async def test_a_check_the_engine_lost_restarts_the_sweep_from_its_checkpoint(
    database: Database,
) -> None:
    """A check that never finishes does not hang the sweep: after stall_s the driver starts
    over from the checkpoint and the lost product is checked."""
    merchant = await MerchantStore(database).create("shop-a", ["shop.example"])
    await database.pool.execute(
        "INSERT INTO products (merchant_id, product_id, source, url, data) "
        "SELECT $1, lpad(g::text, 3, '0'), 'tag', 'https://shop.example/p', '{}' "
        "FROM generate_series(1, 50) g",
        merchant.id,
    )
    services = Services(config=make_config(enabled=False), db=database, metrics=Metrics())
    engine = LossyEngine()
    scheduler = SweepScheduler(
        services,
        engine=engine,
        poll_s=0.05,
        checkpoint_s=0.05,  # type: ignore[arg-type]
    )
    scheduler.settings = replace(scheduler.settings, stall_s=0.3)
    await SweepStore(database).start_manual(services.config, merchant.id, "shop-a", ["x"])
    task = asyncio.create_task(scheduler.run())
    try:
        deadline = time.monotonic() + 10
        while (row := await SweepStore(database).latest(merchant.id))["state"] != "done":
            assert time.monotonic() < deadline, dict(row)
            await asyncio.sleep(0.02)
        assert row["checked"] == 50 and engine.seen["001"] == 2
    finally:
        await scheduler.drain(1.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
