"""The public ingest listener's tag events: product-visited and product-not-found.

Browsers post here (``navigator.sendBeacon`` sends ``text/plain``), and so do shop backends.
A request is answered 202 only once its data is committed (see :mod:`verifier.ingest_writer`).
CORS is granted to origins on the merchant's allowed hosts; other origins still have their
request processed, without CORS headers, and browsers withhold the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from ingest.context import SERVICES, Services
from ingest.errors import ApiError, json_response
from verifier.database import Database
from verifier.exceptions import CatalogVerifierError
from verifier.ingest_writer import IngestUnavailable, IngestWriter
from verifier.product_schema import (
    FieldError,
    normalize_host,
    parse_product_id,
    url_host,
    validate_product,
)

VISITED_PATH = "/v1/ingest/{ingest_token}/product-visited"
NOT_FOUND_PATH = "/v1/ingest/{ingest_token}/product-not-found"
MAX_BATCH_ITEMS = 500
MAX_TOKEN_CHARS = 256
_CONTENT_TYPES = frozenset({"application/json", "text/plain"})
_PREFLIGHT_MAX_AGE_S = "86400"
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class IngestMerchant:
    """What the ingest path needs to know about the merchant owning a token."""

    id: int
    hosts: tuple[str, ...]
    host_set: frozenset[str]
    currency: str


class MerchantTokens:
    """Ingest token -> merchant, cached in memory (misses too) for a few seconds.

    Concurrent misses of one token share a single database lookup.
    """

    def __init__(
        self,
        db: Database,
        *,
        ttl_s: float = 10.0,
        negative_ttl_s: float = 2.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._ttl_s = ttl_s
        self._negative_ttl_s = negative_ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, IngestMerchant | None]] = {}
        self._loading: dict[str, asyncio.Task[IngestMerchant | None]] = {}

    async def get(self, token: str) -> IngestMerchant | None:
        """The merchant of ``token``, or None if no merchant has it."""
        hit = self._entries.get(token)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        task = self._loading.get(token)
        if task is None:
            task = asyncio.create_task(self._load(token))
            self._loading[token] = task
            task.add_done_callback(lambda _: self._loading.pop(token, None))
        # A client going away must not cancel a lookup other requests are waiting for.
        return await asyncio.shield(task)

    async def _load(self, token: str) -> IngestMerchant | None:
        async with self._db.pool.acquire(timeout=self._db.config.connect_timeout_s) as conn:
            row = await conn.fetchrow(self._db.queries["ingest_merchant_by_token"], token)
        merchant = None
        if row is not None:
            hosts = tuple(row["hosts"])
            host_set = frozenset(normalize_host(host) for host in hosts)
            merchant = IngestMerchant(row["id"], hosts, host_set, row["currency"])
        now = self._clock()
        if len(self._entries) >= self._max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
        ttl = self._ttl_s if merchant is not None else self._negative_ttl_s
        self._entries[token] = (now + ttl, merchant)
        return merchant


TOKENS = web.AppKey("ingest_tokens", MerchantTokens)
WRITER = web.AppKey("ingest_writer", IngestWriter)


def install_routes(app: web.Application) -> None:
    """Add the tag event routes to the ingest app.

    Uses ``services.extras["ingest_writer"]`` when the composition root runs one; otherwise the
    app owns a writer, started and flushed with the app.
    """
    services = app[SERVICES]
    app[TOKENS] = MerchantTokens(services.db)
    shared = services.extras.get("ingest_writer")
    if isinstance(shared, IngestWriter):
        app[WRITER] = shared
    else:
        app[WRITER] = IngestWriter(services.db, services.metrics)
        app.cleanup_ctx.append(_own_writer)
    app.router.add_post(VISITED_PATH, product_visited)
    app.router.add_route("OPTIONS", VISITED_PATH, preflight)
    app.router.add_post(NOT_FOUND_PATH, product_not_found)
    app.router.add_route("OPTIONS", NOT_FOUND_PATH, preflight)


def make_ingest_writer(services: Services) -> IngestWriter:
    """Component factory: the shared writer, registered in ``services.extras``."""
    writer = IngestWriter(services.db, services.metrics)
    services.extras["ingest_writer"] = writer
    return writer


async def _own_writer(app: web.Application) -> AsyncIterator[None]:
    writer = app[WRITER]
    await writer.start()
    yield
    await writer.close()


# --- request plumbing --------------------------------------------------------------------------


async def _merchant(request: web.Request) -> IngestMerchant:
    token = request.match_info["ingest_token"]
    merchant = None
    if len(token) <= MAX_TOKEN_CHARS:
        try:
            merchant = await request.app[TOKENS].get(token)
        except (*_DB_ERRORS, CatalogVerifierError) as exc:
            raise _unavailable({"Vary": "Origin"}) from exc
    if merchant is None:
        raise ApiError(
            404, "unknown ingest token", code="unknown_token", headers={"Vary": "Origin"}
        )
    return merchant


def _cors_headers(request: web.Request, merchant: IngestMerchant) -> dict[str, str]:
    origin = request.headers.get("Origin")
    if origin and url_host(origin) in merchant.host_set:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {"Vary": "Origin"}


def _unavailable(headers: dict[str, str]) -> ApiError:
    return ApiError(
        503,
        "the tag data could not be stored; retry later",
        headers={**headers, "Retry-After": "1"},
    )


async def _read_json(request: web.Request, cors: dict[str, str]) -> object:
    if request.content_type not in _CONTENT_TYPES:
        raise ApiError(415, "send JSON as application/json or text/plain", headers=cors)
    limit = request.app[SERVICES].config.ingest.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"request body larger than {limit} bytes", headers=cors)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"request body larger than {limit} bytes", headers=cors) from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc}", headers=cors) from None


def _items(payload: object, cors: dict[str, str]) -> tuple[list[object], bool]:
    if not isinstance(payload, list):
        return [payload], False
    if not payload:
        raise ApiError(400, "the array is empty", headers=cors)
    if len(payload) > MAX_BATCH_ITEMS:
        raise ApiError(
            413, f"at most {MAX_BATCH_ITEMS} items per request, got {len(payload)}", headers=cors
        )
    return payload, True


def _rejected(request: web.Request, count: int) -> None:
    if count:
        request.app[SERVICES].metrics.ingest_events.labels("rejected").inc(count)


# --- handlers ----------------------------------------------------------------------------------


async def product_visited(request: web.Request) -> web.Response:
    """Store tag observations: 202 once committed, bad items reported and skipped."""
    merchant = await _merchant(request)
    cors = _cors_headers(request, merchant)
    # The decoded body is dropped before the commit is awaited (the products once queued):
    # objects kept across the wait survive garbage collections, which then cost more.
    products, errors, received = _checked(await _read_json(request, cors), merchant, cors)
    accepted = len(products)
    rejected = received - accepted
    _rejected(request, rejected)
    details = [error.as_dict() for error in errors]
    if not products:
        raise ApiError(422, "no valid product in the request", details=details, headers=cors)
    try:
        committed = request.app[WRITER].submit(merchant.id, products)
        del products
        await committed
    except IngestUnavailable as exc:
        raise _unavailable(cors) from exc
    body = {"accepted": accepted, "rejected": rejected, "errors": details}
    return json_response(body, status=202, headers=cors)


def _checked(
    payload: object, merchant: IngestMerchant, cors: dict[str, str]
) -> tuple[list[dict[str, Any]], list[FieldError], int]:
    """The valid products of a request body, the errors, and how many items it held."""
    items, is_batch = _items(payload, cors)
    products: list[dict[str, Any]] = []
    errors: list[FieldError] = []
    hosts, currency = merchant.hosts, merchant.currency
    for position, item in enumerate(items):
        product, problems = validate_product(
            item,
            allowed_hosts=hosts,
            default_currency=currency,
            index=position if is_batch else None,
        )
        if product is None:
            errors.extend(problems)
        else:
            products.append(product)
    return products, errors, len(items)


def _not_found_id(item: object, index: int | None) -> tuple[str | None, FieldError | None]:
    value = item.get("product_id") if isinstance(item, dict) else item
    if value is None:
        return None, FieldError(index, "product_id", "is required")
    try:
        return parse_product_id(value), None
    except ValueError as exc:
        return None, FieldError(index, "product_id", str(exc))


async def product_not_found(request: web.Request) -> web.Response:
    """Queue re-verification of products a tag reported missing; unknown ids are listed."""
    merchant = await _merchant(request)
    cors = _cors_headers(request, merchant)
    items, is_batch = _items(await _read_json(request, cors), cors)
    ids: dict[str, None] = {}
    errors: list[FieldError] = []
    for position, item in enumerate(items):
        product_id, error = _not_found_id(item, position if is_batch else None)
        if error is not None:
            errors.append(error)
        elif product_id is not None:
            ids[product_id] = None
    _rejected(request, len(errors))
    details = [error.as_dict() for error in errors]
    if not ids:
        raise ApiError(422, "no valid product_id in the request", details=details, headers=cors)
    services = request.app[SERVICES]
    try:
        async with services.db.pool.acquire(timeout=services.db.config.connect_timeout_s) as conn:
            found = await conn.fetch(
                services.db.queries["ingest_mark_not_found"], merchant.id, list(ids)
            )
    except (*_DB_ERRORS, CatalogVerifierError) as exc:
        raise _unavailable(cors) from exc
    known = {row["product_id"] for row in found}
    services.metrics.ingest_events.labels("accepted").inc(len(known))
    body = {
        "accepted": len(known),
        "rejected": len(errors),
        "unknown_product_ids": [product_id for product_id in ids if product_id not in known],
        "errors": details,
    }
    return json_response(body, status=202, headers=cors)


async def preflight(request: web.Request) -> web.Response:
    """CORS preflight: granted to origins on the merchant's allowed hosts."""
    merchant = await _merchant(request)
    headers = _cors_headers(request, merchant)
    if "Access-Control-Allow-Origin" in headers:
        headers.update(
            {
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": "Content-Type",
                "Access-Control-Max-Age": _PREFLIGHT_MAX_AGE_S,
            }
        )
    return web.Response(status=204, headers=headers)
