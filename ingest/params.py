"""Request parameters and bodies shared by the API handlers, checked once, with JSON errors."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ingest.errors import ApiError

MAX_PRODUCT_ID_CHARS = 255
_JSON_TYPES = ("application/json", "")


def product_id_param(request: web.Request) -> str:
    """The ``{product_id}`` path segment; one no product can have is a 404."""
    product_id = request.match_info["product_id"]
    if not 1 <= len(product_id) <= MAX_PRODUCT_ID_CHARS or "\x00" in product_id:
        # No product can have such an id (the database cannot even store a NUL): not found.
        raise ApiError(404, f"no product {product_id[:64]!r}")
    return product_id


def is_ascii_digits(value: str) -> bool:
    """True for "0".."9" only (``str.isdigit`` also accepts "²" and other digits)."""
    return value.isascii() and value.isdigit()


def page_size_param(request: web.Request, default: int, maximum: int) -> int:
    """``?limit=``: an integer from 1 to ``maximum``; empty or absent gives ``default``."""
    value = request.query.get("limit") or ""
    if value == "":
        return default
    if not is_ascii_digits(value) or not 1 <= int(value) <= maximum:
        raise ApiError(400, f"limit: must be an integer from 1 to {maximum}")
    return int(value)


async def read_json_object(request: web.Request, what: str) -> dict[str, Any]:
    """The request body as a JSON object (415 / 400 / 422 otherwise); ``what`` names it."""
    content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if content_type not in _JSON_TYPES and not content_type.endswith("+json"):
        raise ApiError(415, "the body must be application/json")
    body = await request.read()  # bounded by the listener's max_body_bytes (413)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(422, f"the body must be {what}")
    return value
