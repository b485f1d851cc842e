"""Product-page parser: page bytes and URL in, the product the page states out.

Sources, best first: the Connectif `cn_product_visited` tag block, schema.org Product in
JSON-LD, microdata, RDFa Lite, then OpenGraph product tags. The best source that describes a
product wins and gives all its fields; lower sources only fill the verification fields
(parser_model.FILLED_FIELDS: ids, name, url, price and currency, availability, brand,
description, image) that it leaves empty. A `cn_product_not_found` block sets `not_found`.

Two routes give the same result. The fast path finds the tag blocks, the JSON-LD scripts, the
microdata Product elements and the OpenGraph meta tags in the raw bytes and parses only those,
reading the page only as far as they lie and the other sources only while fields are missing;
it gives up (returns None) for RDFa products, itemref, and bytes that read ambiguously, and
the full path then parses the whole page with lxml. Tests hold the two routes equal on every
corpus page and fixture; on pages with broken attribute quoting they may differ.
"""

from __future__ import annotations

from verifier.parser_bytes import find
from verifier.parser_fastpath import (
    TAG_CLASS_PREFIX,
    find_tag_blocks,
    jsonld_documents,
    opengraph_may_fill_product_id,
    opengraph_page_properties,
)
from verifier.parser_fastpath_microdata import microdata_items
from verifier.parser_html import DecodedPage, Element, class_tokens, decode_page, page_document
from verifier.parser_jsonld import JSONLD_TYPE, documents_node, jsonld_product
from verifier.parser_microdata import items_product, microdata_product, rdfa_product
from verifier.parser_model import (
    FILLED_FIELDS,
    PageProduct,
    ParseResult,
    ProductFields,
    has_filled_fields,
    merge_fields,
    merge_into,
    merge_products,
    missing_fields,
)
from verifier.parser_opengraph import opengraph_product, opengraph_properties
from verifier.parser_scan import PageScan, product_markup
from verifier.parser_schemaorg import SchemaFields, schema_product
from verifier.parser_tag import (
    NOT_FOUND_CLASS,
    VISITED_CLASS,
    TagBlock,
    block_entries,
    not_found_product_id,
    tag_fields,
    tag_product,
)

__all__ = [
    "PageProduct",
    "ParseResult",
    "parse_fast_path",
    "parse_product_page",
    "parse_product_page_full",
]

_ASCII_WHITESPACE = " \t\n\f\r"
_NOTHING = ParseResult(not_found=False, product=None)
_PRODUCT_ID_ONLY = frozenset({"product_id"})


def _tag_blocks(page: DecodedPage, root: Element, class_name: str) -> list[TagBlock]:
    # Whole-tree searches cost as much as the parse itself: skip those whose class name is
    # nowhere in the bytes.
    if class_name.encode("ascii") not in page.raw:
        return []
    candidates = root.xpath("//*[contains(@class, $name)]", name=class_name)
    return [
        block_entries(element)
        for element in candidates
        if class_name in class_tokens(element.get("class"))
    ]


def _result(product: PageProduct | None, not_found: list[TagBlock]) -> ParseResult:
    return ParseResult(
        not_found=bool(not_found),
        product=product,
        not_found_product_id=not_found_product_id(not_found),
    )


def _parse_full(page: DecodedPage, url: str) -> ParseResult:
    root = page_document(page)
    if root is None:
        return _NOTHING
    itemtypes, rdfa = product_markup(page.raw.lower())
    visited = _tag_blocks(page, root, VISITED_CLASS)
    not_found = _tag_blocks(page, root, NOT_FOUND_CLASS)
    scripts = [
        script.text or ""
        for script in root.iter("script")
        if (script.get("type") or "").strip(_ASCII_WHITESPACE).lower() == JSONLD_TYPE
    ]
    metas = (dict(meta.items()) for meta in root.iter("meta"))
    ranked = [
        tag_product(visited),
        jsonld_product(scripts, url),
        # Each is a walk of the whole tree: skipped when no attribute names a Product type.
        microdata_product(root) if itemtypes else None,
        rdfa_product(root) if rdfa else None,
        opengraph_product(opengraph_properties(metas)),
    ]
    return _result(merge_products([p for p in ranked if p is not None]), not_found)


def _parse_fast(page: DecodedPage, url: str) -> ParseResult | None:
    first_tag = find(page.raw, TAG_CLASS_PREFIX)
    scan = PageScan(page)
    blocks = find_tag_blocks(scan, first_tag)
    if blocks is None:
        return None
    documents = jsonld_documents(scan)
    if documents is None:
        return None
    visited, not_found = blocks
    node = documents_node(documents, url)
    tag = tag_fields(visited)
    winner: PageProduct | None = None
    lower: list[ProductFields] = []
    if tag is not None:
        if node is not None:
            # Below the tag, JSON-LD only fills fields: map just those the tag lacks.
            lower.append(SchemaFields(node, html_escaped=True))
        merged: PageProduct | None = merge_fields(tag, lower)
    else:
        winner = schema_product(node, "jsonld", html_escaped=True) if node is not None else None
        merged = winner
    # Lower sources only fill FILLED_FIELDS: once the tag and JSON-LD have them all, the
    # microdata, RDFa and OpenGraph on the page cannot change the result.
    if merged is not None and has_filled_fields(merged):
        return _result(merged, not_found)
    if tag is not None:
        winner = PageProduct(**tag)
    # A microdata or RDFa Product type is written in an attribute of a real element, never in
    # a comment or a script: without the word outside those, the page has none (the gate
    # both routes use, product_markup, does not read character references either).
    mentioned = scan.mentions_product_outside_regions()
    if mentioned is None:
        return None
    if mentioned:
        itemtypes, rdfa = product_markup(scan.low)
        if rdfa:
            return None
        if itemtypes:
            items = microdata_items(scan, itemtypes)
            if items is None:
                return None
            if (microdata := items_product(items, {})) is not None:
                winner, merged = _ranked_below(winner, lower, microdata)
    if (merged is None or not has_filled_fields(merged)) and (
        # OpenGraph, the lowest source, fills only what all others leave empty.
        merged is None
        or missing_fields(merged, FILLED_FIELDS) != _PRODUCT_ID_ONLY
        or opengraph_may_fill_product_id(scan)
    ):
        properties = opengraph_page_properties(scan)
        if properties is None:
            return None
        og = opengraph_product(properties)
        if og is not None:
            winner, merged = _ranked_below(winner, lower, og)
    if merged is None and not not_found:
        # Nothing at all found: let the full parse confirm it rather than trust the scan.
        return None
    return _result(merged, not_found)


def _ranked_below(
    winner: PageProduct | None, lower: list[ProductFields], product: PageProduct
) -> tuple[PageProduct, PageProduct]:
    """Rank `product` below the others (it wins if there are none); (winner, merged)."""
    if winner is None:
        return product, product
    lower.append(product)
    return winner, merge_into(winner, lower)


def _parse(body: bytes, url: str, content_type: str | None, *, fast: bool) -> ParseResult:
    page = decode_page(bytes(body), content_type)
    if fast:
        try:
            result = _parse_fast(page, url)
        except Exception:
            # The fast path is an optimisation: whatever trips it, the full parse decides.
            result = None
        if result is not None:
            return result
    return _parse_full(page, url)


def parse_product_page(body: bytes, url: str, content_type: str | None = None) -> ParseResult:
    """Parse a product page (fast path first); never raises on any bytes."""
    try:
        return _parse(body, url, content_type, fast=True)
    except Exception:
        # A page is untrusted input: whatever slips past the parsers' own guards means
        # "nothing usable on this page", never a crashed verification.
        return _NOTHING


def parse_fast_path(body: bytes, url: str, content_type: str | None = None) -> ParseResult | None:
    """The fast path alone: its result, or None where parse_product_page falls back."""
    try:
        return _parse_fast(decode_page(bytes(body), content_type), url)
    except Exception:
        return None


def parse_product_page_full(body: bytes, url: str, content_type: str | None = None) -> ParseResult:
    """Parse a product page with a full lxml tree only (the reference for the fast path)."""
    try:
        return _parse(body, url, content_type, fast=False)
    except Exception:
        return _NOTHING
