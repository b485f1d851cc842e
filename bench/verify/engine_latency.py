"""On-demand latency while a large sweep backlog keeps the same host busy at its rate limit.

``python -m bench.verify.engine_latency --dsn DSN --merchant-id ID --port P --backlog N ...``

All products of the merchant live on one host (the shop's latency host, rendered on request),
limited to ``--per-host-rate`` requests/s. The first ``--backlog`` products are submitted to
the engine's sweep lane; then ``--samples`` on-demand verifications of the other products are
requested one at a time (random gaps, so they land at every phase of the host's token
interval) through the same path as the API: ``request_verification`` (durable row + NOTIFY)
and ``CompletionWaiter.wait``. Each sample's latency runs from the request to the done row.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import time
from collections.abc import Sequence
from typing import Any

import uvloop

from bench.verify.catalog import LATENCY_HOST, product_at
from bench.verify.engine_common import add_engine_arguments, engine_config, open_services
from bench.verify.procstats import write_result
from verifier.engine import LANE_CAPACITY, VerificationEngine, fetch_options, job_from_row
from verifier.fetcher import Fetcher, FetchResult
from verifier.hostslot import Lane
from verifier.verify_requests import CompletionWaiter, request_verification

_BACKLOG_ROWS = """
SELECT p.*, 0 AS attempts, m.slug, m.hosts, m.currency
FROM products p JOIN merchants m ON m.id = p.merchant_id
WHERE p.merchant_id = $1 AND p.product_id < $2
ORDER BY p.product_id
"""


class TimingFetcher(Fetcher):
    """The real fetcher, remembering when each URL's last fetch started and how long it took."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.elapsed_s: dict[str, float] = {}
        self.started_s: dict[str, float] = {}  # time.perf_counter()
        self.fetches = 0

    async def fetch(
        self,
        url: str,
        allowed_hosts: Sequence[str],
        *,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> FetchResult:
        """Fetch as usual and record the start and elapsed time."""
        self.started_s[url] = time.perf_counter()
        result = await super().fetch(url, allowed_hosts, etag=etag, last_modified=last_modified)
        self.elapsed_s[url] = result.elapsed_s
        self.fetches += 1
        return result


def _percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (with 30 samples, p99 is the largest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    config = engine_config(args)
    first_on_demand = product_at(args.backlog, LATENCY_HOST, args.port, prefix="L")
    capacity = {**LANE_CAPACITY, Lane.SWEEP: args.backlog + 1000}
    fetcher = TimingFetcher(fetch_options(config))
    async with open_services(config) as services, fetcher:
        db = services.db
        engine = VerificationEngine(services, fetcher=fetcher, lane_capacity=capacity)
        task = asyncio.create_task(engine.run(), name="engine")
        rows = await db.pool.fetch(_BACKLOG_ROWS, args.merchant_id[0], first_on_demand.product_id)
        queued_at = time.perf_counter()
        for row in rows:
            await engine.submit(job_from_row(row, Lane.SWEEP))
        del rows
        queue_s = time.perf_counter() - queued_at
        await asyncio.sleep(args.warmup_s)
        waiter = CompletionWaiter(db)
        rng = random.Random(7)
        samples: list[dict[str, Any]] = []
        fetches_before = fetcher.fetches
        window_started = time.perf_counter()
        # Sample 0 is a warm-up (first LISTEN, first prepared statements) and is not counted.
        for i in range(args.samples + 1):
            await asyncio.sleep(rng.uniform(0.5, 1.5) * args.spacing_s)
            product = product_at(args.backlog + i, LATENCY_HOST, args.port, prefix="L")
            started = time.perf_counter()
            request = await request_verification(db, args.merchant_id[0], product.product_id)
            done = await waiter.wait(args.merchant_id[0], request["id"], timeout_s=30.0)
            latency_s = time.perf_counter() - started
            fetch_s = fetcher.elapsed_s.get(product.url, float("nan"))
            samples.append(
                {
                    "latency_ms": 1000 * latency_s,
                    "fetch_ms": 1000 * fetch_s,
                    "excess_ms": 1000 * (latency_s - fetch_s),
                    # request -> fetch start: the claim and the wait for the host's next token
                    "before_fetch_ms": 1000
                    * (fetcher.started_s.get(product.url, float("nan")) - started),
                    "db_ms": 1000 * (done["finished_at"] - done["requested_at"]).total_seconds()
                    if done["finished_at"] is not None
                    else None,
                    "outcome": done["outcome"],
                    "sweep_depth": engine.frontier.depth(Lane.SWEEP),
                }
            )
        window_s = time.perf_counter() - window_started
        host_rate = (fetcher.fetches - fetches_before) / window_s
        await waiter.close()
        await engine.drain(2.0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    warmup, samples = samples[0], samples[1:]
    latencies = [s["latency_ms"] for s in samples]
    excess = [s["excess_ms"] for s in samples]
    fetches = [s["fetch_ms"] for s in samples]
    return {
        "backlog": args.backlog,
        "queue_s": queue_s,
        "per_host_rate": args.per_host_rate,
        "host_requests_per_s": host_rate,
        "warmup_sample": warmup,
        "samples": samples,
        "latency_p50_ms": statistics.median(latencies),
        "latency_p99_ms": _percentile(latencies, 0.99),
        "fetch_p50_ms": statistics.median(fetches),
        "fetch_p99_ms": _percentile(fetches, 0.99),
        "excess_p50_ms": statistics.median(excess),
        "excess_p99_ms": _percentile(excess, 0.99),
        "min_sweep_depth": min(s["sweep_depth"] for s in samples),
        "outcomes": sorted({s["outcome"] for s in samples}),
    }


def main() -> None:
    """Run the latency probe and write it to --result."""
    parser = argparse.ArgumentParser(prog="python -m bench.verify.engine_latency")
    add_engine_arguments(parser)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=30, help="plus one warm-up request")
    parser.add_argument("--spacing-s", type=float, default=0.5)
    parser.add_argument("--warmup-s", type=float, default=2.0)
    args = parser.parse_args()
    write_result(args.result, uvloop.run(_measure(args)))


if __name__ == "__main__":
    main()
