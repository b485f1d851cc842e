"""Scenario (c): a bare aiohttp + uvloop loop that fetches every page and builds its full tree.

``python -m bench.verify.bare_run --count N --hosts H --port P --result FILE [--fetch-only]``

No database, no extraction: fetch, then ``lxml.html.document_fromstring`` of the whole page.
This is the floor of any crawler that parses pages the ordinary way. With ``--fetch-only`` the
tree is skipped: what fetching alone costs with this client (scenario (f), the ceiling of any
aiohttp-based verifier).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import time
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from bench.verify.catalog import catalog, host_addresses
from bench.verify.procstats import CpuWindow, parse_watch, peak_rss_mb, write_result

# lxml ships no type information (the verifier imports it the same way).
_html: Any = importlib.import_module("lxml.html")


async def _crawl(
    urls: list[str], concurrency: int, per_host: int, *, parse: bool
) -> tuple[int, int]:
    pending = iter(urls)
    parsed = failed = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal parsed, failed
        for url in pending:
            try:
                async with session.get(url) as resp:
                    body = await resp.read()
                    ok = resp.status == 200
            except aiohttp.ClientError:
                ok = False
            if ok and (not parse or _html.document_fromstring(body).find("body") is not None):
                parsed += 1
            else:
                failed += 1

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=per_host)
    async with aiohttp.ClientSession(connector=connector) as session, asyncio.TaskGroup() as tg:
        for _ in range(concurrency):
            tg.create_task(worker(session))
    return parsed, failed


def main() -> None:
    """Fetch and parse every page once and write the measurements to --result."""
    parser = argparse.ArgumentParser(prog="python -m bench.verify.bare_run")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--hosts", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--per-host-concurrency", type=int, default=8)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--watch", action="append", default=[])
    parser.add_argument("--fetch-only", action="store_true", help="skip the lxml tree")
    args = parser.parse_args()
    urls = [p.url for p in catalog(args.count, host_addresses(args.hosts), args.port)]
    window = CpuWindow(parse_watch(args.watch))
    window.start()
    started = time.perf_counter()
    parsed, failed = uvloop.run(
        _crawl(urls, args.concurrency, args.per_host_concurrency, parse=not args.fetch_only)
    )
    elapsed_s = time.perf_counter() - started
    window.stop()
    result: dict[str, Any] = {
        "pages": args.count,
        "parsed": parsed,
        "failed": failed,
        "elapsed_s": elapsed_s,
        "pages_per_s": parsed / elapsed_s,
        "cpu_s": window.self_cpu_s,
        "cpu_ms_per_page": 1000 * window.self_cpu_s / max(parsed, 1),
        "peak_rss_mb": peak_rss_mb(),
        "others_cpu_s": window.others_cpu_s,
        "runqueue_wait_s": window.runqueue_wait_s,
    }
    write_result(args.result, result)


if __name__ == "__main__":
    main()
