"""The three listeners' aiohttp applications: ingest, API (with health) and metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from importlib import resources

import asyncpg
from aiohttp import web

from ingest.context import SERVICES, Services
from ingest.errors import Handler, error_middleware, json_response
from verifier.migrations import is_up_to_date

RouteInstaller = Callable[[web.Application], None]


def _count_requests(listener: str) -> Callable[[web.Request, Handler], object]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        services = request.app[SERVICES]
        services.metrics.http_requests.labels(listener, f"{response.status // 100}xx").inc()
        return response

    return middleware


def _base_app(services: Services, listener: str, max_body_bytes: int) -> web.Application:
    app = web.Application(
        client_max_size=max_body_bytes,
        middlewares=[_count_requests(listener), error_middleware],  # type: ignore[list-item]
    )
    app[SERVICES] = services
    return app


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The database is reachable and every migration is applied."""
    services = request.app[SERVICES]
    started = time.perf_counter()
    try:
        async with services.db.pool.acquire(timeout=5) as conn:
            migrated = await is_up_to_date(conn)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        services.metrics.ready.set(0)
        return json_response(
            {"status": "unavailable", "database": "unreachable", "error": str(exc)}, status=503
        )
    services.metrics.ready.set(1 if migrated else 0)
    body = {
        "status": "ok" if migrated else "unavailable",
        "database": "ok",
        "migrations": "applied" if migrated else "pending",
        "database_latency_s": round(time.perf_counter() - started, 4),
    }
    return json_response(body, status=200 if migrated else 503)


def openapi_document() -> bytes:
    """The OpenAPI 3.1 document shipped with the package."""
    return resources.files("ingest").joinpath("openapi.json").read_bytes()


async def openapi(request: web.Request) -> web.Response:
    """Serve the OpenAPI document."""
    return web.Response(body=openapi_document(), content_type="application/json")


def make_ingest_app(services: Services, routes: Iterable[RouteInstaller] = ()) -> web.Application:
    """The public ingest listener (tag events from browsers and shop backends)."""
    app = _base_app(services, "ingest", services.config.ingest.max_body_bytes)
    app.router.add_get("/healthz", healthz)
    for install in routes:
        install(app)
    return app


def make_api_app(services: Services, routes: Iterable[RouteInstaller] = ()) -> web.Application:
    """The merchant API listener: products, verify now, sweeps, health and OpenAPI."""
    app = _base_app(services, "api", services.config.api.max_body_bytes)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/openapi.json", openapi)
    for install in routes:
        install(app)
    return app


def make_metrics_app(services: Services) -> web.Application:
    """The Prometheus listener."""

    async def metrics(request: web.Request) -> web.Response:
        body = services.metrics.render()
        return web.Response(
            body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/metrics", metrics)
    return app
