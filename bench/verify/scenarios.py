"""The benchmark's scenarios: each prepares its data and runs its measuring process."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.verify.catalog import LATENCY_HOST, catalog, host_addresses, product_at
from bench.verify.dbsetup import (
    canonical_rows,
    create_database,
    create_merchant,
    load_products,
    open_database,
)
from bench.verify.procstats import read_result
from bench.verify.services import ShopProcess, free_port, postmaster_pid
from verifier.embedded_pg import EmbeddedPostgres

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True, slots=True)
class EngineVariant:
    """How scenario (a) and its variants feed the engine."""

    feed: str  # "changed": queued in the changed lane and claimed; "sweep": submitted
    split: bool  # False: one merchant owns every host; True: one merchant per host


ENGINE_VARIANTS = {
    "a": EngineVariant(feed="changed", split=False),
    "a-split": EngineVariant(feed="changed", split=True),
    "a-sweep": EngineVariant(feed="sweep", split=False),
}


def run_child(
    module: str,
    arguments: list[str],
    result: Path,
    timeout_s: float,
    wrapper: list[str] | None = None,
) -> dict[str, Any]:
    """Run one measuring process (under ``wrapper``, e.g. a profiler) and read its result."""
    command = [
        *(wrapper or []),
        sys.executable,
        "-m",
        f"bench.verify.{module}",
        *arguments,
        "--result",
        str(result),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(command, cwd=ROOT, env=env, check=True, timeout=timeout_s)
    return read_result(result)


class Bench:
    """The cluster, the shop and the data shared by every scenario of one invocation."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.hosts = host_addresses(args.hosts)
        self.port = free_port()
        self.cluster = EmbeddedPostgres(work, database="postgres")
        self.dsn = ""
        self.shop: ShopProcess | None = None
        self.latency_merchant_id = 0
        # per layout (split or not): merchant id -> its products' canonical rows
        self.rows: dict[bool, dict[int, list[dict[str, Any]]]] = {}

    def watch(self) -> list[str]:
        """--watch arguments: the CPU of postgres and of the shop, accounted by each child."""
        assert self.shop is not None
        pg = postmaster_pid(self.cluster)
        return ["--watch", f"postgres={pg}", "--watch", f"shop={self.shop.pid}"]

    async def prepare(self, dsn: str) -> None:
        """Schema, merchants (both layouts) and the canonical product rows."""
        self.dsn = dsn
        await create_database(self.cluster.dsn("postgres"), dsn)
        products = catalog(self.args.pages, self.hosts, self.port)
        rows = canonical_rows(products, self.hosts)
        async with open_database(dsn) as db:
            whole = await create_merchant(db, "bench-shop", self.hosts)
            self.rows[False] = {whole: rows}
            per_host = {
                h: await create_merchant(db, f"bench-host-{i}", [h])
                for i, h in enumerate(self.hosts)
            }
            self.latency_merchant_id = await create_merchant(db, "bench-latency", [LATENCY_HOST])
        split: dict[int, list[dict[str, Any]]] = {merchant: [] for merchant in per_host.values()}
        for product, row in zip(products, rows, strict=True):
            split[per_host[product.host]].append(row)
        self.rows[True] = split

    async def _load(self, rows: dict[int, list[dict[str, Any]]], *, due: bool) -> None:
        async with open_database(self.dsn) as db:
            await load_products(db, rows, due=due)

    def run_engine(
        self,
        key: str,
        run: int,
        *,
        profile: Path | None = None,
        py_spy: Path | None = None,
    ) -> dict[str, Any]:
        """Scenario (a) or a variant: the engine (optionally under cProfile or py-spy)."""
        variant = ENGINE_VARIANTS[key]
        rows = self.rows[variant.split]
        asyncio.run(self._load(rows, due=variant.feed == "changed"))
        arguments = [
            "--dsn",
            self.dsn,
            *(f"--merchant-id={merchant_id}" for merchant_id in rows),
            "--feed",
            variant.feed,
            "--count",
            str(self.args.pages),
            "--concurrency",
            str(self.args.concurrency),
            "--per-host-concurrency",
            str(self.args.per_host_concurrency),
            *self.watch(),
        ]
        if profile is not None:
            arguments += ["--profile", str(profile)]
        wrapper = None
        if py_spy is not None:
            spy = str(Path(sys.executable).with_name("py-spy"))
            wrapper = [spy, "record", "--function", "--format", "raw", "--rate", "200"]
            wrapper += ["-o", str(py_spy), "--"]
        result = self.work / f"{key}-{run}.json"
        return run_child("engine_throughput", arguments, result, 600, wrapper)

    def run_scrapy(self, run: int) -> dict[str, Any]:
        """Scenario (b): Scrapy on the first --scrapy-pages pages."""
        pages = min(self.args.pages, self.args.scrapy_pages)
        arguments = [*self._crawl(pages), "--concurrency", str(self.args.scrapy_concurrency)]
        return run_child("scrapy_run", arguments, self.work / f"b-{run}.json", 900)

    def run_bare(self, run: int, *, parse: bool) -> dict[str, Any]:
        """Scenario (c), or (f) without the parse."""
        arguments = [
            *self._crawl(self.args.pages),
            "--concurrency",
            str(self.args.bare_concurrency),
        ]
        if not parse:
            arguments.append("--fetch-only")
        name = "c" if parse else "f"
        return run_child("bare_run", arguments, self.work / f"{name}-{run}.json", 600)

    def _crawl(self, pages: int) -> list[str]:
        return [
            "--count",
            str(pages),
            "--hosts",
            str(self.args.hosts),
            "--port",
            str(self.port),
            *self.watch(),
        ]

    def run_latency(self) -> dict[str, Any]:
        """The on-demand latency probe over a sweep backlog."""
        count = self.args.latency_backlog + self.args.latency_samples + 1  # + warm-up
        products = [product_at(i, LATENCY_HOST, self.port, prefix="L") for i in range(count)]
        rows = canonical_rows(products, [LATENCY_HOST])
        asyncio.run(self._load({self.latency_merchant_id: rows}, due=False))
        arguments = [
            "--dsn",
            self.dsn,
            "--merchant-id",
            str(self.latency_merchant_id),
            "--port",
            str(self.port),
            "--backlog",
            str(self.args.latency_backlog),
            "--samples",
            str(self.args.latency_samples),
            "--per-host-rate",
            "10",
            *self.watch(),
        ]
        return run_child("engine_latency", arguments, self.work / "latency.json", 600)

    def run_unit_costs(self) -> dict[str, Any]:
        """Per-step CPU costs, measured alone."""
        arguments = ["--hosts", str(self.args.hosts)]
        return run_child("unit_costs", arguments, self.work / "costs.json", 300)
