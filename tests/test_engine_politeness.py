"""Politeness and durability of verification, measured from the outside.

Rates are counted at the shop (server side); the crash test kills the real daemon process.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ingest.context import Services
from tests.daemon_process import start_daemon
from tests.shop_server import Page, RunningShop, ShopState, running_shop
from tests.test_engine import tag_page
from verifier.config import Config, MerchantConfig
from verifier.database import Database
from verifier.engine import VerificationEngine, job_from_row
from verifier.hostslot import Lane
from verifier.merchants import Merchant, MerchantStore
from verifier.metrics import Metrics
from verifier.verify_requests import CompletionWaiter, request_verification

PRODUCT_ROWS = """
SELECT p.*, m.slug, m.hosts, m.currency, 0 AS attempts
FROM products p JOIN merchants m ON m.id = p.merchant_id
WHERE p.merchant_id = $1 ORDER BY p.product_id
"""


async def _catalog(db: Database, shop: RunningShop, count: int) -> Merchant:
    """A merchant on the shop's host with `count` products at /p/<n>, each page served."""
    merchant = await MerchantStore(db).create("shop-a", [shop.host])
    await db.pool.execute(
        "INSERT INTO products (merchant_id, product_id, source, url, data) "
        "SELECT $1, 'P' || lpad(n::text, 6, '0'), 'tag', $2 || n, "
        "jsonb_build_object('name', 'Mug', 'unit_price', '1.00') "
        "FROM generate_series(1, $3) AS n",
        merchant.id,
        shop.url("/p/"),
        count,
    )
    for n in range(1, count + 1):
        shop.state.pages[f"/p/{n}"] = Page(tag_page(f"P{n:06d}", "Mug", "1.00"))
    return merchant


def _engine(
    db: Database, rate: float, concurrency: int = 4, capacity: int | None = None
) -> VerificationEngine:
    config = Config.model_validate(
        {
            "crawler": {
                "allow_private_networks": True,
                "respect_robots_txt": False,
                "per_host_rate": rate,
                "per_host_concurrency": concurrency,
            },
            "daemon": {"poll_interval_s": 0.05},
        }
    )
    lanes = {lane: capacity for lane in Lane} if capacity else None
    return VerificationEngine(
        Services(config=config, db=db, metrics=Metrics()), lane_capacity=lanes
    )


@pytest.fixture
async def shop() -> AsyncIterator[RunningShop]:
    async with running_shop(ShopState()) as running:
        yield running


async def _run(engine: VerificationEngine) -> asyncio.Task[None]:
    task = asyncio.create_task(engine.run())
    await asyncio.wait_for(engine._started.wait(), timeout=5)
    return task


async def _stop(engine: VerificationEngine, task: asyncio.Task[None]) -> None:
    await engine.drain(1.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _busiest_second(shop: RunningShop) -> int:
    """The most product-page requests the shop received within any 1-second window."""
    times = sorted(r.at_s for r in shop.state.requests if r.path.startswith("/p/"))
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


async def test_a_host_never_gets_more_than_rate_plus_burst_in_any_second(
    database: Database, shop: RunningShop
) -> None:
    """At per_host_rate 5/s, every 1-second window at the shop sees at most 5 + 1 requests."""
    merchant = await _catalog(database, shop, 30)
    engine = _engine(database, rate=5.0, concurrency=8)
    task = await _run(engine)
    try:
        for row in await database.pool.fetch(PRODUCT_ROWS, merchant.id):
            await engine.submit(job_from_row(row, Lane.SWEEP))
        await shop.state.wait_until(lambda: len(shop.state.requests) >= 20, timeout_s=15)
    finally:
        await _stop(engine, task)
    worst = _busiest_second(shop)
    assert worst <= 5 + 1, f"{worst} requests within one second"


async def test_on_demand_jumps_a_10000_product_sweep_backlog_on_the_same_host(
    database: Database, shop: RunningShop
) -> None:
    """A verify-now request behind 10,000 queued sweep jobs is fetched at the next token."""
    merchant = await _catalog(database, shop, 10_000)
    await database.pool.execute(
        "INSERT INTO products (merchant_id, product_id, source, url, data) "
        "VALUES ($1, 'URGENT', 'tag', $2, '{}')",
        merchant.id,
        shop.url("/urgent"),
    )
    shop.state.pages["/urgent"] = Page(tag_page("URGENT", "Urgent mug", "5.00"))
    # the whole backlog is held in memory, as it would be for a host with a deep sweep lane
    engine = _engine(database, rate=10.0, concurrency=1, capacity=20_000)
    task = await _run(engine)
    waiter = CompletionWaiter(database)
    try:
        rows = await database.pool.fetch(PRODUCT_ROWS + " LIMIT 10000", merchant.id)
        for row in rows:
            await engine.submit(job_from_row(row, Lane.SWEEP))
        await shop.state.wait_until(lambda: len(shop.state.requests) >= 3, timeout_s=5)
        before = len(shop.state.requests)
        request = await request_verification(database, merchant.id, "URGENT")
        engine.wake()
        done = await waiter.wait(merchant.id, request["id"], timeout_s=10)
        urgent = [i for i, r in enumerate(shop.state.requests) if r.path == "/urgent"]
    finally:
        await waiter.close()
        await _stop(engine, task)
    assert done["state"] == "done" and done["outcome"] == "verified"
    # served within a couple of tokens (0.1 s each) of being queued, not after the backlog
    assert urgent and urgent[0] - before <= 3, (urgent, before)


async def test_one_merchants_changed_backlog_does_not_starve_another(
    database: Database, shop: RunningShop
) -> None:
    """Changed-lane claims are shared between merchants: B's one change is not stuck behind A's."""
    async with running_shop(ShopState(), host="127.0.0.2") as other:
        merchant_a = await _catalog(database, shop, 300)
        merchant_b = await MerchantStore(database).create("shop-b", [other.host])
        await database.pool.execute(
            "UPDATE products SET changed_due_at = now() - interval '1 hour' WHERE merchant_id = $1",
            merchant_a.id,
        )
        await database.pool.execute(
            "INSERT INTO products (merchant_id, product_id, source, url, data, changed_due_at) "
            "VALUES ($1, 'B1', 'tag', $2, '{}', now())",
            merchant_b.id,
            other.url("/b1"),
        )
        other.state.pages["/b1"] = Page(tag_page("B1", "B mug", "2.00"))
        engine = _engine(database, rate=2.0, concurrency=1, capacity=40)
        task = await _run(engine)
        try:
            await other.state.wait_until(lambda: other.state.count("/b1") >= 1, timeout_s=5)
        finally:
            await _stop(engine, task)
    # A's 300 products take minutes at 2/s; B was served right away
    assert len(shop.state.requests) < 300


async def test_on_demand_requests_survive_a_sigkill_of_the_daemon(
    tmp_path: Path, db_dsn: str, database: Database, shop: RunningShop
) -> None:
    """A daemon killed mid-verification: after a restart the request is done, none lost."""
    merchant = await _catalog(database, shop, 1)
    shop.state.gate = asyncio.Event()  # the page hangs until the gate opens
    env = {
        "CATALOG_VERIFIER_CRAWLER__ALLOW_PRIVATE_NETWORKS": "true",
        "CATALOG_VERIFIER_CRAWLER__RESPECT_ROBOTS_TXT": "false",
        "CATALOG_VERIFIER_DAEMON__WORK_LEASE_S": "2",
        "CATALOG_VERIFIER_DAEMON__POLL_INTERVAL_S": "0.2",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = start_daemon(tmp_path / "a", dsn=db_dsn, env=env)
    await asyncio.to_thread(first.wait_ready)
    request = await request_verification(database, merchant.id, "P000001")
    await shop.state.wait_until(lambda: shop.state.count("/p/1") >= 1, timeout_s=10)
    first.signal(signal.SIGKILL)
    await asyncio.to_thread(first.proc.wait, 10)
    shop.state.gate.set()
    second = start_daemon(tmp_path / "b", dsn=db_dsn, env=env)
    try:
        await asyncio.to_thread(second.wait_ready)
        waiter = CompletionWaiter(database)
        try:
            done = await waiter.wait(merchant.id, request["id"], timeout_s=20)
        finally:
            await waiter.close()
    finally:
        await asyncio.to_thread(second.stop)
    assert done["state"] == "done" and done["outcome"] == "verified"
    assert shop.state.count("/p/1") >= 2


async def test_a_merchant_rate_still_holds_after_a_config_reload(
    database: Database, shop: RunningShop
) -> None:
    """A merchant's own per_host_rate (below the global one) survives a reload (SIGHUP) while
    its host has work queued: every 1-second window still sees at most rate + 1 requests."""
    merchant = await _catalog(database, shop, 30)
    engine = _engine(database, rate=200.0, concurrency=8)
    config = engine.services.config.model_copy(
        update={
            "merchants": {
                "shop-a": MerchantConfig.model_validate({"crawler": {"per_host_rate": 4.0}})
            }
        }
    )
    engine.services.config = config
    task = await _run(engine)
    try:
        for row in await database.pool.fetch(PRODUCT_ROWS, merchant.id):
            await engine.submit(job_from_row(row, Lane.SWEEP))
        await shop.state.wait_until(lambda: len(shop.state.requests) >= 3, timeout_s=10)
        engine.reload(config)
        await shop.state.wait_until(lambda: len(shop.state.requests) >= 14, timeout_s=15)
    finally:
        await _stop(engine, task)
    worst = _busiest_second(shop)
    assert worst <= 4 + 1, f"{worst} requests within one second"
