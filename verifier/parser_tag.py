"""The Connectif cn_product_visited tag block, read the way the browser tag client reads it.

The block is a hidden element whose descendants carry one field each, named by a class token
(`<span class="unit_price">12.50</span>`). Scalars take the first match in document order,
`category`, `tag` and `related_external_product_id` take every non-empty match. Values are the
elements' text content, trimmed as String.prototype.trim() does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from verifier.availability import normalize_availability
from verifier.parser_html import Element, class_tokens, element_text
from verifier.parser_model import PageProduct
from verifier.prices import JS_WHITESPACE, parse_integer, parse_number

VISITED_CLASS = "cn_product_visited"
NOT_FOUND_CLASS = "cn_product_not_found"

_SCALAR_FIELDS = frozenset(
    {
        "product_id",
        "url",
        "name",
        "description",
        "image_url",
        "thumbnail_url",
        "unit_price",
        "availability",
        "brand",
        "unit_price_original",
        "unit_price_without_vat",
        "discounted_percentage",
        "discounted_amount",
        "rating_value",
        "rating_count",
        "review_count",
        "published_at",
        "custom_field_1",
        "custom_field_2",
        "custom_field_3",
    }
)
_LIST_FIELDS = frozenset({"category", "tag", "related_external_product_id"})
_FIELDS = _SCALAR_FIELDS | _LIST_FIELDS
_CUSTOM_FIELDS = ("custom_field_1", "custom_field_2", "custom_field_3")


# (the field names among an element's class tokens, the element's text content)
TagEntry = tuple[tuple[str, ...], str]
TagBlock = list[TagEntry]


# A class attribute that is exactly one field name, as the tag template writes it.
SINGLE_FIELD_TOKENS = {name: (name,) for name in _FIELDS}


def field_tokens(class_value: str | None) -> tuple[str, ...]:
    """The tag field names among a class attribute's tokens."""
    if not class_value:
        return ()
    single = SINGLE_FIELD_TOKENS.get(class_value)
    if single is not None:
        return single
    return tuple(token for token in class_tokens(class_value) if token in _FIELDS)


def block_entries(block: Element) -> TagBlock:
    """The field-carrying descendants of a tag block element, in document order."""
    entries: TagBlock = []
    for element in block.iterdescendants():
        if isinstance(element.tag, str):
            tokens = field_tokens(element.get("class"))
            if tokens:
                entries.append((tokens, element_text(element)))
    return entries


def _read(entries: TagBlock) -> tuple[dict[str, str], dict[str, list[str]]]:
    """First text per scalar field, every non-empty text per list field."""
    scalars: dict[str, str] = {}
    lists: dict[str, list[str]] = {name: [] for name in _LIST_FIELDS}
    for tokens, raw_text in entries:
        text = raw_text.strip(JS_WHITESPACE)
        for token in tokens:
            if token in _LIST_FIELDS:
                if text:
                    lists[token].append(text)
            elif token not in scalars:
                scalars[token] = text
    return scalars, lists


def block_product(block: TagBlock) -> PageProduct:
    """One tag block as a PageProduct (source "connectif"); the tag states no currency."""
    return PageProduct(**block_fields(block))


def block_fields(block: TagBlock) -> dict[str, Any]:
    """block_product's fields, by name."""
    scalars, lists = _read(block)
    # An empty text states nothing; parse_number and parse_integer read None as nothing too.
    text = scalars.get
    availability, detail = normalize_availability(text("availability") or None)
    return {
        "source": "connectif",
        "product_id": text("product_id") or None,
        "name": text("name") or None,
        "url": text("url") or None,
        "unit_price": parse_number(text("unit_price")),
        "availability": availability,
        "availability_detail": detail,
        "brand": text("brand") or None,
        "description": text("description") or None,
        "image_url": text("image_url") or None,
        "thumbnail_url": text("thumbnail_url") or None,
        "categories": tuple(lists["category"]),
        "tags": tuple(lists["tag"]),
        "unit_price_original": parse_number(text("unit_price_original")),
        "unit_price_without_vat": parse_number(text("unit_price_without_vat")),
        "discounted_percentage": parse_number(text("discounted_percentage")),
        "discounted_amount": parse_number(text("discounted_amount")),
        "rating_value": parse_number(text("rating_value")),
        "rating_count": parse_integer(text("rating_count")),
        "review_count": parse_integer(text("review_count")),
        "published_at": text("published_at") or None,
        "related_product_ids": tuple(lists["related_external_product_id"]),
        "custom_fields": {name: scalars[name] for name in _CUSTOM_FIELDS if scalars.get(name)},
    }


def _is_complete(fields: dict[str, Any]) -> bool:
    # The tag client drops a product unless these are all present.
    price = fields["unit_price"]
    return bool(
        fields["name"]
        and fields["url"]
        and fields["product_id"]
        and price is not None
        and price >= 0
    )


def tag_product(blocks: Sequence[TagBlock]) -> PageProduct | None:
    """The first complete tag block's product, else the first block's, else None."""
    fields = tag_fields(blocks)
    return PageProduct(**fields) if fields is not None else None


def tag_fields(blocks: Sequence[TagBlock]) -> dict[str, Any] | None:
    """tag_product's fields, by name."""
    products = [block_fields(block) for block in blocks]
    for product in products:
        if _is_complete(product):
            return product
    return products[0] if products else None


def not_found_product_id(blocks: Sequence[TagBlock]) -> str | None:
    """The product_id named by the first cn_product_not_found block that names one."""
    for block in blocks:
        scalars, _ = _read(block)
        if product_id := scalars.get("product_id"):
            return product_id
    return None
