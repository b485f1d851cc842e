"""The parser's records: one product as a page states it, and the result of parsing a page."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class PageProduct:
    """A product as one page states it; `source` names the structured data that won."""

    source: str
    product_id: str | None = None
    sku: str | None = None
    name: str | None = None
    url: str | None = None
    unit_price: Decimal | None = None
    currency: str | None = None
    availability: str | None = None
    availability_detail: str | None = None
    brand: str | None = None
    description: str | None = None
    image_url: str | None = None
    thumbnail_url: str | None = None
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    unit_price_original: Decimal | None = None
    unit_price_without_vat: Decimal | None = None
    discounted_percentage: Decimal | None = None
    discounted_amount: Decimal | None = None
    rating_value: Decimal | None = None
    rating_count: int | None = None
    review_count: int | None = None
    published_at: str | None = None
    related_product_ids: tuple[str, ...] = ()
    custom_fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What a page says: a product, and whether it carries a product-not-found tag."""

    not_found: bool
    product: PageProduct | None
    not_found_product_id: str | None = None


# What a lower-ranked source may add to the winner's product: the fields a verification
# compares. The winner's other fields (ratings, categories...) are never mixed across sources,
# which also lets the parser skip the costly sources once the cheap ones have these.
FILLED_FIELDS = frozenset(
    {
        "product_id",
        "sku",
        "name",
        "url",
        "unit_price",
        "currency",
        "availability",
        "brand",
        "description",
        "image_url",
    }
)
# A price from a lower source comes with that source's currency, an availability with its detail.
_PAIRED = {"unit_price": "currency", "availability": "availability_detail"}
_FILLED_ORDER = tuple(sorted(FILLED_FIELDS - {"currency"}))


def _is_empty(value: object) -> bool:
    # Not `not value`: a price of Decimal("0") is a stated value.
    return value is None or (isinstance(value, tuple | dict) and not value)


def missing_fields(product: PageProduct, names: frozenset[str]) -> frozenset[str]:
    """Those of `names` that `product` leaves empty."""
    return frozenset(name for name in names if _is_empty(getattr(product, name)))


def merge_products(ranked: list[PageProduct]) -> PageProduct | None:
    """Merge products best source first: lower sources fill the FILLED_FIELDS the winner lacks."""
    if not ranked:
        return None
    winner = ranked[0]
    if len(ranked) == 1:
        return winner
    changes: dict[str, Any] = {}
    for name in _FILLED_ORDER:
        if getattr(winner, name) is not None:
            continue
        for lower in ranked[1:]:
            value = getattr(lower, name)
            if value is None:
                continue
            changes[name] = value
            follower = _PAIRED.get(name)
            if follower is not None and getattr(lower, follower) is not None:
                changes[follower] = getattr(lower, follower)
            break
    if "currency" not in changes and winner.currency is None:
        # A tag price states no currency; the page's structured data does.
        for lower in ranked[1:]:
            if lower.currency is not None:
                changes["currency"] = lower.currency
                break
    return dataclasses.replace(winner, **changes) if changes else winner
