"""OpenGraph product tags (og:*, product:*) to a PageProduct, the lowest-ranked source."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from verifier.availability import normalize_availability
from verifier.parser_model import PageProduct
from verifier.prices import parse_price

_PREFIXES = ("og:", "product:")
_KEY_ATTRIBUTES = ("property", "name")
_ASCII_WHITESPACE = " \t\n\f\r"

# Each field reads the first of these properties that the page states.
_NAME = ("og:title",)
_URL = ("og:url",)
_IMAGE = ("og:image", "og:image:url", "og:image:secure_url")
_DESCRIPTION = ("og:description",)
_SALE_PRICE = (("product:sale_price:amount", "product:sale_price:currency"),)
_PRICE = (
    ("product:price:amount", "product:price:currency"),
    ("og:price:amount", "og:price:currency"),
)
_ORIGINAL_PRICE = ("product:original_price:amount", "og:price:standard_amount")
_AVAILABILITY = ("product:availability", "og:availability")
_BRAND = ("product:brand", "og:brand")
_RETAILER_ID = ("product:retailer_item_id",)


def opengraph_key(attributes: Mapping[str, str]) -> str | None:
    """The og:/product: property a meta element states, lower-cased, else None."""
    for name in _KEY_ATTRIBUTES:
        value = attributes.get(name)
        if value and (key := property_key(value)) is not None:
            return key
    return None


def property_key(value: str) -> str | None:
    """The og:/product: property a property or name attribute value names, else None."""
    key = value.strip(_ASCII_WHITESPACE).lower()
    return key if key.startswith(_PREFIXES) else None


def opengraph_properties(metas: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """First content per og:/product: property, from meta elements' attributes in page order."""
    properties: dict[str, str] = {}
    for attributes in metas:
        key = opengraph_key(attributes)
        if key is not None:
            add_property(properties, key, attributes.get("content"))
    return properties


def add_property(properties: dict[str, str], key: str, content: str | None) -> None:
    """Record a meta element's content for its property, unless the page stated it before."""
    if content is not None and key not in properties:
        properties[key] = content.strip(_ASCII_WHITESPACE)


def _first(properties: Mapping[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if value := properties.get(key):
            return value
    return None


def _is_product(properties: Mapping[str, str]) -> bool:
    if "product" in properties.get("og:type", "").lower():
        return True
    return any(key.startswith("product:") or key == "og:price:amount" for key in properties)


def opengraph_product(properties: Mapping[str, str]) -> PageProduct | None:
    """The product OpenGraph tags describe, when og:type or product:* tags say there is one."""
    if not _is_product(properties):
        return None
    price = currency = None
    for amount_key, currency_key in (*_SALE_PRICE, *_PRICE):
        price = parse_price(properties.get(amount_key))
        if price is not None:
            currency = properties.get(currency_key, "").upper() or None
            break
    regular = parse_price(_first(properties, _ORIGINAL_PRICE))
    if regular is None and properties.get(_SALE_PRICE[0][0]):
        regular = parse_price(properties.get(_PRICE[0][0]))
    if currency is not None and not (
        len(currency) == 3 and currency.isascii() and currency.isalpha()
    ):
        currency = None
    availability, detail = normalize_availability(_first(properties, _AVAILABILITY))
    return PageProduct(
        source="opengraph",
        product_id=_first(properties, _RETAILER_ID),
        name=_first(properties, _NAME),
        url=_first(properties, _URL),
        unit_price=price,
        currency=currency,
        availability=availability,
        availability_detail=detail,
        brand=_first(properties, _BRAND),
        description=_first(properties, _DESCRIPTION),
        image_url=_first(properties, _IMAGE),
        unit_price_original=regular if regular != price else None,
    )
