"""The page's microdata Product elements, each parsed from its own bytes.

Part of the fast path (parser_fastpath): a Product element found in the raw bytes is parsed
alone, and only as far as the page's last microdata attribute when the element goes on
past it. What it returns equals the items the full parse finds for those elements.
"""

from __future__ import annotations

import re

from verifier.parser_bytes import rfind
from verifier.parser_elements import (
    VOID_TAGS,
    element_open_past,
    find_element_end,
    is_self_closing,
)
from verifier.parser_fastpath import MAX_OCCURRENCES
from verifier.parser_html import Element, fragment_utf8, parse_attributes, parse_document
from verifier.parser_microdata import is_product_item
from verifier.parser_scan import UNSURE, EnclosingTags, PageScan, inside_tag

# More Product elements than this are left to the full parse (keeps hostile pages linear).
_MAX_PRODUCT_ELEMENTS = 64
# The attributes microdata reads: past the last of them, a Product element holds no more.
_MICRODATA_WORDS = (b"itemprop", b"itemscope", b"itemtype", b"itemref")
_LAST_NODE = b"<!---->"


def microdata_items(scan: PageScan, itemtypes: list[int]) -> list[Element] | None:
    """Microdata items of the page's Product items, each Product parsed from its own bytes.

    `itemtypes` are the offsets product_markup found. None when unsure: a Product element
    whose end the scan cannot place, or an itemref (it may point anywhere on the page).
    """
    low = scan.low
    if len(itemtypes) > MAX_OCCURRENCES or not scan.reach(max(itemtypes, default=-1) + 1):
        return None
    items: list[Element] = []
    enclosing = EnclosingTags(low)
    covered_until, elements = -1, 0
    last_word_end = max(rfind(low, word) + len(word) for word in _MICRODATA_WORDS)
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
        if name not in VOID_TAGS and not is_self_closing(tag.group(2)):
            cut = element_open_past(low, name, tag.end(), last_word_end)
            found = _product_head(scan, start, cut, name) if cut is not None else None
            if found is not None and cut is not None:
                items.extend(found)
                covered_until = cut
                continue
            end = find_element_end(low, name, tag.end())
        if end is None:
            return None
        found = _element_items(scan, start, end, name)
        if found is None:
            return None
        items.extend(found)
        covered_until = end
    if any(item.get("itemref") is not None for item in items):
        return None
    return items


def _element_items(
    scan: PageScan, start: int, end: int, name: bytes, suffix: bytes = b""
) -> list[Element] | None:
    """The items of the element at raw[start:end], itself first; None if it is not first."""
    root = parse_document(fragment_utf8(scan.page, start, end) + suffix)
    found: list[Element] = root.xpath("//*[@itemscope]") if root is not None else []
    if not found or found[0].tag != name.decode("ascii", "replace"):
        return None
    return found


def _product_head(scan: PageScan, start: int, cut: int, name: bytes) -> list[Element] | None:
    """The Product element's items from its bytes up to `cut`, or None if they may differ.

    `cut` lies past every microdata attribute of the page, with the element still open: the
    tree builder builds what comes before it the same with or without the rest, except in
    the elements still open at the end (their text may be cut). Those are the last node and
    its ancestors; none of them may be a property whose value is its text. An empty comment
    after the cut becomes the last node, so that its ancestors are just those still open.
    """
    found = _element_items(scan, start, cut, name, _LAST_NODE)
    if found is None:
        return None
    last = found[0].getroottree().getroot()
    while len(last):
        last = last[-1]
    for element in (last, *last.iterancestors()):
        if element.get("itemprop") is not None and element.get("itemscope") is None:
            return None
    return found
