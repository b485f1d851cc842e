"""The benchmark shop: pre-rendered product pages served on many loopback addresses.

``python -m bench.verify.shop PAGES HOSTS PORT PROCESSES``

Renders the throughput catalog once, then forks so that PROCESSES processes share the pages
(copy-on-write) and accept on the same sockets (SO_REUSEPORT). Every address 127.0.0.2, ... is
its own host. The latency host (127.0.1.2) renders its pages on request: its catalog is large
but it is only fetched at a few requests per second. Each process prints ``ready`` once its
listeners are up and serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

import uvloop
from aiohttp import web

from bench.verify.catalog import LATENCY_HOST, catalog, host_addresses, product_at
from bench.verify.pages import render_page

# Latency-host paths end in "/<index>-<slug>.html"; the index is all it takes to rebuild the page.
_INDEX_RE = re.compile(r"/(\d+)-[^/]*\.html$")
_HEADERS = {"Cache-Control": "no-store, no-cache", "X-Powered-By": "PrestaShop"}


def _handler(pages: dict[str, bytes], port: int) -> web.Server:
    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        body = pages.get(request.path)
        if body is None and request.host.split(":")[0] == LATENCY_HOST:
            match = _INDEX_RE.search(request.path)
            if match is not None:
                product = product_at(int(match.group(1)), LATENCY_HOST, port, prefix="L")
                if product.path == request.path:
                    body = render_page(product)
        if body is None:
            return web.Response(status=404, text="Page not found", headers=_HEADERS)
        return web.Response(body=body, content_type="text/html", charset="utf-8", headers=_HEADERS)

    return web.Server(handle, access_log=None)


async def _serve(pages: dict[str, bytes], hosts: list[str], port: int) -> None:
    runner = web.ServerRunner(_handler(pages, port), handle_signals=False)
    await runner.setup()
    for host in [*hosts, LATENCY_HOST]:
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_port=True)
        await site.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    os.write(1, f"ready {os.getpid()}\n".encode())
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    """Render the pages, fork the serving processes and serve."""
    count, host_count, port, processes = (int(arg) for arg in sys.argv[1:5])
    hosts = host_addresses(host_count)
    pages = {p.path: render_page(p) for p in catalog(count, hosts, port)}
    children: list[int] = []
    for _ in range(processes - 1):
        pid = os.fork()
        if pid == 0:
            children = []
            break
        children.append(pid)
    try:
        uvloop.run(_serve(pages, hosts, port))
    finally:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
