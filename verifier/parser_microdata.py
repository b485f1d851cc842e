"""Microdata and RDFa Lite items to schema.org nodes, and the page's Product among them."""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from verifier.parser_html import Element, element_text
from verifier.parser_model import PageProduct
from verifier.parser_schemaorg import (
    PRODUCT_GROUP_TYPES,
    PRODUCT_TYPES,
    local_name,
    schema_product,
)

NodeBuilder = Callable[[Element, int], dict[str, object]]

_MAX_ITEM_DEPTH = 12
_MAX_PROPERTY_ELEMENTS = 20000
_URL_ATTRIBUTE = {
    "a": "href",
    "area": "href",
    "link": "href",
    "img": "src",
    "audio": "src",
    "embed": "src",
    "iframe": "src",
    "source": "src",
    "track": "src",
    "video": "src",
    "object": "data",
}
_SCHEMA_PREFIXES = ("schema:", "http://schema.org/", "https://schema.org/")
_COUNT_DESCENDANTS = etree.XPath("count(descendant::*)")
_PROPERTIES_AND_ITEMS = etree.XPath("descendant::*[@itemprop or @itemscope]")


def _collapsed_text(element: Element) -> str:
    return " ".join(element_text(element).split())


def _tokens(value: str | None) -> list[str]:
    return value.split() if value else []


def _types(value: str | None) -> frozenset[str]:
    return frozenset(local_name(token) for token in _tokens(value))


def _children(element: Element) -> list[Element]:
    return [child for child in element if isinstance(child.tag, str)]


def _microdata_value(element: Element) -> str:
    # A content attribute wins on any element: shops put the machine value there
    # (<span itemprop="price" content="1000.00">1,000.00</span>).
    content = element.get("content")
    if content is not None:
        return str(content).strip()
    tag = element.tag.lower() if isinstance(element.tag, str) else ""
    if tag in _URL_ATTRIBUTE:
        return str(element.get(_URL_ATTRIBUTE[tag]) or "").strip()
    if tag == "time" and element.get("datetime") is not None:
        return str(element.get("datetime")).strip()
    if tag in ("data", "meter"):
        return str(element.get("value") or "").strip()
    return _collapsed_text(element)


def _own_properties(item: Element) -> list[Element] | None:
    """The item's own itemprop elements in document order, found by XPath; None if too many.

    Own: no other item between them and this one. That is the depth-first walk of
    _microdata_node, when the walk's budget covers the whole subtree.
    """
    if _COUNT_DESCENDANTS(item) > _MAX_PROPERTY_ELEMENTS:
        return None
    own: list[Element] = []
    # An itemprop element belongs to the nearest item around it: not to this one when it
    # lies inside another item within it. Elements themselves: lxml proxies are unique.
    nested: set[Element] = set()
    for element in _PROPERTIES_AND_ITEMS(item):
        if element in nested:
            continue
        if element.get("itemprop") is not None:
            own.append(element)
        if element.get("itemscope") is not None:
            nested.update(element.iterdescendants())
    return own


def _add_property(
    node: dict[str, object], element: Element, depth: int, id_index: dict[str, Element]
) -> None:
    names = _tokens(element.get("itemprop"))
    if not names:
        return
    value: object
    if element.get("itemscope") is not None:
        value = _microdata_node(element, depth + 1, id_index) if depth < _MAX_ITEM_DEPTH else {}
    else:
        value = _microdata_value(element)
    for name in names:
        values = node.setdefault(local_name(name), [])
        if isinstance(values, list):
            values.append(value)


def _microdata_node(item: Element, depth: int, id_index: dict[str, Element]) -> dict[str, object]:
    node: dict[str, object] = {"@type": sorted(_types(item.get("itemtype")))}
    referenced = [id_index[ref] for ref in _tokens(item.get("itemref")) if ref in id_index]
    if not referenced and (own := _own_properties(item)) is not None:
        for element in own:
            _add_property(node, element, depth, id_index)
        return node
    # Depth-first in document order: the item's own subtree, then the elements it references.
    stack = list(reversed(referenced)) + list(reversed(_children(item)))
    # Elements themselves, not id()s: lxml proxies die and their ids get reused.
    seen: set[Element] = {item}
    budget = _MAX_PROPERTY_ELEMENTS
    while stack and budget > 0:
        element = stack.pop()
        budget -= 1
        if element in seen:
            continue
        seen.add(element)
        _add_property(node, element, depth, id_index)
        if element.get("itemscope") is None:
            stack.extend(reversed(_children(element)))
    return node


def _rdfa_value(element: Element) -> str:
    content = element.get("content")
    if content is not None:
        return str(content).strip()
    for attribute in ("resource", "href", "src"):
        value = element.get(attribute)
        if value is not None:
            return str(value).strip()
    if element.tag == "time" and element.get("datetime") is not None:
        return str(element.get("datetime")).strip()
    return _collapsed_text(element)


def _rdfa_names(value: str | None) -> list[str]:
    # Only schema.org terms: "og:image" on a meta inside the item is not the product's image.
    return [
        local_name(token)
        for token in _tokens(value)
        if ":" not in token or token.startswith(_SCHEMA_PREFIXES)
    ]


def _rdfa_node(item: Element, depth: int) -> dict[str, object]:
    node: dict[str, object] = {"@type": sorted(_types(item.get("typeof")))}
    stack = list(reversed(_children(item)))
    budget = _MAX_PROPERTY_ELEMENTS
    while stack and budget > 0:
        element = stack.pop()
        budget -= 1
        names = _rdfa_names(element.get("property"))
        is_item = element.get("typeof") is not None
        if names:
            value: object
            if is_item:
                value = _rdfa_node(element, depth + 1) if depth < _MAX_ITEM_DEPTH else {}
            else:
                value = _rdfa_value(element)
            for name in names:
                values = node.setdefault(name, [])
                if isinstance(values, list):
                    values.append(value)
        if not is_item:
            stack.extend(reversed(_children(element)))
    return node


def _pick(
    items: list[Element], type_attribute: str, property_attribute: str, build: NodeBuilder
) -> dict[str, object] | None:
    """Top-level Product items first (else nested ones); the first with offers, else a name."""
    for kinds in (PRODUCT_TYPES, PRODUCT_GROUP_TYPES):
        products = [el for el in items if _types(el.get(type_attribute)) & kinds]
        top = [el for el in products if el.get(property_attribute) is None]
        nodes = [build(el, 0) for el in top or products]
        if nodes:
            chosen = next(
                (n for n in nodes if n.get("offers")),
                next((n for n in nodes if n.get("name")), nodes[0]),
            )
            return chosen
    return None


def microdata_product(root: Element) -> PageProduct | None:
    """The page's microdata Product (itemscope/itemprop, itemref followed), if any."""
    items: list[Element] = root.xpath("//*[@itemscope]")
    id_index: dict[str, Element] = {}
    # itemref only means something on an item, so the items tell whether ids are needed.
    if any(item.get("itemref") for item in items):
        for element in root.xpath("//*[@id]"):
            id_index.setdefault(element.get("id"), element)
    return items_product(items, id_index)


def is_product_item(type_value: str | None) -> bool:
    """Whether an itemtype/typeof value names a Product (or ProductGroup) type."""
    types = _types(type_value)
    return bool(types & PRODUCT_TYPES or types & PRODUCT_GROUP_TYPES)


def items_product(items: list[Element], id_index: dict[str, Element]) -> PageProduct | None:
    """The Product among microdata items in page order (`id_index` resolves itemref)."""

    def build(element: Element, depth: int) -> dict[str, object]:
        return _microdata_node(element, depth, id_index)

    node = _pick(items, "itemtype", "itemprop", build)
    return schema_product(node, "microdata") if node is not None else None


def rdfa_product(root: Element) -> PageProduct | None:
    """The page's RDFa Lite Product (vocab/typeof/property), if any."""
    items: list[Element] = root.xpath("//*[@typeof]")
    node = _pick(items, "typeof", "property", _rdfa_node)
    return schema_product(node, "rdfa") if node is not None else None
