"""The fast path's shortcuts, one by one: each gives what the long way it replaces gives."""

from __future__ import annotations

import html
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lxml import etree

from verifier import parser_bytes
from verifier.parser_elements import element_open_past, find_element_end
from verifier.parser_html import (
    _CHARREF,
    _attribute_reference,
    _text_reference,
    unescape_attribute,
    unescape_text,
)
from verifier.parser_microdata import _microdata_node
from verifier.parser_model import (
    FILLED_FIELDS,
    PageProduct,
    has_filled_fields,
    merge_fields,
    merge_into,
    missing_fields,
)
from verifier.parser_scan import product_markup
from verifier.parser_schemaorg import (
    SchemaFields,
    _first_name,
    _first_url,
    _nodes,
    _OfferSummary,
    first_text,
    local_name,
    normalized,
    schema_product,
)

# -- substring search ----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=300),
    st.binary(min_size=1, max_size=4),
    st.integers(0, 320),
    st.integers(0, 320),
)
def test_byte_search_answers_like_the_bytes_methods(
    data: bytes, needle: bytes, start: int, end: int
) -> None:
    """find, rfind and lower give what bytes.find, bytes.rfind and bytes.lower give."""
    assert parser_bytes.find(data, needle, start, end) == data.find(needle, start, end)
    assert parser_bytes.find(data, needle, start) == data.find(needle, start)
    assert parser_bytes.rfind(data, needle, start, end) == data.rfind(needle, start, end)
    assert parser_bytes.lower(data) == data.lower()


# -- where an element ends -----------------------------------------------------------------

_END_PRIORITY = {b"div": 150, b"td": 160, b"th": 160, b"tr": 170, b"table": 190, b"body": 200}
_RAW = (b"script", b"style", b"textarea", b"title", b"xmp", b"iframe", b"noembed", b"noframes")
_VOID = (b"br", b"img", b"input", b"meta", b"hr")
_TOKEN = re.compile(rb"<!--|<(/?)([a-z][^\s/>]*+)((?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+)>")


def _reference_element_end(low: bytes, name: bytes, position: int) -> int | None:
    """Every token of the element, one at a time: what find_element_end must answer."""
    open_names = [name]
    while (match := _TOKEN.search(low, position)) is not None:
        position = match.end()
        closing, tag, attributes = match.groups()
        if tag is None:
            end, bang = low.find(b"-->", match.start() + 2), -1
            bang = low.find(b"--!>", match.start() + 4, end if end != -1 else len(low))
            if end == -1 and bang == -1:
                return None
            position = bang + 4 if bang != -1 else end + 3
        elif closing:
            if tag not in open_names:
                return None
            index = len(open_names) - 1 - open_names[::-1].index(tag)
            priority = _END_PRIORITY.get(tag, 100)
            if any(_END_PRIORITY.get(n, 100) > priority for n in open_names[index + 1 :]):
                continue
            del open_names[index:]
            if not open_names:
                return match.end()
        elif tag in _RAW or tag == b"plaintext":
            close = re.compile(b"</" + tag + rb"(?=[ \t\n\r\f/>]|\Z)").search(low, position)
            if close is None:
                return None
            gt = low.find(b">", close.end())
            position = gt + 1 if gt != -1 else len(low)
        elif tag not in _VOID and not _self_closing(attributes):
            if len(open_names) >= 256:
                return None
            open_names.append(tag)
    return None


def _self_closing(attributes: bytes) -> bool:
    ends = [
        m.end()
        for m in re.finditer(
            rb"[^\t\n\f\r \"'>/=]+(?:[\t\n\f\r ]*=[\t\n\f\r ]*"
            rb"(?:\"[^\"]*\"|'[^']*'|[^\t\n\f\r >]+))?",
            attributes,
        )
    ]
    return attributes[max(ends, default=0) :].strip() == b"/"


_MARKUP_PIECES = [
    b"<div>",
    b"</div>",
    b'<div class="a b">',
    b"<span>",
    b"</span>",
    b"<p>",
    b"</p>",
    b"<td>",
    b"</td>",
    b"<tr>",
    b"</tr>",
    b"<table>",
    b"</table>",
    b"<a href=/x/>",
    b"</a>",
    b'<img src="i.png">',
    b"<br/>",
    b"<span/>",
    b"<b class='x>y'>",
    b"</b>",
    b"text",
    b" ",
    b"\n",
    b"<",
    b">",
    b"<!-- c -->",
    b"<!--",
    b"-->",
    b"<script>var a = '</div>';",
    b"</script>",
    b"<title>t</title>",
    b"<i>",
    b"</i>",
    b"</body>",
    b'<em a="1" b>',
    b"</em>",
    b"<br>",
    b"</br>",
    b"<img>",
    b"</img>",
    b"<div/>",
    b"<p a=b/>",
    b"<span/ >",
    b"<div / >",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_MARKUP_PIECES), max_size=40))
@example([b"<span/ >", b"text", b"</span>", b"</div>"])
@example([b"<br>", b"text", b"</br>", b"</div>"])
def test_element_end_matches_reading_every_token(pieces: list[bytes]) -> None:
    """The runs the regex engine skips change nothing: the end is the token walk's end."""
    low = b"<div>" + b"".join(pieces)
    assert find_element_end(low, b"div", 5) == _reference_element_end(low, b"div", 5)


def test_element_end_deeper_than_the_regex_nests() -> None:
    """Elements nested deeper than the skipped runs go still end where the walk ends."""
    low = b"<div>" + b"<div><span>x</span>" * 40 + b"</div>" * 40 + b"</div><p>after"
    end = find_element_end(low, b"div", 5)
    assert end is not None and end == _reference_element_end(low, b"div", 5)


def _reference_open_depths(low: bytes, name: bytes, position: int) -> dict[int, int]:
    """Open elements after each token of the element, one at a time, until it closes."""
    depths = {position: 1}
    prefix_depths: dict[int, int] = {}
    open_names = [name]
    while open_names and (match := _TOKEN.search(low, position)) is not None:
        closing, tag, attributes = match.groups()
        position = match.end()
        if tag is None:
            end = low.find(b"-->", match.start() + 2)
            if end == -1:
                break
            position = end + 3
        elif closing and tag in open_names:
            index = len(open_names) - 1 - open_names[::-1].index(tag)
            priority = _END_PRIORITY.get(tag, 100)
            if not any(_END_PRIORITY.get(n, 100) > priority for n in open_names[index + 1 :]):
                del open_names[index:]
        elif closing:
            break
        elif tag in _RAW:
            close = low.find(b"</" + tag + b">", position)
            if close == -1:
                break
            position = close + len(tag) + 3
        elif tag not in _VOID and not _self_closing(attributes):
            open_names.append(tag)
        prefix_depths[position] = len(open_names)
    return depths | prefix_depths


_SIMPLE_PIECES = [
    piece
    for piece in _MARKUP_PIECES
    if b"<!--" not in piece and b"-->" not in piece and piece not in (b"<", b">")
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_SIMPLE_PIECES), max_size=30), st.integers(0, 400))
def test_element_open_past_stops_where_the_token_walk_has_the_element_open(
    pieces: list[bytes], limit_offset: int
) -> None:
    """The stop lies past the limit, between tokens, with the element open and no deeper."""
    low = b"<div>" + b"".join(pieces)
    limit = 5 + limit_offset % (len(low) - 4)
    stop = element_open_past(low, b"div", 5, limit)
    if stop is None:
        return
    depths = _reference_open_depths(low, b"div", 5)
    before = max((p for p in depths if p < limit), default=5)
    assert stop >= limit
    # Between tokens: at a token's end, or inside text (no '<' between the two).
    boundary = max(p for p in depths if p <= stop)
    assert boundary == stop or b"<" not in low[boundary:stop]
    assert 1 <= depths[boundary] <= depths[before]


# -- character references ------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "&lt;",
                "&gt;",
                "&amp;",
                "&quot;",
                "&#39;",
                "&#x27;",
                "&amp;lt;",
                "&lt",
                "&#39",
                "&notin;",
                "&",
                "a",
                " ",
                "é",
                ";",
                "#",
                "x27;",
            ]
        ),
        max_size=10,
    ).map("".join)
)
def test_common_references_decode_like_the_tokenizer(text: str) -> None:
    """Plain replacement of &lt; &gt; &amp;... gives what the full reference rules give."""
    assert unescape_text(text) == _CHARREF.sub(_text_reference, text)
    assert unescape_attribute(text) == _CHARREF.sub(_attribute_reference, text)


# -- schema.org nodes ----------------------------------------------------------------------


def _reference_normalized(node: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in node.items():
        result.setdefault(key if key.startswith("@") else local_name(key), value)
    return result


@given(
    st.dictionaries(
        st.sampled_from(["@type", "name", "a@b", " name", "schema:name", "price", "x/y", ""]),
        st.integers(),
        max_size=6,
    )
)
def test_normalized_keys_match_the_key_by_key_reduction(node: dict[str, Any]) -> None:
    """A node whose keys need no reduction is returned as the reduction would build it."""
    assert normalized(node) == _reference_normalized(node)


_SCHEMA_KEYS = [
    "@type",
    "@value",
    "@id",
    "name",
    "sku",
    "productID",
    "url",
    "image",
    "brand",
    "offers",
    "price",
    "lowPrice",
    "priceCurrency",
    "availability",
    "description",
    "priceSpecification",
    "priceType",
    "schema:sku",
    "category",
]
_JSON = st.recursive(
    st.none()
    | st.integers(-(10**6), 10**6)
    | st.sampled_from(
        [
            "Product",
            "Offer",
            "AggregateOffer",
            "InStock",
            "12,50",
            "EUR",
            "",
            "a &amp; b",
            "https://x.example/p",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(_SCHEMA_KEYS), children, max_size=5)
    ),
    max_leaves=20,
)


def _reference_fields(node: dict[str, Any], escaped: bool) -> dict[str, object]:
    """The verification fields as schema_product mapped them all at once, offers first."""
    product = normalized(node)
    summary = _OfferSummary(_nodes(product.get("offers")))

    def text(value: object) -> str | None:
        found = first_text(value)
        return html.unescape(found) if escaped and found and "&" in found else found

    brand = _first_name(product.get("brand"))
    return {
        "product_id": text(product.get("productID")),
        "sku": text(product.get("sku")) or summary.sku,
        "name": text(product.get("name")),
        "url": _first_url(product.get("url")),
        "unit_price": summary.price,
        "currency": summary.currency,
        "availability": summary.availability[0],
        "availability_detail": summary.availability[1],
        "brand": html.unescape(brand) if escaped and brand and "&" in brand else brand,
        "description": text(product.get("description")),
        "image_url": _first_url(product.get("image")),
    }


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_SCHEMA_KEYS), _JSON, max_size=8), st.booleans())
@example({"sku": "P", "offers": {"sku": "O", "price": "1"}}, False)
@example({"schema:sku": "a &amp; b", "offers": [{"price": "x"}, {"price": "2"}]}, True)
def test_lazy_schema_fields_equal_the_mapped_product(node: dict[str, Any], escaped: bool) -> None:
    """Each field read from SchemaFields, and schema_product's, is the field's mapping."""
    node["@type"] = "Product"
    fields = SchemaFields(node, html_escaped=escaped)
    product = schema_product(node, "jsonld", html_escaped=escaped)
    for name, value in _reference_fields(node, escaped).items():
        assert getattr(fields, name) == value, name
        assert getattr(product, name) == value, name


@pytest.mark.parametrize("missing", [None, *sorted(FILLED_FIELDS)])
def test_filled_check_agrees_with_missing_fields(missing: str | None) -> None:
    """has_filled_fields is true exactly when missing_fields finds none of FILLED_FIELDS."""
    values: dict[str, Any] = {name: "v" for name in FILLED_FIELDS if name != missing}
    product = PageProduct(source="x", **values)
    assert has_filled_fields(product) == (not missing_fields(product, FILLED_FIELDS))
    assert has_filled_fields(product) == (missing is None)


_WINNERS = [
    {"source": "connectif", "name": "N", "unit_price": Decimal("1")},
    {"source": "connectif", "sku": "S", "currency": "USD", "availability": "in_stock"},
    {"source": "connectif"},
]
_LOWER = [
    PageProduct(source="a", sku="A", unit_price=Decimal("2"), currency="EUR", brand="B"),
    PageProduct(source="b", availability="out_of_stock", availability_detail="sold_out"),
    PageProduct(source="c", currency="GBP", description="D", url="https://u.example/"),
]


@pytest.mark.parametrize("winner", _WINNERS)
@pytest.mark.parametrize("count", [0, 1, 2, 3])
def test_merging_field_values_equals_merging_the_product(
    winner: dict[str, Any], count: int
) -> None:
    """merge_fields gives what merge_into gives for the product built from the same fields."""
    lower = _LOWER[:count]
    assert merge_fields(winner, lower) == merge_into(PageProduct(**winner), lower)


# -- microdata -----------------------------------------------------------------------------


def _reference_node(item: Any, depth: int) -> dict[str, object]:
    """The item's node by walking every element below it (the budgeted walk, no itemref)."""
    node: dict[str, object] = {
        "@type": sorted({local_name(t) for t in (item.get("itemtype") or "").split()})
    }
    stack = [c for c in reversed(item) if isinstance(c.tag, str)]
    while stack:
        element = stack.pop()
        names = (element.get("itemprop") or "").split()
        is_item = element.get("itemscope") is not None
        if names:
            value: object
            if is_item:
                value = _reference_node(element, depth + 1) if depth < 12 else {}
            else:
                value = element.get("content") or " ".join("".join(element.itertext()).split())
            for name in names:
                values = node.setdefault(local_name(name), [])
                if isinstance(values, list):
                    values.append(value)
        if not is_item:
            stack.extend(c for c in reversed(element) if isinstance(c.tag, str))
    return node


@st.composite
def _microdata_tree(draw: st.DrawFn, depth: int = 0) -> str:
    attributes = draw(
        st.sampled_from(
            [
                "",
                " itemscope",
                ' itemprop="name"',
                ' itemprop="offers" itemscope',
                ' itemprop="a b"',
            ]
        )
    )
    children = "".join(
        draw(_microdata_tree(depth + 1)) if depth < 4 and draw(st.booleans()) else "t"
        for _ in range(draw(st.integers(0, 3)))
    )
    return f'<div{attributes} content="c{depth}">{children}</div>'


@settings(max_examples=200, deadline=None)
@given(_microdata_tree())
def test_microdata_properties_found_by_xpath_match_the_walk(tree: str) -> None:
    """The item's own itemprop elements, found by XPath, give the walk's node."""
    html = f'<div itemscope itemtype="https://schema.org/Product">{tree}</div>'
    root = etree.fromstring(html, etree.HTMLParser())
    for item in root.xpath("//*[@itemscope]"):
        assert _microdata_node(item, 0, {}) == _reference_node(item, 0)


def _reference_markup(low: bytes) -> tuple[list[int], bool]:
    itemtypes: list[int] = []
    rdfa = False
    value_pattern = re.compile(rb"[\t\n\f\r ]*=[\t\n\f\r ]*(\"[^\"]*\"|'[^']*'|[^\t\n\f\r >]*)")
    # An occurrence inside a value already read is part of that value, not an attribute.
    typeof_from = itemtype_from = 0
    for match in re.finditer(rb"(?=type)", low):
        position = match.start()
        if low.startswith(b"of", position + 4):
            value = value_pattern.match(low, position + 6)
            if position >= typeof_from and value is not None:
                rdfa = rdfa or b"product" in value.group(1)
                typeof_from = value.end()
        elif position >= 4 and low.startswith(b"item", position - 4):
            value = value_pattern.match(low, position + 4)
            if position - 4 >= itemtype_from and value is not None:
                if b"product" in value.group(1):
                    itemtypes.append(position - 4)
                itemtype_from = value.end()
    return itemtypes, rdfa


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"itemtype",
                b"typeof",
                b"type",
                b"item",
                b"=",
                b'"product"',
                b" ",
                b"'x product'",
                b"of",
                b"product",
                b">",
                b"itemtypeof",
                b'="product"',
            ]
        ),
        max_size=12,
    ).map(b"".join)
)
def test_product_markup_finds_what_reading_each_type_finds(low: bytes) -> None:
    """itemtype and typeof attributes naming a product are found as by checking each "type"."""
    assert product_markup(low) == _reference_markup(low)
