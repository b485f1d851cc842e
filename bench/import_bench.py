"""Import benchmark: products/s and server memory of POST /v1/products/import.

``.venv/bin/python bench/import_bench.py [--products 100000] [--formats ndjson,csv,json]``

Starts a private PostgreSQL cluster (normal durability) in a temporary directory, writes a
catalog file per format, and for each format starts the API listener in its own process (uvloop)
and streams the file to it with a chunked upload from this process: first into an empty
catalog (every product created), then again (every product unchanged). Reports products/s of
both passes and the server's peak RSS (VmHWM) before and after, prints a Markdown table and
writes it as JSON under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import orjson  # noqa: E402

from verifier.config import DatabaseConfig  # noqa: E402
from verifier.database import Database  # noqa: E402
from verifier.embedded_pg import EmbeddedPostgres  # noqa: E402
from verifier.merchants import ApiKeyStore, MerchantStore  # noqa: E402
from verifier.migrations import migrate  # noqa: E402

MEDIA_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv", "json": "application/json"}
CSV_COLUMNS = ("product_id", "url", "name", "unit_price", "brand", "categories", "tags")
CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Result:
    """One format's numbers."""

    format: str
    products: int
    body_mb: float
    created_per_s: float
    unchanged_per_s: float
    rss_before_mb: float
    peak_rss_mb: float


def _product(number: int) -> dict[str, Any]:
    return {
        "product_id": f"sku-{number:07d}",
        "url": f"https://shop.example/p/sku-{number:07d}",
        "name": f"Merino wool sweater, size {number % 7}, colour {number % 13}",
        "unit_price": f"{10 + number % 500}.{number % 100:02d}",
        "brand": "Example Knitwear",
        "categories": ["/Clothing/Sweaters", "/Sale"],
        "tags": ["wool", "winter"],
    }


def write_catalog(path: Path, fmt: str, count: int) -> None:
    """A catalog of ``count`` products in ``fmt``."""
    with path.open("wb") as out:
        if fmt == "csv":
            out.write((",".join(CSV_COLUMNS) + "\n").encode())
        elif fmt == "json":
            out.write(b"[")
        for number in range(count):
            product = _product(number)
            if fmt == "csv":
                cells = [
                    "|".join(value) if isinstance(value, list) else f'"{value}"'
                    for value in (product[column] for column in CSV_COLUMNS)
                ]
                out.write((",".join(cells) + "\n").encode())
            elif fmt == "json":
                out.write((b"," if number else b"") + orjson.dumps(product))
            else:
                out.write(orjson.dumps(product) + b"\n")
        if fmt == "json":
            out.write(b"]")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set size so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            yield chunk


async def _upload(url: str, key: str, path: Path, fmt: str) -> tuple[float, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": MEDIA_TYPES[fmt]}
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        started = time.perf_counter()
        async with session.post(url, data=_file_chunks(path), headers=headers) as response:
            report: dict[str, Any] = await response.json()
            if response.status != 200:
                raise RuntimeError(f"import failed: {response.status} {report}")
        return time.perf_counter() - started, report


async def _wait_ready(url: str, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


async def bench_format(dsn: str, workdir: Path, fmt: str, count: int) -> Result:
    """Create a merchant, start a server, import the catalog twice."""
    path = workdir / f"catalog.{fmt}"
    write_catalog(path, fmt, count)
    db = Database(DatabaseConfig(dsn=dsn, pool_min_size=1, pool_max_size=2), workdir)
    await db.open()
    try:
        merchant = await MerchantStore(db).create(f"bench-{fmt}", ["shop.example"])
        key = (await ApiKeyStore(db).create(merchant)).key
    finally:
        await db.close()
    port = _free_port()
    env = {**os.environ, "CATALOG_VERIFIER_DATABASE__DSN": dsn}
    server = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", str(port), env=env, cwd=ROOT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        await _wait_ready(f"{base}/readyz", server)
        rss_before = _peak_rss_mb(server.pid)
        created_s, first = await _upload(f"{base}/v1/products/import", key, path, fmt)
        assert first["created"] == count, first
        unchanged_s, second = await _upload(f"{base}/v1/products/import", key, path, fmt)
        assert second["unchanged"] == count, second
        peak = _peak_rss_mb(server.pid)
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)
    return Result(
        format=fmt,
        products=count,
        body_mb=round(path.stat().st_size / 1e6, 1),
        created_per_s=round(count / created_s),
        unchanged_per_s=round(count / unchanged_s),
        rss_before_mb=round(rss_before, 1),
        peak_rss_mb=round(peak, 1),
    )


def serve(port: int) -> None:
    """The API listener alone (child process)."""
    import uvloop
    from aiohttp import web

    from ingest.apps import make_api_app
    from ingest.context import Services
    from ingest.products_api import install_routes
    from verifier.config import load_config
    from verifier.metrics import Metrics

    async def main() -> None:
        config = load_config()
        async with Database(config.database, config.data_dir) as db:
            app = make_api_app(Services(config, db, Metrics()), [install_routes])
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            await asyncio.Event().wait()

    uvloop.run(main())


async def run(count: int, formats: list[str]) -> list[Result]:
    """Every format against one private cluster."""
    with tempfile.TemporaryDirectory(prefix="cv-import-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)  # the cluster may run as another user
        cluster = EmbeddedPostgres(workdir, database="postgres")
        await asyncio.to_thread(cluster.acquire)
        try:
            admin = await asyncpg.connect(cluster.dsn("postgres"))
            await admin.execute("CREATE DATABASE bench_import")
            await admin.close()
            dsn = cluster.dsn("bench_import")
            conn = await asyncpg.connect(dsn)
            await migrate(conn)
            await conn.close()
            return [await bench_format(dsn, workdir, fmt, count) for fmt in formats]
        finally:
            await asyncio.to_thread(cluster.release)


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--formats", default="ndjson,csv,json")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    results = asyncio.run(run(args.products, args.formats.split(",")))
    print("| format | products | body MB | created/s | unchanged/s | RSS idle MB | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.format} | {r.products:,} | {r.body_mb} | {r.created_per_s:,} | "
            f"{r.unchanged_per_s:,} | {r.rss_before_mb} | {r.peak_rss_mb} |"
        )
    out = ROOT / "bench" / "results" / f"import-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
