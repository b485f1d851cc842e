"""The parser's records: one product as a page states it, and the result of parsing a page."""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import field
from decimal import Decimal
from typing import Any, Protocol

from verifier.records import record


@record
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


@record
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
_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(PageProduct))
_FIELD_INDEX = {name: index for index, name in enumerate(_FIELD_NAMES)}
_all_fields = operator.attrgetter(*_FIELD_NAMES)
_filled_values = operator.attrgetter(*sorted(FILLED_FIELDS))


def _is_empty(value: object) -> bool:
    # Not `not value`: a price of Decimal("0") is a stated value.
    return value is None or (isinstance(value, (tuple, dict)) and not value)


def missing_fields(product: PageProduct, names: frozenset[str]) -> frozenset[str]:
    """Those of `names` that `product` leaves empty."""
    return frozenset(name for name in names if _is_empty(getattr(product, name)))


def has_filled_fields(product: PageProduct) -> bool:
    """Whether `product` states every one of FILLED_FIELDS (missing_fields finds none)."""
    # All of them are strings or Decimals: empty means None.
    return None not in _filled_values(product)


class ProductFields(Protocol):
    """What merge_into reads of a lower source: the FILLED_FIELDS and their followers."""

    @property
    def product_id(self) -> str | None: ...
    @property
    def sku(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...
    @property
    def url(self) -> str | None: ...
    @property
    def unit_price(self) -> Decimal | None: ...
    @property
    def currency(self) -> str | None: ...
    @property
    def availability(self) -> str | None: ...
    @property
    def availability_detail(self) -> str | None: ...
    @property
    def brand(self) -> str | None: ...
    @property
    def description(self) -> str | None: ...
    @property
    def image_url(self) -> str | None: ...


def merge_products(ranked: Sequence[PageProduct]) -> PageProduct | None:
    """Merge products best source first: lower sources fill the FILLED_FIELDS the winner lacks."""
    return merge_into(ranked[0], ranked[1:]) if ranked else None


def merge_into(winner: PageProduct, lower: Sequence[ProductFields]) -> PageProduct:
    """The winner with the FILLED_FIELDS it lacks taken from the lower sources, best first."""
    changes = _fills(functools.partial(getattr, winner), lower)
    if not changes:
        return winner
    # dataclasses.replace, without its per-field bookkeeping.
    values = list(_all_fields(winner))
    for name, value in changes.items():
        values[_FIELD_INDEX[name]] = value
    return PageProduct(*values)


def merge_fields(winner: dict[str, Any], lower: Sequence[ProductFields]) -> PageProduct:
    """merge_into of the winner PageProduct(**winner), built once."""
    return PageProduct(**(winner | _fills(winner.get, lower)))


def _fills(stated: Callable[[str], Any], lower: Sequence[ProductFields]) -> dict[str, Any]:
    """The FILLED_FIELDS a winner that states `stated(name)` takes from the lower sources."""
    changes: dict[str, Any] = {}
    if not lower:
        return changes
    for name in _FILLED_ORDER:
        if stated(name) is not None:
            continue
        for source in lower:
            value = getattr(source, name)
            if value is None:
                continue
            changes[name] = value
            follower = _PAIRED.get(name)
            if follower is not None and (paired := getattr(source, follower)) is not None:
                changes[follower] = paired
            break
    if "currency" not in changes and stated("currency") is None:
        # A tag price states no currency; the page's structured data does.
        for source in lower:
            if (currency := source.currency) is not None:
                changes["currency"] = currency
                break
    return changes
