"""The fast path of product validation: plainly spelled objects of the tag's common shape.

Tags send a dozen fields, nearly always plainly spelled: printable text without stray spaces,
prices such as "12.50", the merchant's URLs. Recognising that shape in straight-line code costs
a fraction of the per-field normalisers' calls; anything else is left to the general path of
:func:`verifier.product_schema.validate_product_generally`, which gives the same result.
"""

from __future__ import annotations

import re
from typing import Any, TypeGuard

from verifier.availability import normalize_availability
from verifier.product_fields import (
    CANONICAL_CATEGORY_RE,
    CANONICAL_PRICE_RE,
    CANONICAL_TAG_RE,
    MAX_COUNT,
    MAX_DESCRIPTION_CHARS,
    MAX_INT_PRICE,
    MAX_NAME_CHARS,
    MAX_PRODUCT_ID_CHARS,
    MAX_TAG_CHARS,
    MAX_TEXT_CHARS,
    UNSTORABLE_RE,
    FieldContext,
    all_canonical,
)
from verifier.product_urls import MAX_URL_CHARS, plain_url_pattern

FLAT_CUSTOM_FIELDS = ("custom_field_1", "custom_field_2", "custom_field_3")
# normalize_availability remembers the few spellings tags repeat (values of at most 200
# characters: a hostile value is never kept).
availability_of = normalize_availability

# Known fields the fast path leaves to the general path, and the browser tag's flat fields.
_GENERAL_ONLY = frozenset(
    {"discounted_percentage", "published_at", "priority", "related_product_ids"}
    | {"custom_fields", *FLAT_CUSTOM_FIELDS}
)
_MAX_PLAIN_TEXT_CHARS = min(MAX_NAME_CHARS, MAX_TEXT_CHARS)
_PLAIN_ANY_HOST_URL_RE = plain_url_pattern(None)
# Exactly the floats that round to themselves at two decimals between 0 and 5.
_PLAIN_RATINGS = frozenset(hundredths / 100 for hundredths in range(501))
# Few distinct category and tag lists occur: remember those already canonical (bounded).
_MEMO_LIMIT = 4096
_MEMO_MAX_ITEMS = 8
_MEMO_MAX_CHARS = 256
_categories_memo: dict[tuple[object, ...], tuple[str, ...]] = {}
_tags_memo: dict[tuple[object, ...], tuple[str, ...]] = {}


def fast_product(
    obj: dict[str, Any], ctx: FieldContext, default_currency: str
) -> dict[str, Any] | None:
    """The canonical product of a plainly spelled object of the common shape, else None.

    Whatever it returns, :func:`validate_product_generally` returns too (keys in the same
    order); None only means the general path has to decide.
    """
    if not obj.keys().isdisjoint(_GENERAL_ONLY):
        return None
    get = obj.get
    product_id, url, name = get("product_id"), get("url"), get("name")
    price = _plain_price(get("unit_price"))
    if not (
        price is not None
        and _plain_text(product_id, MAX_PRODUCT_ID_CHARS)
        and _plain_text(name, _MAX_PLAIN_TEXT_CHARS)
        and "  " not in name
        and type(url) is str
        and len(url) <= MAX_URL_CHARS
        and plain_url_pattern(ctx.hosts).fullmatch(url)
    ):
        return None
    out: dict[str, Any] = {"url": url, "name": name}
    if (value := get("tags")) is not None and value != "":
        if (items := _plain_list(value, _tags_memo, MAX_TAG_CHARS, CANONICAL_TAG_RE)) is None:
            return None
        if items:
            out["tags"] = list(items)
    if (value := get("brand")) is not None and value != "":
        if not (_plain_text(value, _MAX_PLAIN_TEXT_CHARS) and "  " not in value):
            return None
        out["brand"] = value
    if (value := get("currency")) is not None and value != "":
        if not (type(value) is str and len(value) == 3 and value.isascii() and value.isalpha()):
            return None
        default_currency = value.upper()
    out["currency"] = default_currency
    if (value := get("image_url")) is not None and value != "":
        if not _plain_any_host_url(value):
            return None
        out["image_url"] = value
    if (value := get("categories")) is not None and value != "":
        items = _plain_list(value, _categories_memo, MAX_TEXT_CHARS, CANONICAL_CATEGORY_RE)
        if items is None:
            return None
        if items:
            out["categories"] = list(items)
    out["product_id"] = product_id
    out["unit_price"] = price
    if (value := get("description")) is not None and value != "":
        if not (
            type(value) is str
            and len(value) <= MAX_DESCRIPTION_CHARS
            and ("\x00" not in value if value.isascii() else not UNSTORABLE_RE.search(value))
        ):
            return None
        if value := value.strip():
            out["description"] = value
    detail = None
    if (value := get("availability")) is not None and value != "":
        if type(value) is not str:
            return None
        availability, detail = availability_of(value)
        if availability is None:
            return None
        out["availability"] = availability
    if (value := get("rating_count")) is not None and value != "":
        if not (type(value) is int and 0 <= value <= MAX_COUNT):
            return None
        out["rating_count"] = value
    if (value := get("rating_value")) is not None and value != "":
        if not (
            (type(value) is float and value in _PLAIN_RATINGS)
            or (type(value) is int and 0 <= value <= 5)
        ):
            return None
        out["rating_value"] = value
    if (value := get("review_count")) is not None and value != "":
        if not (type(value) is int and 0 <= value <= MAX_COUNT):
            return None
        out["review_count"] = value
    if (value := get("thumbnail_url")) is not None and value != "":
        if not _plain_any_host_url(value):
            return None
        out["thumbnail_url"] = value
    if (value := get("discounted_amount")) is not None and value != "":
        if (value := _plain_price(value)) is None:
            return None
        out["discounted_amount"] = value
    if detail is not None:
        out["availability_detail"] = detail
    for field in ("unit_price_original", "unit_price_without_vat"):
        if (value := get(field)) is not None and value != "":
            if (value := _plain_price(value)) is None:
                return None
            out[field] = value
    return out


def _plain_text(value: object, max_chars: int) -> TypeGuard[str]:
    # A printable string holds no NUL, no surrogate and no whitespace but the space (tested for
    # every code point), so its ends tell whether it is trimmed.
    return (
        type(value) is str
        and 0 < len(value) <= max_chars
        and value.isprintable()
        and value[0] != " "
        and value[-1] != " "
    )


def _plain_any_host_url(value: object) -> bool:
    return (
        type(value) is str
        and len(value) <= MAX_URL_CHARS
        and _PLAIN_ANY_HOST_URL_RE.fullmatch(value) is not None
    )


def _plain_price(value: object) -> str | None:
    if type(value) is str:
        return value if CANONICAL_PRICE_RE.fullmatch(value) else None
    if type(value) is int and 0 <= value < MAX_INT_PRICE:
        return f"{value}.00"
    return None


def _plain_list(
    value: object,
    memo: dict[tuple[object, ...], tuple[str, ...]],
    max_chars: int,
    pattern: re.Pattern[str],
) -> tuple[str, ...] | None:
    """The items of a list of strings already canonical (without repeats), else None."""
    if type(value) is not list:
        return None
    key = tuple(value)
    try:
        items = memo.get(key)
    except TypeError:  # unhashable items: not a list of strings
        return None
    if items is None:
        if not all_canonical(value, max_chars, pattern):
            return None
        items = tuple(dict.fromkeys(value))
        # Only short lists are remembered: the memo stays small whatever clients send.
        if len(value) <= _MEMO_MAX_ITEMS and sum(map(len, value)) <= _MEMO_MAX_CHARS:
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[key] = items
    return items
