"""Find the parser's inputs in raw page bytes, without a tree of the whole page.

Given the page scan (parser_scan), tag blocks and microdata Product elements (those in
parser_fastpath_microdata) are located by substring search, checked against the
comment/raw-text regions, and parsed alone from their own bytes (a tag block written as the
tag template writes it needs no parse at all); JSON-LD scripts and OpenGraph meta tags come
from the scan. Each finder returns None when the page
could be read in more than one way (an element whose end the scan cannot place, a start tag
too long to see); the parser then builds the full tree instead. What they return equals what
the full parse finds.
"""

from __future__ import annotations

import re

from verifier.parser_bytes import find
from verifier.parser_elements import (
    VOID_TAGS,
    find_close_tag,
    find_element_end,
    is_self_closing,
)
from verifier.parser_html import (
    Element,
    attribute_value,
    class_tokens,
    decode_fragment,
    fragment_utf8,
    parse_attributes,
    parse_document,
    unescape_attribute,
    unescape_text,
)
from verifier.parser_jsonld import JSONLD_TYPE, load_jsonld_bytes
from verifier.parser_opengraph import add_property, opengraph_key, property_key
from verifier.parser_scan import (
    UNSURE,
    EnclosingTags,
    PageScan,
    Unsure,
    inside_tag,
    start_tag_at,
)
from verifier.parser_tag import (
    NOT_FOUND_CLASS,
    SINGLE_FIELD_TOKENS,
    VISITED_CLASS,
    TagBlock,
    block_entries,
    field_tokens,
)

TAG_CLASS_PREFIX = b"cn_product_"
# Bounds that keep adversarial pages linear: more tag blocks or Product elements than these
# are left to the full parse.
_MAX_BLOCKS = 64
MAX_OCCURRENCES = 1024
# A start tag's whole attribute text that parse_attributes reads as the JSON-LD type.
_PLAIN_JSONLD_TYPES = frozenset(
    {b'type="application/ld+json"', b"type='application/ld+json'", b"type=application/ld+json"}
)
_CLASS_WORDS = (
    (VISITED_CLASS, VISITED_CLASS.encode()),
    (NOT_FOUND_CLASS, NOT_FOUND_CLASS.encode()),
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
# A whole <div> block of such <span> leaves, and its leaves: one regex call each.
_TEMPLATE_BLOCK = re.compile(
    r"(?:[\t\n\f\r ]*+<span class=\"[^\"&]*+\">[^<]*+</span>)*+[\t\n\f\r ]*+</div[\t\n\f\r ]*+>"
)
_TEMPLATE_LEAF = re.compile(r"<span class=\"([^\"&]*)\">([^<]*)</span>")
# The whole tag block as the template writes it, start tag to end tag, in one match: its
# start tag is what START_TAG reads there, with the class first, and its text up to the
# first "</div" is such a block (_TEMPLATE_BLOCK).
_TEMPLATE_TAG_BLOCK = re.compile(
    rb"<div class=\"(cn_product_visited|cn_product_not_found)\"(?: [a-z-]++=\"[^\"<>&]*+\")*+>"
    rb"((?:[\t\n\f\r ]*+<span class=\"[^\"&<>]*+\">[^<]*+</span>)*+[\t\n\f\r ]*+)"
    rb"</div[\t\n\f\r ]*+>"
)
# <meta property="og:title" content="..."> as templates write it, its only two attributes,
# holding no '&', CR or NUL (they decode as they are); one with a key that property_key reads
# as an og:/product: property, and a run of them with only whitespace between.
_SIMPLE_OG_META = re.compile(
    rb"<meta (?:property|name)=\"([\t\n\f\r ]*+(?i:og:|product:)[^\"&\r\x00]*)\""
    rb" content=\"([^\"&\r\x00]*)\">"
)
_SIMPLE_META_RUN = re.compile(
    rb"(?:<meta (?:property|name)=\"[^\"&\r\x00]*+\" content=\"[^\"&\r\x00]*+\">[\t\n\f\r ]*+)++"
)
_RETAILER_ID_WORD = b"retailer_item_id"
# A meta start tag as the tokenizer reads it, and no other way (atomic groups): an attribute
# name (which may start with '='), then '=' and a value, or no '='; an unclosed quote or a
# tag cut off at the end of the page does not match.
_META_TAG = re.compile(
    rb"<meta(?=[\t\n\f\r />])(?>[\t\n\f\r /]++|[^\t\n\f\r />][^\t\n\f\r />=]*+"
    rb"(?>[\t\n\f\r ]*+=[\t\n\f\r ]*+(?>\"[^\"]*+\"|'[^']*+'|(?![\"'])[^\t\n\f\r >]*+)"
    rb"|(?![\t\n\f\r ]*+=)))*+>"
)
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


def _template_block(text: str) -> TagBlock | None:
    """_flat_block of a <div> block written exactly as the tag template writes it."""
    if _TEMPLATE_BLOCK.fullmatch(text) is None:
        return None
    return _template_leaves(text)


def _template_leaves(text: str) -> TagBlock:
    single = SINGLE_FIELD_TOKENS.get
    return [
        (tokens, unescape_text(leaf_text) if "&" in leaf_text else leaf_text)
        for class_value, leaf_text in _TEMPLATE_LEAF.findall(text)
        if (tokens := single(class_value) or field_tokens(class_value))
    ]


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
    if name not in VOID_TAGS and not is_self_closing(tag.group(2)):
        close = find_close_tag(scan.low, name, tag.end())
        if close is not None:
            text = decode_fragment(scan.page, tag.end(), close[1])
            flat = _template_block(text) if name == b"div" else None
            if flat is None:
                flat = _flat_block(text, name.decode())
            if flat is not None:
                return flat
        end = find_element_end(scan.low, name, tag.end())
    if end is None:
        return None
    fragment = parse_document(fragment_utf8(scan.page, start, end))
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
        if seen > MAX_OCCURRENCES:
            return None
        start, tag = enclosing.at(position)
        class_name = next(
            (name for name, word in _CLASS_WORDS if raw.startswith(word, position)), None
        )
        if class_name is not None and tag is UNSURE:
            return None
        if class_name is not None and isinstance(tag, re.Match):
            if not scan.reach(position + 1):
                return None
            if scan.in_raw_region(position):
                position = find(raw, TAG_CLASS_PREFIX, position + len(TAG_CLASS_PREFIX))
                continue
            block = _tag_block(scan, start, tag, class_name, found[class_name])
            if block is UNSURE:
                return None
            if block is not None:
                found[class_name].append(block)
        position = find(raw, TAG_CLASS_PREFIX, position + len(TAG_CLASS_PREFIX))
    return found[VISITED_CLASS], found[NOT_FOUND_CLASS]


def _tag_block(
    scan: PageScan, start: int, tag: re.Match[bytes], class_name: str, blocks: list[TagBlock]
) -> TagBlock | Unsure | None:
    """The block whose start tag is `tag` when its class is `class_name`, else None."""
    raw = scan.page.raw
    template = _TEMPLATE_TAG_BLOCK.match(raw, start)
    if template is None or template.group(1) != class_name.encode():
        attributes = parse_attributes(scan.page, tag.start(2), tag.end(2))
        if class_name not in class_tokens(attributes.get("class")):
            return None
        template = None
    if inside_tag(raw, start) or len(blocks) >= _MAX_BLOCKS:
        return UNSURE
    if template is not None:
        return _template_leaves(decode_fragment(scan.page, template.start(2), template.end(2)))
    block = _parse_block(scan, start, tag, class_name)
    return UNSURE if block is None else block


def jsonld_documents(scan: PageScan) -> list[object] | None:
    """Decoded JSON of the page's ld+json scripts that mention "Product", in page order.

    What jsonld_product decodes of the same scripts' texts: the others cannot hold a Product.
    """
    raw = scan.page.raw
    scripts = scan.jsonld_scripts()
    if scripts is None:
        return None
    documents: list[object] = []
    for attributes_start, attributes_end, content_start, content_end in scripts:
        text = raw[attributes_start:attributes_end].strip(b"\t\n\f\r ")
        if (
            text in _PLAIN_JSONLD_TYPES
            or (
                attribute_value(
                    parse_attributes(scan.page, attributes_start, attributes_end), "type"
                )
                or ""
            ).lower()
            == JSONLD_TYPE
        ):
            document = load_jsonld_bytes(raw[content_start:content_end])
            if document is not None:
                documents.append(document)
    return documents


def opengraph_may_fill_product_id(scan: PageScan) -> bool:
    """Whether a meta element may state product:retailer_item_id, OpenGraph's product id.

    Only a key spelled so in the bytes, or with a character reference in a meta tag, can.
    """
    low = scan.low
    if find(low, _RETAILER_ID_WORD) != -1:
        return True
    metas = scan.metas()
    if metas is None:
        return True
    checked_until = 0
    for start in metas:
        if start < checked_until:
            continue  # "<meta" inside the previous one's attributes: checked with it
        tag = _META_TAG.match(low, start)
        if tag is None or find(low, b"&", start, tag.end()) != -1:
            return True
        checked_until = tag.end()
    return False


def opengraph_page_properties(scan: PageScan) -> dict[str, str] | None:
    """opengraph_properties of the page's meta elements in page order; None if unsure."""
    properties: dict[str, str] = {}
    raw = scan.page.raw
    metas = scan.metas()
    if metas is None:
        return None
    skip_until = 0
    for start in metas:
        if start < skip_until:
            continue  # "<meta" inside the attributes of the previous one
        # Only text since the previous meta's '>': not inside a tag.
        clear = skip_until > 0 and find(raw, b"<", skip_until, start) == -1
        run = _SIMPLE_META_RUN.match(raw, start)
        if run is not None:
            skip_until = run.end()
            # Their only attributes; no '&', CR or NUL in them: they decode as they are.
            for key_bytes, content_bytes in _SIMPLE_OG_META.findall(raw, start, skip_until):
                key = property_key(key_bytes.decode("utf-8", "replace"))
                if key is not None:
                    add_property(properties, key, content_bytes.decode("utf-8", "replace"))
            # The run's later metas follow a '>' and whitespace: only its first may be in a
            # tag, which matters if it states a property.
            if not clear and _SIMPLE_OG_META.match(raw, start) and inside_tag(raw, start):
                return None
            continue
        tag = start_tag_at(raw, start)
        if tag is UNSURE:
            return None
        if not isinstance(tag, re.Match) or tag.group(1).lower() != b"meta":
            continue
        skip_until = tag.end()
        attributes_start, attributes_end = tag.start(2), tag.end(2)
        text = raw[attributes_start:attributes_end].lower()
        # A key may be spelled with character references ("og&#58;title"): those are decoded.
        if b"og:" not in text and b"product:" not in text and b"&" not in text:
            continue
        attributes = parse_attributes(scan.page, attributes_start, attributes_end)
        key = opengraph_key(attributes)
        if key is not None:
            if not clear and inside_tag(raw, start):
                return None
            add_property(properties, key, attributes.get("content"))
    return properties
