"""Scenario (a): the real verification engine verifies every product of the merchant(s).

``python -m bench.verify.engine_throughput --dsn DSN --merchant-id ID [--merchant-id ...]
--count N --result FILE [--feed changed|sweep]``

The products were inserted the way ingest stores new tag-event products (unverified). With
``--feed changed`` they are queued in the `changed` lane and the engine's own feeder claims
them; with ``--feed sweep`` a task reads them in keyset batches of 1,000 and submits them to
the sweep lane (``VerificationEngine.submit``), as a sweep does. The clock and the CPU
accounting start right before the engine starts and stop when the database holds no unverified
product of the merchants any more (or every product has a final outcome, when some fail).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop

from bench.verify.engine_common import add_engine_arguments, engine_config, open_services
from bench.verify.procstats import CpuWindow, parse_watch, peak_rss_mb, write_result
from verifier.daemon import tune_garbage_collector
from verifier.engine import VerificationEngine, job_from_row
from verifier.frontier import FrontierClosedError
from verifier.hostslot import Lane
from verifier.metrics import Metrics

_POLL_S = 0.05
_UNVERIFIED = (
    "SELECT count(*) FROM products WHERE merchant_id = ANY($1::bigint[]) AND status = 'unverified'"
)
_OUTCOMES = (
    "SELECT coalesce(last_outcome, 'none') AS outcome, count(*) AS n FROM products"
    " WHERE merchant_id = ANY($1::bigint[]) GROUP BY 1"
)
_SWEEP_BATCH = """
SELECT p.*, 0 AS attempts, m.slug, m.hosts, m.currency
FROM products p JOIN merchants m ON m.id = p.merchant_id
WHERE p.merchant_id = ANY($1::bigint[]) AND (p.merchant_id, p.product_id) > ($2, $3)
ORDER BY p.merchant_id, p.product_id
LIMIT 1000
"""


class CallTimer:
    """Times calls of one private coroutine method (the writer's flush, the feeders' claim).

    Calls are grouped by their first argument when it is a string (the claim's query name).
    Instrumentation only: when the method is renamed the timer stays empty.
    """

    def __init__(self, owner: Any, method: str, size: Callable[[Any, Any], int]) -> None:
        self.stats: dict[str, list[float]] = {}
        inner = getattr(owner, method, None)
        if inner is None:
            return

        async def timed(*args: Any) -> Any:
            started = time.perf_counter()
            result = None
            try:
                result = await inner(*args)
                return result
            finally:
                key = args[0] if isinstance(args[0], str) else method
                calls, items, busy_s = self.stats.get(key, [0, 0, 0.0])
                elapsed_s = time.perf_counter() - started
                self.stats[key] = [calls + 1, items + size(args, result), busy_s + elapsed_s]

        setattr(owner, method, timed)

    def summary(self, elapsed_s: float) -> dict[str, dict[str, float]]:
        """Per key: calls, mean items per call and the share of wall time spent inside."""
        return {
            key: {
                "calls": calls,
                "mean_items": items / max(calls, 1),
                "busy_share": busy / elapsed_s,
            }
            for key, (calls, items, busy) in self.stats.items()
        }


def _batch_rows(args: Any, _result: Any) -> int:
    return len(args[0])


def _claimed_rows(_args: Any, result: Any) -> int:
    return len(result) if result is not None else 0


async def _sweep(engine: VerificationEngine, merchant_ids: list[int]) -> None:
    """Submit every product to the sweep lane, reading them as a sweep's keyset cursor does."""
    db = engine.services.db
    after: tuple[int, str] = (0, "")
    while True:
        rows = await db.pool.fetch(_SWEEP_BATCH, merchant_ids, *after)
        if not rows:
            return
        for row in rows:
            await engine.submit(job_from_row(row, Lane.SWEEP))
        after = (rows[-1]["merchant_id"], rows[-1]["product_id"])


def _finished(metrics: Metrics) -> int:
    """Final verification decisions counted by the engine so far."""
    total = 0.0
    for metric in metrics.verifications.collect():
        total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return int(total)


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    config = engine_config(args)
    async with open_services(config) as services:
        db = services.db
        engine = VerificationEngine(services)
        # As the daemon does once it is started.
        tune_garbage_collector()
        flushes = CallTimer(engine.writer, "_flush", _batch_rows)
        claims = CallTimer(engine, "_claim", _claimed_rows)
        window = CpuWindow(parse_watch(args.watch))
        profiler = cProfile.Profile() if args.profile else None
        window.start()
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        task = asyncio.create_task(engine.run(), name="engine")
        # Jobs submitted before the engine's frontier runs are dispatched once it does.
        feeder = None
        if args.feed == "sweep":
            feeder = asyncio.create_task(_sweep(engine, args.merchant_id), name="sweep")
        unverified = args.count
        deadline = started + args.timeout_s
        # Where jobs are, sampled while the run lasts: running workers (fetching, parsing or
        # waiting for their result's commit) and jobs queued in the frontier.
        in_flight: list[int] = []
        queued: list[int] = []
        while time.perf_counter() < deadline and not task.done():
            await asyncio.sleep(_POLL_S)
            in_flight.append(engine.frontier.in_flight())
            queued.append(engine.frontier.depth(Lane.CHANGED) + engine.frontier.depth(Lane.SWEEP))
            unverified = await db.pool.fetchval(_UNVERIFIED, args.merchant_id)
            # Products whose verification failed for good stay unverified: stop once every
            # product has a final decision instead of waiting for the deadline.
            if unverified == 0 or _finished(services.metrics) >= args.count:
                break
        elapsed_s = time.perf_counter() - started
        if profiler is not None:
            profiler.disable()
        window.stop()
        await engine.drain(5.0)
        for running in (task, feeder):
            if running is not None:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError, FrontierClosedError):
                    await running
        if profiler is not None:
            profiler.dump_stats(args.profile)
        rows = await db.pool.fetch(_OUTCOMES, args.merchant_id)
    verified = args.count - unverified
    return {
        "pages": args.count,
        "verified": verified,
        "outcomes": {row["outcome"]: row["n"] for row in rows},
        "elapsed_s": elapsed_s,
        "pages_per_s": verified / elapsed_s,
        "cpu_s": window.self_cpu_s,
        "cpu_ms_per_page": 1000 * window.self_cpu_s / max(verified, 1),
        "peak_rss_mb": peak_rss_mb(),
        "others_cpu_s": window.others_cpu_s,
        "writer_flushes": flushes.summary(elapsed_s),
        "claims": claims.summary(elapsed_s),
        "mean_in_flight": statistics.fmean(in_flight) if in_flight else 0.0,
        "feed": args.feed,
        "merchants": len(args.merchant_id),
        "mean_queued": statistics.fmean(queued) if queued else 0.0,
        "runqueue_wait_s": window.runqueue_wait_s,
    }


def main() -> None:
    """Run one measurement and write it to --result."""
    parser = argparse.ArgumentParser(prog="python -m bench.verify.engine_throughput")
    add_engine_arguments(parser)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--feed", choices=("changed", "sweep"), default="changed")
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--profile", type=Path, default=None, help="write cProfile stats here")
    args = parser.parse_args()
    write_result(args.result, uvloop.run(_measure(args)))


if __name__ == "__main__":
    main()
