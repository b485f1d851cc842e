"""JSON-LD: script texts to the page's schema.org Product, if any."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from urllib.parse import urljoin

import orjson

from verifier.parser_model import PageProduct
from verifier.parser_schemaorg import (
    PRODUCT_GROUP_TYPES,
    PRODUCT_TYPES,
    first_text,
    has_type,
    normalized,
    schema_product,
)

JSONLD_TYPE = "application/ld+json"
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f]")
_WRAPPERS = (("<!--", "-->"), ("<![CDATA[", "]]>"), ("//<![CDATA[", "//]]>"))
_MAX_NODES = 5000
_MAX_DEPTH = 8


def load_jsonld(text: str) -> object | None:
    """Decode one script's JSON, tolerating comment/CDATA wrappers and raw control characters."""
    body = text.strip()
    for opening, closing in _WRAPPERS:
        if body.startswith(opening) and body.endswith(closing):
            body = body[len(opening) : -len(closing)].strip()
    if not body:
        return None
    document: object
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        # Raw newlines and tabs inside strings are the commonest hand-written JSON-LD error.
        try:
            document = orjson.loads(_CONTROL_CHARACTERS.sub(" ", body))
        except orjson.JSONDecodeError:
            return None
    return document


def _roots(documents: Sequence[object]) -> list[object]:
    roots: list[object] = []
    for document in documents:
        for item in document if isinstance(document, list) else [document]:
            if isinstance(item, dict) and isinstance(item.get("@graph"), list):
                roots.extend(item["@graph"])
                if "@type" in item:
                    roots.append(item)
            else:
                roots.append(item)
    return roots


def product_nodes(documents: Sequence[object]) -> list[dict[str, object]]:
    """Product nodes, top-level ones first then nested ones (breadth first); groups last."""
    products: list[dict[str, object]] = []
    groups: list[dict[str, object]] = []
    queue: deque[tuple[object, int]] = deque((root, 0) for root in _roots(documents))
    visited = 0
    while queue and visited < _MAX_NODES:
        value, depth = queue.popleft()
        visited += 1
        if isinstance(value, list):
            queue.extend((item, depth) for item in value)
            continue
        if not isinstance(value, dict):
            continue
        if "@type" in value:
            if has_type(value, PRODUCT_TYPES):
                products.append(value)
            elif has_type(value, PRODUCT_GROUP_TYPES):
                groups.append(value)
        if depth < _MAX_DEPTH:
            for child in value.values():
                if isinstance(child, dict | list):
                    queue.append((child, depth + 1))
    return products + groups


def _same_page(candidate: str | None, page_url: str) -> bool:
    if not candidate or not page_url:
        return False
    try:
        absolute = urljoin(page_url, candidate)
    except ValueError:
        return False
    return absolute.split("#", 1)[0].rstrip("/") == page_url.split("#", 1)[0].rstrip("/")


def _node_urls(node: dict[str, object]) -> list[str | None]:
    product = normalized(node)
    urls = [first_text(product.get("url"))]
    offers = product.get("offers")
    for offer in offers if isinstance(offers, list) else [offers]:
        if isinstance(offer, dict):
            urls.append(first_text(normalized(offer).get("url")))
    return urls


def jsonld_product(texts: Sequence[str], page_url: str) -> PageProduct | None:
    """The page's JSON-LD Product: the one whose URL is the page's, else the first found."""
    # Every Product type name ("Product", "schema:IndividualProduct", "ProductGroup"...)
    # contains the word, so scripts without it need no decoding.
    loaded = (load_jsonld(text) for text in texts if "Product" in text)
    documents = [doc for doc in loaded if doc is not None]
    nodes = product_nodes(documents)
    if not nodes:
        return None
    chosen = next(
        (n for n in nodes if any(_same_page(u, page_url) for u in _node_urls(n))), nodes[0]
    )
    return schema_product(chosen, "jsonld", html_escaped=True)
