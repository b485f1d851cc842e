"""A schema.org Product node (from JSON-LD, microdata or RDFa) to a PageProduct.

Nodes are JSON-like dicts: JSON-LD objects as decoded, microdata and RDFa items converted to
the same shape (`{"@type": [...], "name": [...], "offers": [{...}]}`), so one mapping serves
all three sources.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from decimal import Decimal

from verifier.availability import normalize_availability
from verifier.parser_model import PageProduct
from verifier.prices import parse_integer, parse_price

PRODUCT_TYPES = frozenset({"Product", "IndividualProduct", "ProductModel", "SomeProducts"})
PRODUCT_GROUP_TYPES = frozenset({"ProductGroup"})
_AGGREGATE_OFFERS = frozenset({"AggregateOffer"})
_ORIGINAL_PRICE_TYPES = frozenset({"ListPrice", "StrikethroughPrice", "MSRP", "SRP"})
_MAX_CATEGORIES = 20
_RATING_SCALE = Decimal(5)
_RATING_QUANTUM = Decimal("0.0001")
_NUMBERS = (int, float)
_PRICE_VALUES = (str, int, float, Decimal)

Node = Mapping[str, object]


def local_name(value: str) -> str:
    """The last segment of an IRI or CURIE: "https://schema.org/Product" -> "Product"."""
    if value.isalnum():
        return value
    text = value.strip().rstrip("/")
    for separator in ("/", "#", ":"):
        if separator in text:
            text = text.rsplit(separator, 1)[1]
    return text


def node_types(node: Node) -> frozenset[str]:
    """Local names of a node's @type values."""
    raw = node.get("@type")
    values = raw if isinstance(raw, list) else [raw]
    return frozenset(local_name(v) for v in values if isinstance(v, str))


def has_type(node: Node, kinds: frozenset[str]) -> bool:
    """Whether one of the node's @type values has a local name in `kinds`."""
    raw = node.get("@type")
    if isinstance(raw, str):
        return local_name(raw) in kinds
    return isinstance(raw, list) and any(
        isinstance(value, str) and local_name(value) in kinds for value in raw
    )


def normalized(node: Node) -> Node:
    """The node with keys reduced to local names ("schema:price" -> "price"); first key wins."""
    # Keys of letters, digits and '@' are their own local names (one test for all of them).
    if "".join(node).replace("@", "").isalnum():
        return node
    for key in node:
        if not key.isalnum() and not key.startswith("@"):
            break
    else:
        return node
    result: dict[str, object] = {}
    for key, value in node.items():
        name = key if key.startswith("@") else local_name(key)
        result.setdefault(name, value)
    return result


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _nodes(value: object) -> list[Node]:
    return [normalized(v) for v in _as_list(value) if isinstance(v, dict)]


def first_text(value: object) -> str | None:
    """First non-empty string in a value: plain, a number, {"@value"}, or a list of those."""
    if isinstance(value, str):
        return value.strip() or None
    if value is None:
        return None
    for item in _as_list(value):
        if isinstance(item, str):
            text = item.strip()
        elif isinstance(item, _NUMBERS) and not isinstance(item, bool):
            text = str(item)
        elif isinstance(item, dict):
            text = first_text(item.get("@value", item.get("@id"))) or ""
        else:
            continue
        if text:
            return text
    return None


def _first_url(value: object) -> str | None:
    if isinstance(value, str):
        return first_text(value)
    for item in _as_list(value):
        if isinstance(item, dict):
            item = normalized(item)
            url = first_text(item.get("url")) or first_text(item.get("contentUrl"))
            url = url or first_text(item.get("@id"))
        else:
            url = first_text(item)
        if url:
            return url
    return None


def _first_name(value: object) -> str | None:
    """A brand-like value: plain text, or the name of a Brand/Organization/Thing node."""
    if isinstance(value, str):
        return first_text(value)
    for item in _as_list(value):
        if isinstance(item, dict):
            name = first_text(normalized(item).get("name"))
        else:
            name = first_text(item)
        if name:
            return name
    return None


def _price(value: object) -> Decimal | None:
    if isinstance(value, str):
        return parse_price(value)
    for item in _as_list(value):
        if isinstance(item, dict):
            item = item.get("@value")
        if isinstance(item, _PRICE_VALUES) and not isinstance(item, bool):
            price = parse_price(item)
            if price is not None:
                return price
    return None


def _currency(value: object) -> str | None:
    text = first_text(value)
    if text is None:
        return None
    code = text.upper()
    return code if len(code) == 3 and code.isascii() and code.isalpha() else None


def _offer_price(offer: Node) -> tuple[Decimal | None, str | None]:
    price, currency = _price(offer.get("price")), _currency(offer.get("priceCurrency"))
    if price is not None:
        return price, currency
    for spec in _nodes(offer.get("priceSpecification")):
        kind = first_text(spec.get("priceType"))
        if kind and local_name(kind) in _ORIGINAL_PRICE_TYPES:
            continue
        if (spec_price := _price(spec.get("price"))) is not None:
            return spec_price, currency or _currency(spec.get("priceCurrency"))
    return None, currency


def _original_price(offer: Node) -> Decimal | None:
    for spec in _nodes(offer.get("priceSpecification")):
        kind = first_text(spec.get("priceType"))
        if kind and local_name(kind) in _ORIGINAL_PRICE_TYPES:
            return _price(spec.get("price"))
    return None


def _availability(offers: list[Node]) -> tuple[str | None, str | None]:
    # A product is available when any of its offers is; otherwise the first stated value.
    known = [normalize_availability(first_text(o.get("availability"))) for o in offers]
    known = [pair for pair in known if pair[0] is not None]
    in_stock = [pair for pair in known if pair[0] == "in_stock"]
    return (in_stock or known or [(None, None)])[0]


class _OfferSummary:
    """Price and currency of a product's offers; availability, original price, sku on demand."""

    __slots__ = ("_aggregate", "_chosen", "_offers", "_pool", "currency", "price")

    def __init__(self, offers: list[Node]) -> None:
        aggregate = next(
            (o for o in offers if has_type(o, _AGGREGATE_OFFERS) or "lowPrice" in o), None
        )
        chosen: Node | None
        if aggregate is not None:
            chosen = aggregate
            pool = _nodes(aggregate.get("offers")) + [o for o in offers if o is not aggregate]
            price = _price(aggregate.get("lowPrice"))
            if price is None:
                price = _price(aggregate.get("price"))
            currency = _currency(aggregate.get("priceCurrency"))
        else:
            pool = offers
            prices = [_offer_price(o) for o in offers]
            first = next((i for i, (p, _) in enumerate(prices) if p is not None), None)
            index = first if first is not None else 0
            chosen = offers[index] if offers else None
            price, currency = prices[index] if offers else (None, None)
        if price is None:
            for offer in pool:
                price, offer_currency = _offer_price(offer)
                if price is not None:
                    currency = currency or offer_currency
                    break
        if currency is None:
            currency = next(
                (c for o in pool if (c := _currency(o.get("priceCurrency"))) is not None), None
            )
        self.price = price
        self.currency = currency
        self._offers = offers
        self._aggregate = aggregate
        self._chosen = chosen
        self._pool = pool

    @property
    def availability(self) -> tuple[str | None, str | None]:
        """The chosen offer's availability, else the first the offers state."""
        chosen = self._chosen
        own = _availability([chosen]) if chosen is not None else (None, None)
        return own if own[0] is not None else _availability(self._pool)

    @property
    def original(self) -> Decimal | None:
        """The chosen offer's list price."""
        return _original_price(self._chosen) if self._chosen is not None else None

    @property
    def sku(self) -> str | None:
        """The sku of the only offer (no aggregate)."""
        offers = self._offers
        single = len(offers) == 1 and self._aggregate is None
        return first_text(offers[0].get("sku")) if single else None


def _rating(node: Node) -> tuple[Decimal | None, int | None, int | None]:
    ratings = _nodes(node.get("aggregateRating"))
    if not ratings:
        return None, None, None
    rating = ratings[0]
    value = _price(rating.get("ratingValue"))
    best = _price(rating.get("bestRating"))
    if value is not None and best is not None and best > 0 and best != _RATING_SCALE:
        try:
            value = (value * _RATING_SCALE / best).quantize(_RATING_QUANTUM).normalize()
        except ArithmeticError:  # absurd exponents overflow the decimal context
            value = None
    if value is not None and not 0 <= value <= _RATING_SCALE:
        value = None
    count = parse_integer(first_text(rating.get("ratingCount")))
    reviews = parse_integer(first_text(rating.get("reviewCount")))
    return value, count, reviews


def _categories(value: object) -> tuple[str, ...]:
    paths: list[str] = []
    for item in _as_list(value)[:_MAX_CATEGORIES]:
        text = _first_name(item)
        if not text or text.startswith(("http://", "https://")):
            continue
        if text.startswith("/"):
            paths.append(text)
            continue
        parts = [part.strip() for part in text.split(">") if part.strip()]
        if parts:
            paths.append("/" + "/".join(parts))
    return tuple(paths)


class SchemaFields:
    """The verification fields of a Product node, each mapped when first read.

    What schema_product gives for them: a source below the winner only needs the fields
    the winner lacks (parser_model.merge_into).
    """

    __slots__ = ("_escaped", "_product", "_summary")

    def __init__(self, node: Node, *, html_escaped: bool = False) -> None:
        self._product = normalized(node)
        self._escaped = html_escaped
        self._summary: _OfferSummary | None = None

    @property
    def _offers(self) -> _OfferSummary:
        if self._summary is None:
            self._summary = _OfferSummary(_nodes(self._product.get("offers")))
        return self._summary

    def _text(self, key: str) -> str | None:
        found = first_text(self._product.get(key))
        return html.unescape(found) if self._escaped and found and "&" in found else found

    @property
    def product_id(self) -> str | None:
        """productID."""
        return self._text("productID")

    @property
    def sku(self) -> str | None:
        """sku, else that of the only offer."""
        return self._text("sku") or self._offers.sku

    @property
    def name(self) -> str | None:
        """name."""
        return self._text("name")

    @property
    def url(self) -> str | None:
        """url."""
        return _first_url(self._product.get("url"))

    @property
    def unit_price(self) -> Decimal | None:
        """The offers' price."""
        return self._offers.price

    @property
    def currency(self) -> str | None:
        """The offers' currency."""
        return self._offers.currency

    @property
    def availability(self) -> str | None:
        """The offers' availability."""
        return self._offers.availability[0]

    @property
    def availability_detail(self) -> str | None:
        """The offers' availability detail."""
        return self._offers.availability[1]

    def availability_pair(self) -> tuple[str | None, str | None]:
        """(availability, availability_detail) of the offers."""
        return self._offers.availability

    @property
    def brand(self) -> str | None:
        """The brand's name."""
        brand = _first_name(self._product.get("brand"))
        return html.unescape(brand) if self._escaped and brand and "&" in brand else brand

    @property
    def description(self) -> str | None:
        """description."""
        return self._text("description")

    @property
    def image_url(self) -> str | None:
        """The first image's URL."""
        return _first_url(self._product.get("image"))


def schema_product(node: Node, source: str, *, html_escaped: bool = False) -> PageProduct:
    """Map a schema.org Product node; `html_escaped` decodes HTML entities left in text."""
    fields = SchemaFields(node, html_escaped=html_escaped)
    product = fields._product
    rating, rating_count, review_count = _rating(product)
    availability, detail = fields.availability_pair()
    return PageProduct(
        source=source,
        product_id=fields.product_id,
        sku=fields.sku,
        name=fields.name,
        url=fields.url,
        unit_price=fields.unit_price,
        currency=fields.currency,
        availability=availability,
        availability_detail=detail,
        brand=fields.brand,
        description=fields.description,
        image_url=fields.image_url,
        thumbnail_url=_first_url(product.get("thumbnailUrl")),
        categories=_categories(product.get("category")),
        unit_price_original=fields._offers.original,
        rating_value=rating,
        rating_count=rating_count,
        review_count=review_count,
    )
