"""The HTTP servers the ingest benchmark compares, each run in its own process on uvloop.

``python -m bench.ingest.servers MODE PORT DSN``:

- ``ingest``: the real ingest app (middlewares, token cache, validation, group commit);
- ``hello``: a bare aiohttp POST endpoint that only parses the JSON body (the ceiling);
- ``naive``: validation plus one upsert statement, hence one commit, per request.

Environment knobs for studying the ingest path: ``BENCH_INGEST_WRITERS=N`` (writer tasks) and
``BENCH_PROFILE=/tmp/ingest-%s.prof`` (cProfile of the server; ``%s`` becomes the mode).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import uvloop
from aiohttp import web

from ingest.apps import make_ingest_app
from ingest.context import Services
from ingest.tag_events import VISITED_PATH, install_routes
from verifier.config import Config, DatabaseConfig
from verifier.daemon import tune_garbage_collector
from verifier.database import Database
from verifier.ingest_writer import IngestWriter
from verifier.metrics import Metrics
from verifier.product_schema import validate_product

ACCEPTED = orjson.dumps({"accepted": 1, "rejected": 0, "errors": []})
COMMITS_PATH = "/bench/commits"


def _commit_stats(metrics: Metrics) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Group commits so far, read from the writer's histogram: {"commits", "rows"}."""

    async def handler(request: web.Request) -> web.Response:
        family = next(iter(metrics.ingest_batch_rows.collect()))
        samples = {sample.name: sample.value for sample in family.samples}
        body = {
            "commits": samples["catalog_verifier_ingest_commit_rows_count"],
            "rows": samples["catalog_verifier_ingest_commit_rows_sum"],
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    return handler


def hello_app() -> web.Application:
    """Parse the body and answer 202: what any JSON endpoint costs at least."""

    async def visited(request: web.Request) -> web.Response:
        payload = orjson.loads(await request.read())
        count = len(payload) if isinstance(payload, list) else 1
        body = orjson.dumps({"accepted": count, "rejected": 0, "errors": []})
        return web.Response(status=202, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post(VISITED_PATH, visited)
    return app


async def naive_app(db: Database) -> web.Application:
    """Validate, then one INSERT ... ON CONFLICT and one commit per request."""
    async with db.pool.acquire() as conn:
        merchant = await conn.fetchrow("SELECT id, hosts, currency FROM merchants LIMIT 1")
    hosts = tuple(merchant["hosts"])
    sql = db.queries["ingest_upsert_tag_products"]

    async def visited(request: web.Request) -> web.Response:
        payload = orjson.loads(await request.read())
        product, _ = validate_product(
            payload, allowed_hosts=hosts, default_currency=merchant["currency"]
        )
        if product is None:
            return web.Response(status=422)
        async with db.pool.acquire() as conn:
            data = orjson.dumps(product).decode()
            await conn.execute(sql, [merchant["id"]], [data])
        return web.Response(status=202, body=ACCEPTED, content_type="application/json")

    app = web.Application()
    app.router.add_post(VISITED_PATH, visited)
    return app


async def serve(mode: str, port: int, dsn: str) -> None:
    """Run one server until SIGTERM."""
    db = Database(DatabaseConfig(dsn=dsn), Path(tempfile.gettempdir()))
    if mode != "hello":
        await db.open()
    if mode == "ingest":
        services = Services(Config(), db, Metrics())
        # Optional override of the number of writer tasks, to study group commit sizing.
        writers = int(os.environ.get("BENCH_INGEST_WRITERS", "0")) or None
        services.extras["ingest_writer"] = writer = IngestWriter(
            db, services.metrics, writers=writers
        )
        await writer.start()
        app = make_ingest_app(services, [install_routes])
        app.router.add_get(COMMITS_PATH, _commit_stats(services.metrics))
    elif mode == "naive":
        app = await naive_app(db)
    else:
        app = hello_app()
    # Every server gets the daemon's garbage-collector settings, the ceiling included.
    tune_garbage_collector()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()
    if mode == "ingest":
        await writer.close()
    if mode != "hello":
        await db.close()


def main() -> None:
    """Serve; with BENCH_PROFILE=FILE, write a cProfile of the run to FILE (%s: the mode)."""
    profile_path = os.environ.get("BENCH_PROFILE")
    if not profile_path:
        uvloop.run(serve(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
        return
    import cProfile

    with cProfile.Profile() as profile:
        uvloop.run(serve(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
    profile.dump_stats(profile_path.replace("%s", sys.argv[1]))


if __name__ == "__main__":
    main()
