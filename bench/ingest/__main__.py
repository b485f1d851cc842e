"""Ingest benchmark: tag events per second, side by side with a bare aiohttp ceiling.

``.venv/bin/python -m bench.ingest [--duration 10] [--runs 3]``

Starts a private PostgreSQL cluster (normal durability: fsync and synchronous_commit on) in a
temporary directory, then for each scenario starts its server in a separate process (uvloop) and
loads it with ``wrk`` from another process. Reports the median requests/s, events/s and p99
latency of the runs, prints a Markdown table and writes it as JSON under ``bench/results/``.
``python -m bench.ingest.validate`` times the pure-Python steps (decoding, validation, encoding)
on the same products, without a server or a database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import psutil

from bench.ingest.servers import COMMITS_PATH
from verifier.database import load_queries
from verifier.embedded_pg import EmbeddedPostgres
from verifier.migrations import migrate
from verifier.product_schema import validate_product

TOKEN = "bench-ingest-token"
HOSTS = ("shop.example",)
CATALOG_SIZE = 100_000
# Share of events that carry a new price; the others repeat what is stored.
CHANGE_RATE = 0.1
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LUA = HERE / "post.lua"


@dataclass(frozen=True, slots=True)
class Scenario:
    """One column of the comparison."""

    key: str
    title: str
    server: str
    body: str
    connections: int
    events_per_request: int


SCENARIOS = (
    Scenario("b", "bare aiohttp, parse JSON only (ceiling)", "hello", "single", 64, 1),
    Scenario("a", "ingest, 1 product/request, 202 after commit", "ingest", "single", 64, 1),
    Scenario("c", "naive: 1 INSERT + commit per request", "naive", "single", 64, 1),
    Scenario("d", "ingest, 100 products/request", "ingest", "batch", 16, 100),
)


@dataclass(slots=True)
class Run:
    """What wrk measured in one run, plus the CPU time the server and PostgreSQL used."""

    requests_per_s: float
    p99_ms: float
    bad_responses: int
    requests: int = 0
    server_cpu_s: float = 0.0
    postgres_cpu_s: float = 0.0
    commits: float = 0.0
    committed_rows: float = 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start listening")


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _parse_wrk(output: str) -> Run:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    if rate is None or p99 is None:
        raise RuntimeError(f"cannot read wrk output:\n{output}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*?(\d+) timeout", output)
    return Run(
        requests_per_s=float(rate.group(1)),
        p99_ms=float(p99.group(1)) * _UNITS_MS[p99.group(2)],
        bad_responses=(int(bad.group(1)) if bad else 0) + (int(errors.group(1)) if errors else 0),
        requests=int(total.group(1)) if total else 0,
    )


def _wrk(url: str, scenario: Scenario, duration_s: int) -> Run:
    command = [
        "wrk",
        "-t1",
        f"-c{scenario.connections}",
        f"-d{duration_s}s",
        "--latency",
        "-s",
        str(LUA),
        url,
        "--",
        scenario.body,
        str(CATALOG_SIZE),
        str(CHANGE_RATE),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return _parse_wrk(result.stdout)


async def _prepare(cluster: EmbeddedPostgres) -> str:
    admin = await asyncpg.connect(cluster.dsn("postgres"))
    try:
        await admin.execute("DROP DATABASE IF EXISTS bench_ingest")
        await admin.execute("CREATE DATABASE bench_ingest")
    finally:
        await admin.close()
    dsn = cluster.dsn("bench_ingest")
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute(
            "INSERT INTO merchants (slug, name, hosts, currency, ingest_token)"
            " VALUES ('bench', 'Bench', '{shop.example}', 'EUR', $1)",
            TOKEN,
        )
    finally:
        await conn.close()
    return dsn


def catalog_product(n: int) -> dict[str, Any]:
    """Product ``n`` as post.lua sends it when its data did not change."""
    cents = 1000 + (n * 7919) % 9000
    return {
        "product_id": f"sku-{n}",
        "url": f"https://shop.example/p/sku-{n}",
        "name": f"Forged steel anvil, model {n}",
        "unit_price": f"{cents // 100}.{cents % 100:02d}",
        "unit_price_original": f"{20 + n % 90}.99",
        "availability": "InStock",
        "brand": "ACME",
        "currency": "EUR",
        "description": "A sturdy anvil for every workshop, forged from one piece of steel.",
        "image_url": f"https://cdn.shop.example/img/{n}.jpg",
        "categories": ["/Tools/Anvils", "/Workshop/Metal"],
        "tags": ["steel", "forged"],
        "rating_value": 4.5,
        "rating_count": n % 500,
    }


async def _preload(dsn: str) -> None:
    """Store the whole catalog first: tag events mostly revisit known products."""
    conn = await asyncpg.connect(dsn)
    try:
        merchant_id = await conn.fetchval("SELECT id FROM merchants")
        sql = load_queries()["ingest_upsert_tag_products"]
        for start in range(1, CATALOG_SIZE + 1, 5000):
            numbers = range(start, min(start + 5000, CATALOG_SIZE + 1))
            checked = [
                validate_product(catalog_product(n), allowed_hosts=HOSTS, default_currency="EUR")[0]
                for n in numbers
            ]
            rows = [row for row in checked if row is not None]
            lines = "\n".join(orjson.dumps(row).decode() for row in rows)
            await conn.execute(sql, [merchant_id], [lines])
        await conn.execute("VACUUM ANALYZE products")
    finally:
        await conn.close()


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM products")
        return count
    finally:
        await conn.close()


def _cpu_s(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _with_children(process: psutil.Process) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return [process, *process.children(recursive=True)]
    return [process]


def _commit_stats(url: str) -> tuple[float, float]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            stats = json.load(response)
    except urllib.error.HTTPError:  # servers without a writer
        return 0.0, 0.0
    return float(stats["commits"]), float(stats["rows"])


def _measured_run(
    url: str,
    scenario: Scenario,
    duration_s: int,
    server: psutil.Process,
    postmaster: psutil.Process,
) -> Run:
    # CPU seconds per event depend less on what else runs on the machine than requests/s do.
    stats_url = url.split("/v1/", 1)[0] + COMMITS_PATH
    commits_before, rows_before = _commit_stats(stats_url)
    server_before, pg_before = _cpu_s([server]), _cpu_s(_with_children(postmaster))
    run = _wrk(url, scenario, duration_s)
    run.server_cpu_s = _cpu_s([server]) - server_before
    run.postgres_cpu_s = _cpu_s(_with_children(postmaster)) - pg_before
    commits_after, rows_after = _commit_stats(stats_url)
    run.commits, run.committed_rows = commits_after - commits_before, rows_after - rows_before
    return run


def _measure(
    scenario: Scenario, dsn: str, duration_s: int, runs: int, postmaster: psutil.Process
) -> list[Run]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.ingest.servers", scenario.server, str(port), dsn],
        cwd=ROOT,
        env=env,
    )
    try:
        _wait_for_port(port, server)
        url = f"http://127.0.0.1:{port}/v1/ingest/{TOKEN}/product-visited"
        _wrk(url, scenario, 2)  # warm-up: pool connections, token cache, page cache
        process = psutil.Process(server.pid)
        return [_measured_run(url, scenario, duration_s, process, postmaster) for _ in range(runs)]
    finally:
        server.terminate()
        server.wait(timeout=30)


def _per_event_us(runs: list[Run], cpu_s: list[float], events_per_request: int) -> float:
    events = sum(r.requests for r in runs) * events_per_request
    return sum(cpu_s) / events * 1e6 if events else 0.0


def _summarise(scenario: Scenario, runs: list[Run]) -> dict[str, Any]:
    rate = statistics.median(r.requests_per_s for r in runs)
    per_request = scenario.events_per_request
    return {
        "title": scenario.title,
        "requests_per_s": rate,
        "events_per_s": rate * per_request,
        "p99_ms": statistics.median(r.p99_ms for r in runs),
        "bad_responses": sum(r.bad_responses for r in runs),
        "server_cpu_us_per_event": _per_event_us(runs, [r.server_cpu_s for r in runs], per_request),
        "postgres_cpu_us_per_event": _per_event_us(
            runs, [r.postgres_cpu_s for r in runs], per_request
        ),
        "rows_per_commit": sum(r.committed_rows for r in runs)
        / max(1.0, sum(r.commits for r in runs)),
        "runs": [asdict(r) for r in runs],
    }


def _report(summaries: dict[str, dict[str, Any]]) -> None:
    print(
        "\n| scenario | req/s | events/s | p99 latency | non-2xx"
        " | server CPU/event | PostgreSQL CPU/event | rows/commit | load before |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, s in summaries.items():
        print(
            f"| ({key}) {s['title']} | {s['requests_per_s']:,.0f} | {s['events_per_s']:,.0f}"
            f" | {s['p99_ms']:.1f} ms | {s['bad_responses']}"
            f" | {s['server_cpu_us_per_event']:.0f} µs | {s['postgres_cpu_us_per_event']:.0f} µs"
            f" | {s['rows_per_commit']:.0f} | {s['load_average_before']:.1f} |"
        )
    if "a" in summaries and "b" in summaries:
        ratio = summaries["a"]["requests_per_s"] / summaries["b"]["requests_per_s"]
        print(f"\n(a)/(b) = {ratio:.0%} (target >= 50%)")
    if "d" in summaries:
        print(f"(d) = {summaries['d']['events_per_s']:,.0f} events/s (target >= 50,000)")


def main() -> int:
    """Run every scenario and print the comparison."""
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (median)")
    parser.add_argument("--only", default="bacd", help="scenario keys to run, e.g. ad")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian package wrk)", file=sys.stderr)
        return 1
    chosen = [s for s in SCENARIOS if s.key in args.only]
    root = Path(tempfile.mkdtemp(prefix="cv-bench-"))
    root.chmod(0o755)
    cluster = EmbeddedPostgres(root, database="postgres")
    cluster.acquire()
    summaries: dict[str, dict[str, Any]] = {}
    try:
        dsn = asyncio.run(_prepare(cluster))
        pid = int((cluster.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        postmaster = psutil.Process(pid)
        print(f"storing a catalog of {CATALOG_SIZE:,} products ...", file=sys.stderr, flush=True)
        asyncio.run(_preload(dsn))
        for scenario in chosen:
            # Other processes skew results on a small machine: record how busy it was.
            load_before = os.getloadavg()[0]
            print(f"({scenario.key}) {scenario.title} ...", file=sys.stderr, flush=True)
            runs = _measure(scenario, dsn, args.duration, args.runs, postmaster)
            summaries[scenario.key] = _summarise(scenario, runs)
            summaries[scenario.key]["load_average_before"] = load_before
            stored = asyncio.run(_count(dsn))
            print(f"    products stored: {stored:,}", file=sys.stderr, flush=True)
    finally:
        cluster.release()
        shutil.rmtree(root, ignore_errors=True)
    _report(summaries)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    result = {"duration_s": args.duration, "runs": args.runs, "scenarios": summaries}
    name = f"ingest-{time.strftime('%Y%m%dT%H%M%S')}.json"
    (out / name).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
