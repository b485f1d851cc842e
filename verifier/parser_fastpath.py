"""Find the parser's inputs in raw page bytes, without a tree of the whole page.

Given the page scan (parser_scan), tag blocks and microdata Product elements are located with
bytes.find, checked against the comment/raw-text regions, and parsed alone from their own
bytes; JSON-LD texts and OpenGraph meta attributes come straight from the scan. Each finder
returns None when the page could be read in more than one way (an element whose end the scan
cannot place, a start tag too long to see); the parser then builds the full tree instead.
What they return equals what the full parse finds.
"""

from __future__ import annotations

import re

from verifier.parser_html import (
    Element,
    attribute_value,
    class_tokens,
    decode_fragment,
    find_close_tag,
    find_element_end,
    is_self_closing,
    parse_attributes,
    parse_document,
    unescape_attribute,
    unescape_text,
)
from verifier.parser_jsonld import JSONLD_TYPE
from verifier.parser_microdata import is_product_item
from verifier.parser_opengraph import opengraph_key
from verifier.parser_scan import UNSURE, EnclosingTags, PageScan, inside_tag, start_tag_at
from verifier.parser_tag import (
    NOT_FOUND_CLASS,
    VISITED_CLASS,
    TagBlock,
    block_entries,
    field_tokens,
)

TAG_CLASS_PREFIX = b"cn_product_"
# Bounds that keep adversarial pages linear: more tag blocks or Product elements than these
# are left to the full parse.
_MAX_BLOCKS = 64
_MAX_PRODUCT_ELEMENTS = 64
_MAX_OCCURRENCES = 1024
_VOID_TAGS = frozenset(
    b"area base br col embed hr img input keygen link meta param source track wbr".split()
)
_SPACE = r"[\t\n\f\r ]"
_ATTRIBUTES = (
    rf"(?:{_SPACE}++[^\t\n\f\r \"'>/=]++(?:{_SPACE}*+={_SPACE}*+"
    r"(?:\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r \"'=<>`]++))?+)*+"
)
# One leaf element holding only text: <span class="unit_price">12.50</span>
_FLAT_LEAF = re.compile(
    rf"{_SPACE}*<([a-zA-Z][a-zA-Z0-9]*)({_ATTRIBUTES}){_SPACE}*>([^<]*)</\1{_SPACE}*>",
    re.IGNORECASE,
)
# The same in the exact shape the tag template writes, matched first because it is cheaper.
_SIMPLE_LEAF = re.compile(r"[\t\n\f\r ]*<([a-z]+) class=\"([^\"&]*)\">([^<]*)</\1>")
_BLOCK_END = re.compile(rf"{_SPACE}*</([a-zA-Z][a-zA-Z0-9]*){_SPACE}*>")
_CLASS_ATTRIBUTE = re.compile(
    rf"{_SPACE}class{_SPACE}*={_SPACE}*(?:\"([^\"]*)\"|'([^']*)'|([^\t\n\f\r \"'=<>`]+))",
    re.IGNORECASE,
)
# Leaves the tree builder keeps as plain children of such a block (no implied end tags).
_PHRASING = frozenset({"span", "a", "b", "i", "em", "strong", "small", "label"})
_LEAVES_IN = {"span": _PHRASING, "div": _PHRASING | {"div", "p"}}


def _first_with_class(root: Element, class_name: str) -> Element | None:
    for element in root.iter():
        if isinstance(element.tag, str) and class_name in class_tokens(element.get("class")):
            return element
    return None


def _flat_block(text: str, block_name: str) -> TagBlock | None:
    """Entries of a block that is only whitespace and leaf elements, like the tag template.

    Such a block's tree is known without building it: each leaf's text content is its text
    with character references decoded. Anything else (nested markup, comments, text between
    leaves) answers None and gets a real parse.
    """
    leaves = _LEAVES_IN.get(block_name.lower())
    if leaves is None:
        return None
    entries: TagBlock = []
    position = 0
    while True:
        leaf = _SIMPLE_LEAF.match(text, position)
        if leaf is not None:
            class_value: str | None = leaf.group(2)
        else:
            leaf = _FLAT_LEAF.match(text, position)
            if leaf is None:
                break
            class_value = _class_value(leaf.group(2))
        if leaf.group(1).lower() not in leaves:
            return None
        tokens = field_tokens(class_value)
        if tokens:
            entries.append((tokens, unescape_text(leaf.group(3))))
        position = leaf.end()
    end = _BLOCK_END.match(text, position)
    if end is None or end.group(1).lower() != block_name.lower() or end.end() != len(text):
        return None
    return entries


def _class_value(attribute_text: str) -> str | None:
    match = _CLASS_ATTRIBUTE.search(attribute_text)
    if match is None:
        return None
    return unescape_attribute(match.group(1) or match.group(2) or match.group(3) or "")


def _parse_block(
    scan: PageScan, start: int, tag: re.Match[bytes], class_name: str
) -> TagBlock | None:
    name = tag.group(1).lower()
    end: int | None = tag.end()
    if name not in _VOID_TAGS and not is_self_closing(tag.group(2)):
        close = find_close_tag(scan.low, name, tag.end())
        if close is not None:
            flat = _flat_block(decode_fragment(scan.page, tag.end(), close[1]), name.decode())
            if flat is not None:
                return flat
        end = find_element_end(scan.low, name, tag.end())
    if end is None:
        return None
    fragment = parse_document(decode_fragment(scan.page, start, end).encode("utf-8"))
    block = _first_with_class(fragment, class_name) if fragment is not None else None
    return block_entries(block) if block is not None else None


def find_tag_blocks(scan: PageScan, first: int) -> tuple[list[TagBlock], list[TagBlock]] | None:
    """Entries of the cn_product_visited and cn_product_not_found elements, in page order.

    `first` is the offset of the first "cn_product_" in the page (-1: none).
    """
    raw = scan.page.raw
    found: dict[str, list[TagBlock]] = {VISITED_CLASS: [], NOT_FOUND_CLASS: []}
    enclosing = EnclosingTags(raw)
    position, seen = first, 0
    while position != -1:
        seen += 1
        if seen > _MAX_OCCURRENCES:
            return None
        start, tag = enclosing.at(position)
        class_name = next((c for c in found if raw.startswith(c.encode(), position)), None)
        if class_name is not None and tag is UNSURE:
            return None
        if (
            class_name is not None
            and isinstance(tag, re.Match)
            and not scan.in_raw_region(position)
        ):
            attributes = parse_attributes(scan.page, tag.start(2), tag.end(2))
            if class_name in class_tokens(attributes.get("class")):
                blocks = found[class_name]
                if inside_tag(scan.low, start) or len(blocks) >= _MAX_BLOCKS:
                    return None
                block = _parse_block(scan, start, tag, class_name)
                if block is None:
                    return None
                blocks.append(block)
        position = raw.find(TAG_CLASS_PREFIX, position + len(TAG_CLASS_PREFIX))
    return found[VISITED_CLASS], found[NOT_FOUND_CLASS]


def jsonld_texts(scan: PageScan) -> list[str]:
    """Texts of the page's <script type="application/ld+json"> elements, in page order."""
    texts: list[str] = []
    for attributes_start, attributes_end, content_start, content_end in scan.scripts:
        if scan.low.find(b"ld+json", attributes_start, attributes_end) == -1:
            continue
        attributes = parse_attributes(scan.page, attributes_start, attributes_end)
        if (attribute_value(attributes, "type") or "").lower() == JSONLD_TYPE:
            texts.append(decode_fragment(scan.page, content_start, content_end))
    return texts


def opengraph_metas(scan: PageScan) -> list[dict[str, str]] | None:
    """Attributes of the page's OpenGraph meta elements in page order; None if unsure."""
    metas: list[dict[str, str]] = []
    low = scan.low
    skip_until = 0
    for start in scan.metas:
        if start < skip_until:
            continue  # "<meta" inside the attributes of the previous one
        tag = start_tag_at(low, start)
        if tag is UNSURE:
            return None
        if not isinstance(tag, re.Match) or tag.group(1) != b"meta":
            continue
        skip_until = tag.end()
        attributes_start, attributes_end = tag.start(2), tag.end(2)
        if low.find(b"og:", attributes_start, attributes_end) == -1 and (
            low.find(b"product:", attributes_start, attributes_end) == -1
        ):
            continue
        attributes = parse_attributes(scan.page, attributes_start, attributes_end)
        if opengraph_key(attributes) is not None:
            if inside_tag(low, start):
                return None
            metas.append(attributes)
    return metas


def microdata_items(scan: PageScan, itemtypes: list[int]) -> list[Element] | None:
    """Microdata items of the page's Product items, each Product parsed from its own bytes.

    `itemtypes` are the offsets product_markup found. None when unsure: a Product element
    whose end the scan cannot place, or an itemref (it may point anywhere on the page).
    """
    low = scan.low
    if len(itemtypes) > _MAX_OCCURRENCES:
        return None
    items: list[Element] = []
    enclosing = EnclosingTags(low)
    covered_until, elements = -1, 0
    for position in itemtypes:
        start, tag = enclosing.at(position)
        if position < covered_until or scan.in_raw_region(position):
            continue
        if tag is UNSURE:
            return None
        if not isinstance(tag, re.Match):
            continue
        attributes = parse_attributes(scan.page, tag.start(2), tag.end(2))
        if "itemscope" not in attributes or not is_product_item(attributes.get("itemtype")):
            continue
        elements += 1
        if inside_tag(low, start) or elements > _MAX_PRODUCT_ELEMENTS:
            return None
        name = tag.group(1)
        end: int | None = tag.end()
        if name not in _VOID_TAGS and not is_self_closing(tag.group(2)):
            end = find_element_end(low, name, tag.end())
        if end is None:
            return None
        root = parse_document(decode_fragment(scan.page, start, end).encode("utf-8"))
        found: list[Element] = root.xpath("//*[@itemscope]") if root is not None else []
        if not found or found[0].tag != name.decode("ascii", "replace"):
            return None
        items.extend(found)
        covered_until = end
    if any(item.get("itemref") is not None for item in items):
        return None
    return items
