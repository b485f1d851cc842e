"""Markdown tables of the benchmark's results, machine notes, cProfile hotspots."""

from __future__ import annotations

import io
import os
import platform
import pstats
import statistics
from importlib import metadata
from pathlib import Path
from typing import Any

TITLES = {
    "a": "(a) catalog-verifier: fetch + parse + DB update",
    "a-split": "(a-split) same, one merchant per host",
    "a-sweep": "(a-sweep) same, sweep lane (submit) instead of changed-lane claims",
    "b": "(b) Scrapy, same fields, no DB",
    "c": "(c) bare aiohttp + full lxml tree, no DB",
    "f": "(f) bare aiohttp fetch only, no parse, no DB (floor)",
}


def machine_notes() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    versions = {}
    for package in ("aiohttp", "uvloop", "lxml", "asyncpg", "scrapy", "twisted"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(total_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
    }


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def _other_ms_per_page(runs: list[dict[str, Any]], name: str) -> float:
    return float(
        statistics.median(
            1000 * run["others_cpu_s"][name] / max(run["pages_per_s"] * run["elapsed_s"], 1)
            for run in runs
        )
    )


def print_throughput(results: dict[str, Any]) -> dict[str, Any]:
    """Print the throughput table and ratios; return the medians."""
    summary: dict[str, Any] = {}
    if not results["runs"]:
        return summary
    lines = [
        "| scenario | pages per run | pages/s | CPU s / 1,000 pages | peak RSS MiB"
        " | postgres CPU s / 1,000 pages | shop CPU s / 1,000 pages"
        " | on CPU / waiting for CPU, % of wall | pages/s of each run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, runs in results["runs"].items():
        each_run = [round(run["pages_per_s"]) for run in runs]
        row: dict[str, Any] = {
            "pages_per_s": _median(runs, "pages_per_s"),
            "cpu_s_per_1000": _median(runs, "cpu_ms_per_page"),
            "peak_rss_mb": _median(runs, "peak_rss_mb"),
            "postgres_cpu_s_per_1000": _other_ms_per_page(runs, "postgres"),
            "shop_cpu_s_per_1000": _other_ms_per_page(runs, "shop"),
            "each_run": each_run,
            "on_cpu_share": float(statistics.median(r["cpu_s"] / r["elapsed_s"] for r in runs)),
            "runqueue_share": float(
                statistics.median(r.get("runqueue_wait_s", 0.0) / r["elapsed_s"] for r in runs)
            ),
        }
        summary[key] = row
        each = ", ".join(f"{x:,}" for x in each_run)
        lines.append(
            f"| {TITLES[key]} | {runs[0]['pages']:,} | {row['pages_per_s']:,.0f}"
            f" | {row['cpu_s_per_1000']:.3f}"
            f" | {row['peak_rss_mb']:.0f} | {row['postgres_cpu_s_per_1000']:.3f}"
            f" | {row['shop_cpu_s_per_1000']:.3f}"
            f" | {100 * row['on_cpu_share']:.0f} / {100 * row['runqueue_share']:.0f} | {each} |"
        )
    print("\n" + "\n".join(lines))
    a = summary.get("a")
    for other, target in (("b", 5.0), ("c", 1.5)):
        if a is None or other not in summary:
            continue
        speed = a["pages_per_s"] / summary[other]["pages_per_s"]
        cpu = summary[other]["cpu_s_per_1000"] / a["cpu_s_per_1000"]
        summary[f"a_over_{other}"] = {"pages_per_s": speed, "cpu_per_page": 1 / cpu}
        verdict = "met" if speed >= target else "MISSED"
        print(
            f"(a)/({other}): {speed:.2f}x the pages/s (target >= {target:g}x: {verdict});"
            f" {1 / cpu:.2f}x the CPU per page"
        )
    for key in ("a", "a-split", "a-sweep"):
        if key in results["runs"]:
            print(_engine_diagnostics(key, results["runs"][key]))
    return summary


def _engine_diagnostics(key: str, runs: list[dict[str, Any]]) -> str:
    """Where the engine's jobs waited, from its last run."""
    run = runs[-1]
    flush = run.get("writer_flushes", {}).get("_flush", {})
    claim = run.get("claims", {}).get("claim_changed", {})
    return (
        f"({key}) last run: feed {run.get('feed')}, {run.get('merchants')} merchant(s),"
        f" outcomes {run['outcomes']}; mean jobs running {run.get('mean_in_flight', 0):.0f},"
        f" queued {run.get('mean_queued', 0):.0f}; result writer busy"
        f" {100 * flush.get('busy_share', 0):.0f}% of wall ({flush.get('calls', 0)} commits of"
        f" {flush.get('mean_items', 0):.0f} rows); claim_changed busy"
        f" {100 * claim.get('busy_share', 0):.0f}% ({claim.get('calls', 0)} claims of"
        f" {claim.get('mean_items', 0):.0f} rows)"
    )


def print_latency(latency: dict[str, Any]) -> None:
    """Print the on-demand latency summary."""
    # The target allows one token interval (100 ms) plus the fetch plus 50 ms: judged per sample
    # as latency minus that sample's own fetch time.
    verdict = "met" if latency["excess_p99_ms"] <= 150 else "MISSED"
    print(
        f"\nOn-demand latency, {len(latency['samples'])} samples, sweep backlog"
        f" {latency['backlog']:,} on the same host at {latency['per_host_rate']:g} req/s"
        f" (measured {latency['host_requests_per_s']:.1f} req/s on the host):\n"
        "| | p50 ms | p99 ms |\n|---|---:|---:|\n"
        f"| request -> result | {latency['latency_p50_ms']:.1f}"
        f" | {latency['latency_p99_ms']:.1f} |\n"
        f"| fetch alone | {latency['fetch_p50_ms']:.1f} | {latency['fetch_p99_ms']:.1f} |\n"
        f"| latency - fetch | {latency['excess_p50_ms']:.1f}"
        f" | {latency['excess_p99_ms']:.1f} |\n"
        f"target p99 of (latency - fetch) <= 100 + 50 ms: {verdict};"
        f" outcomes {latency['outcomes']}; sweep lane depth never below"
        f" {latency['min_sweep_depth']:,}"
    )


def print_profile(stats_path: Path, limit: int = 30) -> list[dict[str, Any]]:
    """Print the top functions by own time and return them."""
    # pstats keeps its table in undocumented attributes: read them untyped.
    stats: Any = pstats.Stats(str(stats_path), stream=io.StringIO())
    total: float = stats.total_tt
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():
        rows.append(
            {
                "function": f"{Path(filename).name}:{line}({name})",
                "calls": calls,
                "own_s": own,
                "cumulative_s": cumulative,
            }
        )
    rows.sort(key=lambda r: r["own_s"], reverse=True)
    print(f"\ncProfile of (a), {total:.2f}s profiled; top {limit} by own time:")
    print("| function | calls | own s | own % | cumulative s |\n|---|---:|---:|---:|---:|")
    for row in rows[:limit]:
        print(
            f"| {row['function']} | {row['calls']:,} | {row['own_s']:.3f}"
            f" | {100 * row['own_s'] / total:.1f} | {row['cumulative_s']:.3f} |"
        )
    return rows[:limit]


# Where the verifier's CPU goes, by the function a sample is inside of (first match from the
# innermost frame outwards wins, so nested components are not counted twice).
COMPONENTS = (
    ("parse (verifier.parser)", "parse_product_page (verifier/parser.py"),
    ("decide (verifier.outcomes)", "decide (verifier/outcomes.py"),
    ("host policy (verifier.netguard)", "url_violation (verifier/netguard.py"),
    ("fetch (verifier.fetcher + aiohttp)", "(verifier/fetcher.py"),
    ("result writes (verifier.results)", "(verifier/results.py"),
    ("claims (verifier.engine feeders)", "_feed_changed (verifier/engine.py"),
    ("frontier (verifier.frontier)", "(verifier/frontier.py"),
    ("asyncpg", "(asyncpg/"),
    ("aiohttp (outside fetch calls)", "(aiohttp/"),
)


def print_py_spy(raw_path: Path, limit: int = 25) -> dict[str, Any]:
    """Summarise py-spy's collapsed stacks: CPU share by component and top functions."""
    total = 0
    own: dict[str, int] = {}
    components: dict[str, int] = {}
    for line in raw_path.read_text("utf-8").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        leaf = frames[-1]
        own[leaf] = own.get(leaf, 0) + count
        component = "other (event loop, imports, start-up)"
        for frame in reversed(frames):
            match = next((name for name, needle in COMPONENTS if needle in frame), None)
            if match is not None:
                component = match
                break
        components[component] = components.get(component, 0) + count
    print(f"\npy-spy of (a): {total:,} samples of on-CPU stacks")
    print("| component | share of CPU samples |\n|---|---:|")
    for name, count in sorted(components.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {100 * count / total:.1f}% |")
    print(f"\ntop {limit} functions by own samples:\n| function | own % |\n|---|---:|")
    top = sorted(own.items(), key=lambda kv: -kv[1])[:limit]
    for frame, count in top:
        print(f"| {frame} | {100 * count / total:.1f}% |")
    return {
        "samples": total,
        "components": {k: v / total for k, v in components.items()},
        "top_own": [{"function": f, "share": c / total} for f, c in top],
    }


def print_unit_costs(costs: dict[str, float]) -> None:
    """Print the per-step CPU costs."""
    print("\nCPU per page of each step, measured alone (unit_costs):")
    print("| step | CPU us / page |\n|---|---:|")
    for step, us in costs.items():
        print(f"| {step} | {us:,.0f} |")
