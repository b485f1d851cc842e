"""The OpenAPI document: valid 3.1, complete for the wired routes, and true of the live API.

The live check runs schemathesis against the real API app (products, verification and sweep
routes) and the real ingest app, each served by a real aiohttp server on 127.0.0.1 (own thread
and event loop, real PostgreSQL), with a merchant, its key, its ingest token and a few
products. It leaves out ``POST .../verify``, which may legitimately wait up to 30 s per call
(``wait``) with no verification engine running; the tenant-isolation test covers it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import orjson
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig

from ingest import products_api, sweeps_api, tag_events, verify_api
from ingest.apps import make_api_app, make_ingest_app, openapi_document
from ingest.context import Services
from tests.merchant_api import api_client, product
from verifier.config import Config, DatabaseConfig
from verifier.database import Database
from verifier.embedded_pg import EmbeddedPostgres
from verifier.merchants import MerchantStore
from verifier.metrics import Metrics
from verifier.migrations import migrate
from verifier.wiring import build_daemon

DOCUMENT: dict[str, Any] = orjson.loads(openapi_document())
LIVE_ROUTES = (products_api.install_routes, verify_api.install_routes, sweeps_api.install_routes)
# The live server's key is fixed so that schemathesis knows it up front: it then tells its own
# requests without a key (negative data, ignored_auth) from ours.
LIVE_KEY_ID, LIVE_SECRET = "0123456789abcdef", "s" * 43
LIVE_KEY = f"cvk_{LIVE_KEY_ID}_{LIVE_SECRET}"
LIVE_TOKEN = "live-ingest-token"
_METHODS = {"get", "put", "post", "delete", "patch", "options"}


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: Any, value: Any) -> bytes:
    """NDJSON bodies are generated as strings (the schema says so) and sent as they are."""
    return (value if isinstance(value, str) else json.dumps(value)).encode()


def test_document_is_valid_openapi_31() -> None:
    """openapi_spec_validator accepts the shipped document as OpenAPI 3.1."""
    assert DOCUMENT["openapi"].startswith("3.1")
    validate(DOCUMENT)


def _documented(path: str, method: str) -> bool:
    return method.lower() in DOCUMENT["paths"].get(path, {})


def _routes(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path and route.method.lower() in _METHODS:
            found.add((str(path), route.method))
    return found


async def test_every_wired_route_is_documented(database: Database) -> None:
    """Each route the daemon installs on either listener has an operation in the document."""
    daemon = build_daemon(Config(), None)
    services = Services(Config(), database, Metrics())
    api = make_api_app(services, daemon._api_routes)
    ingest = make_ingest_app(services, daemon._ingest_routes)
    missing = [
        f"{method} {path}"
        for path, method in sorted(_routes(api) | _routes(ingest))
        if not _documented(path, method)
    ]
    assert missing == []


async def test_the_api_serves_the_repository_file(database: Database) -> None:
    """GET /openapi.json returns ingest/openapi.json byte for byte."""
    repo_file = Path(__file__).parent.parent / "ingest" / "openapi.json"
    async with api_client(database) as client:
        response = await client.get("/openapi.json")
        assert response.status == 200
        assert await response.read() == repo_file.read_bytes()


@dataclass(frozen=True, slots=True)
class LiveApi:
    """Running API and ingest listeners and the credentials of one of their merchants."""

    base_url: str
    ingest_url: str
    headers: dict[str, str]


async def _start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def _serve(cluster: EmbeddedPostgres, data_dir: Path, ready: threading.Event, box: Box) -> None:
    """Run both apps on a fresh database with their own event loop until told to stop."""

    async def main() -> None:
        name = f"openapi_{uuid.uuid4().hex}"
        admin = await asyncpg.connect(cluster.dsn("postgres"))
        await admin.execute(f"CREATE DATABASE {name}")
        dsn = cluster.dsn(name)
        db = Database(DatabaseConfig(dsn=dsn, pool_min_size=1, pool_max_size=20), data_dir)
        try:
            await db.open()
            async with db.pool.acquire() as conn:
                await migrate(conn)
            merchant = await MerchantStore(db).create("shop-a", ["shop.example"])
            await db.pool.execute(
                "INSERT INTO api_keys (key_id, merchant_id, secret_sha256) VALUES ($1, $2, $3)",
                LIVE_KEY_ID,
                merchant.id,
                hashlib.sha256(LIVE_SECRET.encode()).digest(),
            )
            await db.pool.execute(
                "UPDATE merchants SET ingest_token = $1 WHERE id = $2", LIVE_TOKEN, merchant.id
            )
            services = Services(Config(), db, Metrics())
            api, api_url = await _start(make_api_app(services, LIVE_ROUTES))
            ingest, ingest_url = await _start(
                make_ingest_app(services, [tag_events.install_routes])
            )
            headers = {"Authorization": f"Bearer {LIVE_KEY}"}
            box.api = LiveApi(api_url, ingest_url, headers)
            box.stop = asyncio.Event()
            box.loop = asyncio.get_running_loop()
            ready.set()
            await box.stop.wait()
            await api.cleanup()
            await ingest.cleanup()
        finally:
            await db.close()
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await admin.close()

    try:
        asyncio.run(main())
    except BaseException as exc:  # reported to the test thread
        box.error = exc
        ready.set()


@dataclass(slots=True)
class Box:
    """What the server thread hands back to the test."""

    api: LiveApi | None = None
    stop: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None
    error: BaseException | None = None


@pytest.fixture
def live_api(pg_cluster: EmbeddedPostgres, tmp_path: Path) -> Iterator[LiveApi]:
    """Both real apps on real sockets, with one merchant, its key and token, three products.

    It uses only the session's cluster (a synchronous fixture): the server owns its database
    and event loop in a thread, and the test talks to it over the socket.
    """
    ready = threading.Event()
    box = Box()
    thread = threading.Thread(target=_serve, args=(pg_cluster, tmp_path, ready, box), daemon=True)
    thread.start()
    assert ready.wait(60), "the API server did not start"
    if box.error is not None:
        raise box.error
    assert box.api is not None and box.loop is not None and box.stop is not None
    api = box.api
    for product_id in ("sku-123", "p1", "p/3 é"):
        body = product(product_id, url=f"https://shop.example/p/{len(product_id)}")
        response = requests.put(
            f"{api.base_url}/v1/products/{quote(product_id, safe='')}",
            json=body,
            headers=api.headers,
            timeout=10,
        )
        assert response.status_code == 201
    yield api
    box.loop.call_soon_threadsafe(box.stop.set)
    thread.join(30)
    assert not thread.is_alive()


SCHEMA = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=SchemathesisConfig.from_dict(
        {
            "auth": {"openapi": {"bearer": {"bearer": LIVE_KEY}}},
            "parameters": {"path.ingest_token": LIVE_TOKEN},
            # 413 (too many items or bytes) is a rejection too.
            "checks": {
                "negative_data_rejection": {
                    "expected-statuses": [400, 401, 403, 404, 405, 413, 415, 422]
                }
            },
        }
    ),
).exclude(operation_id="verifyProduct")
load_all_checks()
NEGATIVE_DATA_REJECTION = CHECKS.get_one("negative_data_rejection")
LIVE_CHECKS = [
    CHECKS.get_one(name)
    for name in (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "ignored_auth",
    )
]


@SCHEMA.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI results do not depend on luck
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_live_api_conforms_to_the_document(case: Any, live_api: LiveApi) -> None:
    """No 500s; statuses, content types, headers and bodies match the document; bad input is 4xx."""
    checks = LIVE_CHECKS
    if case.media_type == "application/x-ndjson":
        # The NDJSON body is modelled as a string; a generated non-string has no NDJSON
        # spelling that is not itself valid NDJSON, so it cannot be "negative" data.
        checks = [check for check in LIVE_CHECKS if check is not NEGATIVE_DATA_REJECTION]
    ingest = case.path.startswith("/v1/ingest/")
    base_url = live_api.ingest_url if ingest else live_api.base_url
    case.call_and_validate(base_url=base_url, checks=checks, timeout=10)
