"""The Connectif cn_product_visited tag block, read the way the browser tag client reads it.

The block is a hidden element whose descendants carry one field each, named by a class token
(`<span class="unit_price">12.50</span>`). Scalars take the first match in document order,
`category`, `tag` and `related_external_product_id` take every non-empty match. Values are the
elements' text content, trimmed as String.prototype.trim() does.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

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


def field_tokens(class_value: str | None) -> tuple[str, ...]:
    """The tag field names among a class attribute's tokens."""
    if not class_value:
        return ()
    if class_value in _FIELDS:
        return (class_value,)
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


def _text(scalars: dict[str, str], name: str) -> str | None:
    return scalars.get(name) or None


def _number(scalars: dict[str, str], name: str) -> Decimal | None:
    return parse_number(scalars[name]) if name in scalars else None


def _integer(scalars: dict[str, str], name: str) -> int | None:
    return parse_integer(scalars[name]) if name in scalars else None


def block_product(block: TagBlock) -> PageProduct:
    """One tag block as a PageProduct (source "connectif"); the tag states no currency."""
    scalars, lists = _read(block)
    availability, detail = normalize_availability(_text(scalars, "availability"))
    return PageProduct(
        source="connectif",
        product_id=_text(scalars, "product_id"),
        name=_text(scalars, "name"),
        url=_text(scalars, "url"),
        unit_price=_number(scalars, "unit_price"),
        availability=availability,
        availability_detail=detail,
        brand=_text(scalars, "brand"),
        description=_text(scalars, "description"),
        image_url=_text(scalars, "image_url"),
        thumbnail_url=_text(scalars, "thumbnail_url"),
        categories=tuple(lists["category"]),
        tags=tuple(lists["tag"]),
        unit_price_original=_number(scalars, "unit_price_original"),
        unit_price_without_vat=_number(scalars, "unit_price_without_vat"),
        discounted_percentage=_number(scalars, "discounted_percentage"),
        discounted_amount=_number(scalars, "discounted_amount"),
        rating_value=_number(scalars, "rating_value"),
        rating_count=_integer(scalars, "rating_count"),
        review_count=_integer(scalars, "review_count"),
        published_at=_text(scalars, "published_at"),
        related_product_ids=tuple(lists["related_external_product_id"]),
        custom_fields={name: scalars[name] for name in _CUSTOM_FIELDS if scalars.get(name)},
    )


def _is_complete(product: PageProduct) -> bool:
    # The tag client drops a product unless these are all present.
    return bool(
        product.name
        and product.url
        and product.product_id
        and product.unit_price is not None
        and product.unit_price >= 0
    )


def tag_product(blocks: Sequence[TagBlock]) -> PageProduct | None:
    """The first complete tag block's product, else the first block's, else None."""
    products = [block_product(block) for block in blocks]
    for product in products:
        if _is_complete(product):
            return product
    return products[0] if products else None


def not_found_product_id(blocks: Sequence[TagBlock]) -> str | None:
    """The product_id named by the first cn_product_not_found block that names one."""
    for block in blocks:
        scalars, _ = _read(block)
        if product_id := _text(scalars, "product_id"):
            return product_id
    return None
