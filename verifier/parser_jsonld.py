"""JSON-LD: script texts to the page's schema.org Product, if any."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urljoin

import orjson

from verifier.parser_html import decode_text
from verifier.parser_model import PageProduct
from verifier.parser_schemaorg import (
    PRODUCT_GROUP_TYPES,
    PRODUCT_TYPES,
    Node,
    first_text,
    has_type,
    local_name,
    normalized,
    schema_product,
)

JSONLD_TYPE = "application/ld+json"
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f]")
_WRAPPERS = (("<!--", "-->"), ("<![CDATA[", "]]>"), ("//<![CDATA[", "//]]>"))
_MAX_NODES = 5000
_MAX_DEPTH = 8
_CONTAINERS = (dict, list)
# What str.strip() removes among ASCII bytes.
_ASCII_SPACE = b" \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"


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


def load_jsonld_bytes(data: bytes) -> object | None:
    """load_jsonld of a script's UTF-8 bytes, decoded as the tree builder decodes them.

    An object or array that orjson reads from the bytes as they are is what the text would
    give: the text decoding only rewrites invalid UTF-8, CR and NUL, and orjson accepts none
    of them but CR between tokens, where it is whitespace either way. Anything else takes
    the text route.
    """
    body = data.strip(_ASCII_SPACE)
    if body[:1] in (b"{", b"[") and body[-1:] in (b"}", b"]"):
        try:
            document: object = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
        else:
            return document
    return load_jsonld(decode_text(data))


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
    # A first-in first-out queue: a list read in order while it grows.
    queue: list[tuple[object, int]] = [(root, 0) for root in _roots(documents)]
    visited = 0
    for value, depth in queue:
        if visited == _MAX_NODES:
            break
        visited += 1
        if isinstance(value, list):
            queue.extend([(item, depth) for item in value])
            continue
        if not isinstance(value, dict):
            continue
        kind = value.get("@type")
        if isinstance(kind, str):
            name = local_name(kind)
            if name in PRODUCT_TYPES:
                products.append(value)
            elif name in PRODUCT_GROUP_TYPES:
                groups.append(value)
        elif kind is not None:
            if has_type(value, PRODUCT_TYPES):
                products.append(value)
            elif has_type(value, PRODUCT_GROUP_TYPES):
                groups.append(value)
        if depth < _MAX_DEPTH:
            queue.extend(
                [(child, depth + 1) for child in value.values() if isinstance(child, _CONTAINERS)]
            )
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


# \u00XX escapes of the letters of "Product" (either case of hex digits); the page scan
# searches the raw bytes with the same pattern.
ESCAPED_PRODUCT_LETTER = r"\\u00(?:50|72|6[fF]|64|75|63|74)"
_ESCAPED_PRODUCT_LETTER = re.compile(ESCAPED_PRODUCT_LETTER)


def mentions_product(text: str) -> bool:
    """Whether a script's text may name a Product type: the word, or JSON escapes of it."""
    return "Product" in text or (
        "\\u00" in text and _ESCAPED_PRODUCT_LETTER.search(text) is not None
    )


def jsonld_product(texts: Sequence[str], page_url: str) -> PageProduct | None:
    """The page's JSON-LD Product: the one whose URL is the page's, else the first found."""
    # Every Product type name ("Product", "schema:IndividualProduct", "ProductGroup"...)
    # contains the word, so scripts without it (nor an escaped letter of it) need no decoding.
    loaded = (load_jsonld(text) for text in texts if mentions_product(text))
    return documents_product([doc for doc in loaded if doc is not None], page_url)


def documents_product(documents: Sequence[object], page_url: str) -> PageProduct | None:
    """jsonld_product of the scripts' decoded JSON documents (None ones left out)."""
    node = documents_node(documents, page_url)
    return schema_product(node, "jsonld", html_escaped=True) if node is not None else None


def documents_node(documents: Sequence[object], page_url: str) -> Node | None:
    """The Product node jsonld_product maps: the one whose URL is the page's, else the first."""
    nodes = product_nodes(documents)
    if not nodes:
        return None
    chosen = nodes[0]
    if len(nodes) > 1:
        chosen = next(
            (n for n in nodes if any(_same_page(u, page_url) for u in _node_urls(n))), chosen
        )
    return chosen
