"""Verification throughput benchmark: catalog-verifier against Scrapy and a bare full-parse loop.

``.venv/bin/python -m bench.verify [--pages 20000] [--hosts 50] [--runs 3] [--only ...]``

Starts a private PostgreSQL cluster in a temporary directory and the benchmark shop (its own
processes; pages pre-rendered; each of 127.0.0.2, 127.0.0.3, ... is one host). Then, run by run,
on the same pages, each scenario in its own process:

(a)       catalog-verifier: the real VerificationEngine verifies every product end to end
          (fetch, parse, database update); the products are queued in the `changed` lane as
          ingest leaves new products, and one merchant owns every host;
(a-split) the same with one merchant per host (not run by default);
(a-sweep) the same products submitted to the sweep lane instead (not run by default);
(b)       Scrapy extracting the same fields (no database);
(c)       a bare aiohttp + uvloop loop building a full lxml tree of every page (no database);
(f)       the same loop fetching only: the floor of any verifier on this HTTP client.

Then the on-demand latency probe (a sweep backlog on one host limited to 10 requests/s, and
on-demand verifications of other products of that host) and the CPU cost of each verification
step measured alone. Prints Markdown tables and writes everything as JSON under
``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.verify.dbsetup import DATABASE
from bench.verify.report import (
    machine_notes,
    print_latency,
    print_profile,
    print_py_spy,
    print_throughput,
    print_unit_costs,
)
from bench.verify.scenarios import ENGINE_VARIANTS, ROOT, Bench
from bench.verify.services import ShopProcess, postgres_errors

THROUGHPUT = ("a", "a-split", "a-sweep", "b", "c", "f")
DEFAULT_ONLY = "a,b,c,f,latency,costs"


def _progress(started: float, message: str) -> None:
    print(f"[{time.monotonic() - started:5.0f}s] {message}", file=sys.stderr, flush=True)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.verify",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pages", type=int, default=20_000, help="product pages (default 20000)")
    parser.add_argument("--hosts", type=int, default=50, help="shop hosts (loopback addresses)")
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (median)")
    parser.add_argument(
        "--only",
        default=DEFAULT_ONLY,
        help=f"comma-separated scenarios among {','.join(THROUGHPUT)},latency,costs"
        f" (default {DEFAULT_ONLY})",
    )
    parser.add_argument("--shop-processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=256, help="(a) crawler.concurrency")
    parser.add_argument("--per-host-concurrency", type=int, default=8, help="(a) per host")
    parser.add_argument("--scrapy-concurrency", type=int, default=64)
    parser.add_argument(
        "--scrapy-pages",
        type=int,
        default=5_000,
        help="(b) crawls the first N pages only (same page mix; Scrapy is slow), default 5000",
    )
    parser.add_argument("--bare-concurrency", type=int, default=128)
    parser.add_argument("--latency-backlog", type=int, default=100_000)
    parser.add_argument("--latency-samples", type=int, default=30)
    parser.add_argument(
        "--profile", action="store_true", help="one extra (a) run under cProfile; print hotspots"
    )
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="one extra (a) run under py-spy (sampling; pip install py-spy); print hotspots",
    )
    args = parser.parse_args()
    if not 1 <= args.hosts <= 250:
        parser.error("--hosts must be between 1 and 250")
    unknown = set(args.only.split(",")) - {*THROUGHPUT, "latency", "costs"}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if "b" in args.only.split(",") and importlib.util.find_spec("scrapy") is None:
        parser.error("scenario b needs Scrapy: .venv/bin/pip install scrapy (or --only a,c,f,...)")
    if args.py_spy and not Path(sys.executable).with_name("py-spy").exists():
        parser.error("--py-spy needs py-spy in the virtualenv: .venv/bin/pip install py-spy")
    return args


def _throughput(bench: Bench, only: set[str], results: dict[str, Any], started: float) -> None:
    runners: dict[str, Callable[[int], dict[str, Any]]] = {
        **{key: functools.partial(bench.run_engine, key) for key in ENGINE_VARIANTS},
        "b": bench.run_scrapy,
        "c": lambda run: bench.run_bare(run, parse=True),
        "f": lambda run: bench.run_bare(run, parse=False),
    }
    # Scenarios alternate run by run, so slow drifts of the machine hit all of them alike.
    for run in range(1, bench.args.runs + 1):
        for key in THROUGHPUT:
            if key not in only:
                continue
            _progress(started, f"run {run}: ({key}) ...")
            load = os.getloadavg()[0]
            result = runners[key](run)
            result["load_average_before"] = load
            results["runs"].setdefault(key, []).append(result)
            _progress(
                started,
                f"    {result['pages_per_s']:,.0f} pages/s, {result['cpu_ms_per_page']:.3f} CPU"
                f" ms/page (load average before: {load:.2f})",
            )


def _profiles(bench: Bench, out: Path, stem: str, results: dict[str, Any]) -> None:
    if bench.args.profile:
        stats = out / f"{stem}.prof"
        results["profile_run"] = bench.run_engine("a", 0, profile=stats)
        results["profile"] = print_profile(stats)
        print(f"profile: {stats.relative_to(ROOT)}", file=sys.stderr, flush=True)
    if bench.args.py_spy:
        raw = out / f"{stem}.py-spy.txt"
        results["py_spy_run"] = bench.run_engine("a", 0, py_spy=raw)
        results["py_spy"] = print_py_spy(raw)
        print(f"profile: {raw.relative_to(ROOT)}", file=sys.stderr, flush=True)


def main() -> int:
    """Run the selected scenarios and print the comparison."""
    args = _parse_args()
    only = set(args.only.split(","))
    started = time.monotonic()
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stem = f"verify-{time.strftime('%Y%m%dT%H%M%S')}"
    work = Path(tempfile.mkdtemp(prefix="cv-bench-verify-"))
    work.chmod(0o755)  # the cluster runs as another user when we are root
    bench = Bench(args, work)
    notes = machine_notes()
    print(f"machine: {notes}", file=sys.stderr, flush=True)
    results: dict[str, Any] = {"args": vars(args), "machine": notes, "runs": {}}
    bench.cluster.acquire()
    try:
        asyncio.run(bench.prepare(bench.cluster.dsn(DATABASE)))
        _progress(started, f"shop: rendering {args.pages:,} pages ...")
        with ShopProcess(args.pages, args.hosts, bench.port, args.shop_processes, ROOT) as shop:
            bench.shop = shop
            _progress(started, f"shop: up in {shop.startup_s:.1f}s")
            _throughput(bench, only, results, started)
            if args.profile or args.py_spy:
                _progress(started, "profile: (a) under a profiler ...")
                _profiles(bench, out, stem, results)
            if "latency" in only:
                _progress(started, "latency: on-demand over a sweep backlog ...")
                results["latency"] = bench.run_latency()
        if "costs" in only:
            _progress(started, "costs: per-page CPU of each verification step ...")
            results["unit_costs"] = bench.run_unit_costs()
    finally:
        bench.cluster.release()
        results["postgres_log_errors"] = postgres_errors(bench.cluster.root / "postgres.log")
        shutil.rmtree(work, ignore_errors=True)
    results["total_s"] = time.monotonic() - started
    results["summary"] = print_throughput(results)
    if "latency" in results:
        print_latency(results["latency"])
    if "unit_costs" in results:
        print_unit_costs(results["unit_costs"])
    errors = results["postgres_log_errors"]
    if errors:
        print(f"\npostgres logged {len(errors)} ERROR lines (kept in the JSON); first: {errors[0]}")
    print(f"\ntotal time {results['total_s']:.0f}s", flush=True)
    path = out / f"{stem}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
