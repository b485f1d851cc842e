"""Sweep benchmark: how fast a sweep feeds its lane from a 1,000,000-product catalog.

``.venv/bin/python -m bench.sweep [--products 1000000] [--sweeps 2] [--engine-products 50000]``

Starts a private PostgreSQL cluster (normal durability) in a temporary directory, generates the
catalog with one ``INSERT ... SELECT generate_series`` and runs the real sweep scheduler and
driver (keyset reads, job building, checkpoint cursor, circuit breaker, checkpoints every
second) in this process.

(a) feed side, fetching stubbed out: a stub engine stands in for the verification engine. It
    has the sweep lane's capacity (2,000 jobs, ``submit`` waits while it is full) and completes
    every job at once with a ``not_modified`` decision, writing nothing. This measures database
    cursor -> lane, the part a sweep adds on top of verification.
(b) whole pipeline, fetching stubbed out: the real verification engine (frontier, politeness,
    decisions, batched result writes to ``products``) with a fetcher that answers every URL at
    once with a 304, on a separate merchant of ``--engine-products`` products.

Reports products/s, the process's peak RSS sampled during each sweep (and its start and end,
to show it stays flat), the database size and dead tuples (``pg_stat_user_tables.n_dead_tup``)
after each sweep. Prints a Markdown table and writes JSON under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from ingest.context import Services
from verifier.config import Config, DatabaseConfig
from verifier.database import Database
from verifier.embedded_pg import EmbeddedPostgres
from verifier.engine import VerificationEngine, VerifyJob
from verifier.fetcher import FetchResult
from verifier.logs import configure_logging
from verifier.merchants import MerchantStore
from verifier.metrics import Metrics
from verifier.migrations import migrate
from verifier.outcomes import Decision
from verifier.sweep_runner import SweepScheduler
from verifier.sweeps import SweepStore

ROOT = Path(__file__).resolve().parent.parent.parent
LANE_CAPACITY = 2000
ENGINE_HOSTS = 100
NOT_MODIFIED = Decision("not_modified", http_status=304, error=None)


class StubEngine:
    """The engine's intake without fetching: a bounded lane drained by one instant worker."""

    def __init__(self) -> None:
        self.lane: asyncio.Queue[VerifyJob] = asyncio.Queue(maxsize=LANE_CAPACITY)
        self.completed = 0

    async def submit(self, job: VerifyJob) -> bool:
        await self.lane.put(job)
        return True

    async def record(self, job: VerifyJob, decision: Decision) -> None:
        return None

    async def run(self) -> None:
        while True:
            jobs = [await self.lane.get()]
            while not self.lane.empty():
                jobs.append(self.lane.get_nowait())
            for job in jobs:
                assert job.on_done is not None
                job.on_done(job, NOT_MODIFIED)
            self.completed += len(jobs)


class StubFetcher:
    """Answers every URL at once with a 304 (the page did not change)."""

    async def fetch(self, url: str, hosts: Any, **_: Any) -> FetchResult:
        return FetchResult("not_modified", 304, url, None, None, '"v1"', None, None, None, 0.0, 0)

    async def __aenter__(self) -> StubFetcher:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None


def rss_mb() -> float:
    """This process's resident set size now."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class SweepRun:
    scenario: str
    sweep: int
    products: int
    seconds: float
    products_per_s: float
    rss_start_mb: float
    rss_peak_mb: float
    rss_end_mb: float
    database_mb: float
    products_dead_tuples: int
    sweeps_dead_tuples: int
    products_live_tuples: int


async def generate(db: Database, merchant_id: int, count: int, hosts: int) -> float:
    """Insert `count` verified products on `hosts` hosts in one statement; seconds taken."""
    started = time.perf_counter()
    await db.pool.execute(
        "INSERT INTO products (merchant_id, product_id, status, source, url, data, "
        "availability, etag, verified_at) "
        "SELECT $1, id, 'verified', 'page', url, jsonb_build_object('product_id', id, "
        "'url', url, 'name', 'Product ' || id, 'unit_price', '19.90', 'currency', 'EUR'), "
        "'in_stock', '\"v1\"', now() "
        "FROM (SELECT lpad(g::text, 8, '0') AS id, "
        "             'https://h' || (g % $3) || '.shop.example/p/' || g AS url "
        "      FROM generate_series(1, $2) g) s",
        merchant_id,
        count,
        hosts,
    )
    await db.pool.execute("VACUUM ANALYZE products")
    return time.perf_counter() - started


async def table_stats(db: Database) -> dict[str, Any]:
    """Database size and live/dead tuples once the statistics have caught up."""
    await asyncio.sleep(1.5)  # table statistics are flushed by each backend about every second
    size = await db.pool.fetchval("SELECT pg_database_size(current_database())")
    rows = await db.pool.fetch(
        "SELECT relname, n_live_tup, n_dead_tup FROM pg_stat_user_tables "
        "WHERE relname IN ('products', 'sweeps')"
    )
    stats = {r["relname"]: r for r in rows}
    return {
        "database_mb": size / 1024 / 1024,
        "products_dead": stats["products"]["n_dead_tup"],
        "products_live": stats["products"]["n_live_tup"],
        "sweeps_dead": stats["sweeps"]["n_dead_tup"],
    }


async def run_sweep(
    db: Database,
    services: Services,
    scheduler: SweepScheduler,
    merchant: Any,
    scenario: str,
    number: int,
    progress: Callable[[str], None],
) -> SweepRun:
    """Start a manual sweep, sample RSS until it is done, and collect the numbers."""
    store = SweepStore(db)
    rss_start = rss_mb()
    peak = rss_start
    started = time.perf_counter()
    row = await store.start_manual(services.config, merchant.id, merchant.slug, merchant.hosts)
    scheduler.wake()
    last_report = started
    while True:
        await asyncio.sleep(0.25)
        peak = max(peak, rss_mb())
        current = await store.get(merchant.id, row["id"])
        if time.perf_counter() - last_report > 10:
            last_report = time.perf_counter()
            progress(f"    {current['checked']:,}/{current['total']:,}  rss {rss_mb():.0f} MB")
        if current["state"] not in ("running",):
            break
    elapsed = time.perf_counter() - started
    assert current["state"] == "done", dict(current)
    stats = await table_stats(db)
    return SweepRun(
        scenario=scenario,
        sweep=number,
        products=current["checked"],
        seconds=round(elapsed, 2),
        products_per_s=round(current["checked"] / elapsed),
        rss_start_mb=round(rss_start, 1),
        rss_peak_mb=round(peak, 1),
        rss_end_mb=round(rss_mb(), 1),
        database_mb=round(stats["database_mb"], 1),
        products_dead_tuples=stats["products_dead"],
        sweeps_dead_tuples=stats["sweeps_dead"],
        products_live_tuples=stats["products_live"],
    )


async def bench(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    """Generate the catalogs and run every sweep."""

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    config = Config.model_validate(
        {"crawler": {"per_host_rate": 10_000.0, "per_host_concurrency": 256}}
    )
    db = Database(DatabaseConfig(dsn=dsn, pool_min_size=2, pool_max_size=10), Path("."))
    await db.open()
    results: dict[str, Any] = {"runs": []}
    try:
        async with db.pool.acquire() as conn:
            await migrate(conn)
        merchants = MerchantStore(db)
        big = await merchants.create("bench-feed", ["h0.shop.example"])
        progress(f"generating {args.products:,} products ...")
        results["generate_s"] = round(await generate(db, big.id, args.products, 1), 1)
        progress(f"    {results['generate_s']} s")

        services = Services(config=config, db=db, metrics=Metrics())
        stub = StubEngine()
        scheduler = SweepScheduler(services, engine=stub, poll_s=0.2)  # type: ignore[arg-type]
        tasks = [asyncio.create_task(stub.run()), asyncio.create_task(scheduler.run())]
        for number in range(1, args.sweeps + 1):
            progress(f"(a) feed side, sweep {number} ...")
            run = await run_sweep(db, services, scheduler, big, "a", number, progress)
            progress(f"    {run.products_per_s:,} products/s, peak RSS {run.rss_peak_mb} MB")
            results["runs"].append(run.__dict__)
        await scheduler.drain(5.0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

        if args.engine_products:
            # Many hosts: one host's politeness pacing would be the bottleneck, not the sweep.
            hosts = [f"h{i}.shop.example" for i in range(ENGINE_HOSTS)]
            small = await merchants.create("bench-engine", hosts)
            await generate(db, small.id, args.engine_products, ENGINE_HOSTS)
            services = Services(config=config, db=db, metrics=Metrics())
            engine = VerificationEngine(services, fetcher=StubFetcher())  # type: ignore[arg-type]
            scheduler = SweepScheduler(services, engine=engine, poll_s=0.2)
            tasks = [asyncio.create_task(engine.run()), asyncio.create_task(scheduler.run())]
            for number in range(1, args.sweeps + 1):
                progress(f"(b) whole pipeline, sweep {number} ...")
                run = await run_sweep(db, services, scheduler, small, "b", number, progress)
                progress(f"    {run.products_per_s:,} products/s, peak RSS {run.rss_peak_mb} MB")
                results["runs"].append(run.__dict__)
            await scheduler.drain(5.0)
            await engine.drain(5.0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await db.close()
    return results


def report(results: dict[str, Any]) -> None:
    """The Markdown table."""
    print(f"\ncatalog generated in {results['generate_s']} s\n")
    print(
        "| scenario | sweep | products | seconds | products/s | RSS start/peak/end MB "
        "| DB MB | dead tuples products / sweeps |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results["runs"]:
        print(
            f"| ({r['scenario']}) | {r['sweep']} | {r['products']:,} | {r['seconds']} "
            f"| {r['products_per_s']:,} | {r['rss_start_mb']} / {r['rss_peak_mb']} / "
            f"{r['rss_end_mb']} | {r['database_mb']} | {r['products_dead_tuples']:,} / "
            f"{r['sweeps_dead_tuples']} |"
        )


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__)
    parser.add_argument("--products", type=int, default=1_000_000, help="catalog of (a)")
    parser.add_argument("--sweeps", type=int, default=2, help="sweeps per scenario")
    parser.add_argument(
        "--engine-products", type=int, default=50_000, help="catalog of (b); 0 skips it"
    )
    args = parser.parse_args()
    configure_logging("warning", "console")
    root = Path(tempfile.mkdtemp(prefix="cv-bench-sweep-"))
    root.chmod(0o755)
    cluster = EmbeddedPostgres(root, database="postgres")
    dsn = cluster.acquire()
    try:
        load_before = os.getloadavg()[0]
        results = uvloop.run(bench(dsn, args))
        results["load_average_before"] = load_before
        results["products"] = args.products
    finally:
        with contextlib.suppress(Exception):
            cluster.release()
        shutil.rmtree(root, ignore_errors=True)
    report(results)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    name = f"sweep-{time.strftime('%Y%m%dT%H%M%S')}.json"
    (out / name).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
