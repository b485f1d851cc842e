"""Availability normalisation: any page or tag spelling to (availability, availability_detail)."""

from __future__ import annotations

import functools

# Keys are the value lower-cased with spaces, underscores and hyphens removed, so that
# "InStock", "in stock", "in_stock" and "IN-STOCK" all meet on "instock".
_AVAILABILITY_BY_KEY: dict[str, tuple[str, str]] = {
    "instock": ("in_stock", "in_stock"),
    "available": ("in_stock", "in_stock"),
    "outofstock": ("out_of_stock", "out_of_stock"),
    "soldout": ("out_of_stock", "sold_out"),
    "reserved": ("out_of_stock", "reserved"),
    "preorder": ("in_stock", "pre_order"),
    "presale": ("in_stock", "pre_sale"),
    "backorder": ("in_stock", "back_order"),
    "availablefororder": ("in_stock", "available_for_order"),
    "madetoorder": ("in_stock", "made_to_order"),
    "limitedavailability": ("in_stock", "limited_availability"),
    "instoreonly": ("in_stock", "in_store_only"),
    "onlineonly": ("in_stock", "online_only"),
    "discontinued": ("discontinued", "discontinued"),
}

_MAX_VALUE_CHARS = 200


def _availability_key(value: str) -> str:
    """Reduce a spelling to its lookup key: last IRI/CURIE segment, lower-case, no separators."""
    text = value.strip().rstrip("/")
    # "https://schema.org/InStock", "schema:InStock", "http://schema.org/ItemAvailability#InStock"
    for separator in ("/", "#", ":"):
        if separator in text:
            text = text.rsplit(separator, 1)[1]
    return "".join(text.lower().split()).replace("_", "").replace("-", "")


def normalize_availability(value: str | None) -> tuple[str | None, str | None]:
    """Map an availability spelling to (in_stock|out_of_stock|discontinued, snake_case detail)."""
    if not isinstance(value, str) or len(value) > _MAX_VALUE_CHARS:
        return (None, None)
    if value in _AVAILABILITY_BY_KEY:
        return _AVAILABILITY_BY_KEY[value]  # already a key ("instock"): nothing to reduce
    return _lookup(value)


@functools.lru_cache(maxsize=512)
def _lookup(value: str) -> tuple[str | None, str | None]:
    # Pages repeat a handful of spellings ("https://schema.org/InStock"): remembered.
    mapped = _AVAILABILITY_BY_KEY.get(_availability_key(value))
    if mapped is None:
        return (None, None)
    return mapped
