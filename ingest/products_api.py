"""The merchant API's product endpoints: read, list, upsert, discontinue and bulk import.

Every handler first authenticates the key (:func:`ingest.auth.require_merchant`) and then only
ever touches that merchant's rows, so another merchant's product is a plain 404.

``POST /v1/products/import`` streams the body from the socket in chunks through the readers of
:mod:`verifier.importer`; it never holds the body. Its size limit is ``api.max_import_bytes``
(413, checked on Content-Length up front and while reading a chunked body), not the listener's
``api.max_body_bytes``, which applies to every other body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from ingest.auth import require_merchant
from ingest.context import SERVICES
from ingest.errors import ApiError, json_response
from ingest.params import page_size_param, product_id_param, read_json_object
from verifier.catalog import Catalog, ImportReport, decode_cursor, error_message, import_products
from verifier.exceptions import InvalidInput
from verifier.import_csv import CSV_FIELDS
from verifier.importer import ImportSyntaxError, format_for_content_type, read_rows

PRODUCTS_PATH = "/v1/products"
PRODUCT_PATH = "/v1/products/{product_id}"
IMPORT_PATH = "/v1/products/import"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
IMPORT_CHUNK_BYTES = 256 * 1024
_STATUSES = ("unverified", "verified")
_AVAILABILITIES = ("in_stock", "out_of_stock", "discontinued")


def _catalog(request: web.Request) -> Catalog:
    services = request.app[SERVICES]
    return Catalog(services.db, services.metrics)


def _query(request: web.Request, name: str) -> str | None:
    """A query parameter; empty (``?status=``) counts as absent, as forms send it."""
    return request.query.get(name) or None


def _choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = _query(request, name)
    if value is not None and value not in allowed:
        raise ApiError(400, f"{name}: must be one of {', '.join(allowed)}")
    return value


async def get_product(request: web.Request) -> web.Response:
    """GET /v1/products/{product_id}."""
    merchant = await require_merchant(request)
    return json_response(await _catalog(request).get(merchant, product_id_param(request)))


async def list_products(request: web.Request) -> web.Response:
    """GET /v1/products: one keyset page, filtered."""
    merchant = await require_merchant(request)
    status = _choice(request, "status", _STATUSES)
    availability = _choice(request, "availability", _AVAILABILITIES)
    usable_text = _choice(request, "usable", ("true", "false"))
    usable = None if usable_text is None else usable_text == "true"
    limit = page_size_param(request, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    cursor = _query(request, "after")
    try:
        after = decode_cursor(cursor) if cursor is not None else None
    except InvalidInput as exc:
        raise ApiError(400, str(exc)) from None
    items, next_cursor = await _catalog(request).list(
        merchant,
        status=status,
        availability=availability,
        usable=usable,
        after=after,
        limit=limit,
    )
    return json_response({"items": items, "next": next_cursor})


async def put_product(request: web.Request) -> web.Response:
    """PUT /v1/products/{product_id}: upsert from the merchant's backend (trusted)."""
    merchant = await require_merchant(request)
    product_id = product_id_param(request)
    body = await read_json_object(request, "a product object")
    body_id = body.get("product_id")
    if body_id is None:
        body = {**body, "product_id": product_id}
    elif not isinstance(body_id, str | int) or str(body_id).strip() != product_id:
        detail = {"index": None, "field": "product_id", "message": "must match the path"}
        raise ApiError(422, "product_id in the body differs from the path", details=[detail])
    catalog = _catalog(request)
    product, errors = catalog.validate(merchant, body)
    if product is None:
        details = [error.as_dict() for error in errors]
        raise ApiError(422, f"invalid product: {error_message(errors)}", details=details)
    if product["product_id"] != product_id:
        detail = {"index": None, "field": "product_id", "message": "has surrounding whitespace"}
        raise ApiError(422, "product_id must not have surrounding whitespace", details=[detail])
    result, rendered = await catalog.upsert(merchant, product)
    return json_response(rendered, status=201 if result == "created" else 200)


async def delete_product(request: web.Request) -> web.Response:
    """DELETE /v1/products/{product_id}: the product becomes discontinued (kept, not usable)."""
    merchant = await require_merchant(request)
    return json_response(await _catalog(request).discontinue(merchant, product_id_param(request)))


class _BodyTooLarge(Exception):
    """The import body went over api.max_import_bytes while streaming."""


async def _limited_chunks(request: web.Request, max_bytes: int) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in request.content.iter_chunked(IMPORT_CHUNK_BYTES):
        received += len(chunk)
        if received > max_bytes:
            raise _BodyTooLarge
        yield chunk


async def import_products_handler(request: web.Request) -> web.Response:
    """POST /v1/products/import: JSON array, NDJSON or CSV, streamed, up to 100,000 products."""
    merchant = await require_merchant(request)
    fmt = format_for_content_type(request.headers.get("Content-Type", ""))
    if fmt is None:
        raise ApiError(415, "use application/json (array), application/x-ndjson or text/csv")
    max_bytes = request.app[SERVICES].config.api.max_import_bytes
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, f"the import body is over {max_bytes} bytes")
    report = ImportReport()
    rows = read_rows(fmt, _limited_chunks(request, max_bytes), csv_fields=CSV_FIELDS)
    try:
        await import_products(_catalog(request), merchant, rows, report)
    except ImportSyntaxError as exc:
        raise ApiError(400, f"the body cannot be read: {exc}") from None
    except _BodyTooLarge:
        raise ApiError(
            413,
            f"the import body is over {max_bytes} bytes; the batches before were kept",
            details=[report.as_dict()],
        ) from None
    return json_response(report.as_dict())


def install_routes(app: web.Application) -> None:
    """Add the product endpoints to the API app."""
    app.router.add_get(PRODUCTS_PATH, list_products)
    app.router.add_post(IMPORT_PATH, import_products_handler)
    app.router.add_get(PRODUCT_PATH, get_product)
    app.router.add_put(PRODUCT_PATH, put_product)
    app.router.add_delete(PRODUCT_PATH, delete_product)
