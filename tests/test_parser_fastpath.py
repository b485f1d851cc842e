"""The fast path on the benchmark's pages and on crafted pages: as the full parse reads them."""

from __future__ import annotations

import pytest

from bench.verify.catalog import PageKind, catalog, host_addresses
from bench.verify.pages import render_page
from verifier import parser_fastpath_microdata
from verifier.parser import parse_fast_path, parse_product_page, parse_product_page_full
from verifier.parser_html import parse_document

PAGE_URL = "https://shop.example/product"


def _same_on_both_paths(body: bytes) -> str | None:
    """repr of the fast path's result (None if it fell back), asserting it equals the full's."""
    full = repr(parse_product_page_full(body, PAGE_URL))
    assert repr(parse_product_page(body, PAGE_URL)) == full
    taken = parse_fast_path(body, PAGE_URL)
    assert taken is None or repr(taken) == full
    return None if taken is None else repr(taken)


# -- the benchmark's pages ---------------------------------------------------------------


def _bench_pages() -> list[tuple[PageKind, bytes, str]]:
    products = catalog(60, host_addresses(3), 8000)
    return [(p.kind, render_page(p), p.url) for p in products]


@pytest.mark.parametrize("kind", list(PageKind), ids=[kind.value for kind in PageKind])
def test_benchmark_pages_take_the_fast_path(kind: PageKind) -> None:
    """Every kind of benchmark page is parsed without a full tree, as the full parse reads it."""
    pages = [(body, url) for page_kind, body, url in _bench_pages() if page_kind is kind]
    assert pages
    for body, url in pages:
        taken = parse_fast_path(body, url)
        assert taken is not None
        assert repr(taken) == repr(parse_product_page_full(body, url))


# -- crafted pages -------------------------------------------------------------------------

_TAG_BLOCK = (
    '<div class="cn_product_visited" style="display:none">\n'
    '    <span class="url">https://shop.example/product</span>\n'
    '<span class="product_id">K-1</span>\n<span class="name">Kettle &amp; lid</span>\n'
    '<span class="description">&lt;p&gt;Steel&lt;/p&gt;</span>\n'
    '<span class="unit_price">10.00</span>\n<span class="availability">instock</span>\n'
    '<span class="brand">B</span>\n<span class="image_url">https://i.example/k.jpg</span>\n'
    '    <span class="category">/Home/Kitchen</span>\n</div>\n'
)
_JSONLD = (
    '<script type="application/ld+json">{"@type": "Product", "name": "Kettle", "sku": "S-1", '
    '"offers": {"price": "12.00", "priceCurrency": "EUR"}}</script>'
)


def _page(head: str = _JSONLD, body: str = "", tail: str = "") -> bytes:
    return (
        f"<!doctype html><html><head><title>t</title>{head}</head><body>"
        f'<div class="row"><p>x</p></div>{body}{_TAG_BLOCK}{tail}</body></html>'
    ).encode()


FAST_PAGES = {
    "JSON-LD after the tag block": _page(head="", tail=_JSONLD),
    "tags that begin like the seldom raw-text ones": _page(
        body="<noscript><img src=x></noscript><table><tfoot><tr><td>1</td></tr></tfoot></table>"
        "<template><p>t</p></template><nobr>n</nobr><iframes></iframes>"
    ),
    "seldom raw-text elements before the tag block": _page(
        body="<textarea>a</textarea><IFRAME src=x></IFRAME><noembed>e</noembed>"
        "<NoFrames>f</noframes><xmp>x</xmp>"
    ),
    "script left open after the tag block": _page(tail="<script>var a = 1;"),
    "comment left open after the tag block": _page(tail="<!-- unfinished"),
    "plaintext after the tag block": _page(tail="<plaintext>x"),
    "script start tag holding a quoted >": _page(
        head=_JSONLD.replace("<script ", '<script data-x="a>b" ')
    ),
    "JSON-LD type in single quotes": _page(
        head=_JSONLD.replace('"application/ld+json"', "'application/ld+json'")
    ),
    "JSON-LD type in capitals and spaces": _page(
        head=_JSONLD.replace('"application/ld+json"', '" APPLICATION/LD+JSON "')
    ),
    "JSON-LD with CR LF inside a string": _page(head=_JSONLD.replace("Kettle", "Ket\r\ntle")),
    "JSON-LD after no-break spaces": _page(head=_JSONLD.replace(">{", ">\u00a0\u00a0{")),
    "JSON-LD in a comment wrapper": _page(
        head=_JSONLD.replace(">{", "><!--{").replace("}</script>", "}--></script>")
    ),
    "tag block class with two tokens": _page(body="").replace(
        b'class="cn_product_visited"', b'class="hidden cn_product_visited"'
    ),
    "tag block closing in capitals": _page().replace(b"</span>\n</div>", b"</span>\n</DIV>"),
    "tag block closing with a space": _page().replace(b"</span>\n</div>", b"</span>\n</div >"),
    "tag block leaf class with an entity": _page().replace(
        b'<span class="brand">', b'<span class="br&#97;nd">'
    ),
    "tag block text with CR LF": _page().replace(b"Kettle &amp; lid", b"Kettle\r\nlid"),
    "tag block text with unknown reference": _page().replace(b"&amp;", b"&notin;"),
    "OpenGraph keys in capitals fill the JSON-LD product": (
        "<html><head>" + _JSONLD + '<meta property="OG:TYPE" content="product">'
        '<meta property="PRODUCT:RETAILER_ITEM_ID" content="R-9"></head></html>'
    ).encode(),
    "OpenGraph meta right after a script": (
        "<html><head>" + _JSONLD + '<meta property="og:url" content="https://x.example/p">'
        '<meta property="og:type" content="product"></head></html>'
    ).encode(),
    "OpenGraph key spelled with a character reference": (
        b'<html><head><meta property="og&#58;type" content="product">'
        b'<meta property="og&#x3a;title" content="Kettle">'
        b'<meta property="product&#58;price:amount" content="5"></head></html>'
    ),
    "OpenGraph metas in capitals": _page(head="").replace(
        b"<title>t</title>",
        b'<title>t</title><meta property="OG:TYPE" content="product">'
        b'<meta property="og:price:amount" content="9.50">'
        b'<meta property="product:price:currency" content="usd">',
    ),
}


@pytest.mark.parametrize("body", FAST_PAGES.values(), ids=FAST_PAGES.keys())
def test_crafted_page_is_read_on_the_fast_path_as_in_full(body: bytes) -> None:
    """Pages that exercise a shortcut stay on the fast path and read as the full parse reads."""
    assert _same_on_both_paths(body) is not None


EITHER_PAGES = {
    "comment left open before the tag block": _page(body="<!-- unfinished "),
    "plaintext before the tag block": _page(body="<PlainText>"),
    "script start inside an attribute after a script": _page(
        head=_JSONLD + '<link title="<script>">'
    ),
    "script start inside an attribute before the tag block": _page(
        body='<div title="<script>"></div>', tail="<script>var x = 1;</script>"
    ),
    "JSON-LD word in another attribute of a JSON script": _page(
        head='<script type="application/json" data-kind="ld+json">'
        '{"@type": "Product", "sku": "J-1", "offers": {"priceCurrency": "USD"}}</script>'
    ),
    "decoy block whose class only ends with the tag's": _page(
        body=_TAG_BLOCK.replace("cn_product_visited", "xcn_product_visited").replace("K-1", "D")
    ),
    "tag block start tag inside an attribute": _page(
        body="<p title='" + _TAG_BLOCK.replace("K-1", "DECOY").replace("'", '"') + "'>x</p>"
    ),
    "OpenGraph meta inside an attribute": (
        "<html><head>" + _JSONLD + '<meta property="og:type" content="product"></head><body>'
        '<div title=\'<meta property="og:url" content="https://elsewhere.example/">\'>'
        "</div></body></html>"
    ).encode(),
    "script start inside an attribute with a quoted >": _page(
        body='<div title=">" data-x="<script>"></div>'
    ),
    "tag block copy in a script after a region": _page(
        body="<script>var s = '"
        + _TAG_BLOCK.replace("\n", " ").replace("K-1", "DECOY")
        + "';</script>"
    ),
    "JSON-LD in a comment": _page(head="<!--" + _JSONLD + "-->"),
    "JSON-LD script left open": _page(head=_JSONLD.replace("</script>", "")),
    "meta inside a single-quoted attribute": _page(head="").replace(
        b"<title>t</title>",
        b"<title>t</title><meta name='x' content='<meta property=\"og:title\" content=\"Y\">'>"
        b'<meta property="og:type" content="product">',
    ),
    "OpenGraph meta inside a script": _page(head="").replace(
        b"<title>t</title>",
        b'<title>t</title><script>"<meta property=\\"og:title\\" content=\\"Y\\">"</script>'
        b'<meta property="og:type" content="product">',
    ),
    "microdata Product beside the tag": _page(
        head="",
        body='<div itemscope itemtype="https://schema.org/Product">'
        '<meta itemprop="sku" content="M-1"><span itemprop="name">Other</span></div>',
    ),
    "microdata Product only in a comment": _page(
        head="",
        body='<!-- <div itemscope itemtype="https://schema.org/Product">'
        '<meta itemprop="sku" content="M-1"></div> -->',
    ),
    "Product only in a script, lowercase itemtype outside": _page(
        head="<script>var t = 'Product';</script>",
        body='<div itemscope itemtype="http://schema.org/product">'
        '<meta itemprop="sku" content="M-1"></div>',
    ),
    "RDFa Product beside the tag": _page(
        head="",
        body='<div vocab="https://schema.org/" typeof="Product">'
        '<span property="sku">R-1</span></div>',
    ),
}


@pytest.mark.parametrize("body", EITHER_PAGES.values(), ids=EITHER_PAGES.keys())
def test_crafted_page_reads_the_same_on_both_paths(body: bytes) -> None:
    """Odd pages either fall back to the full parse or read exactly as it does."""
    _same_on_both_paths(body)


def test_bom_page_with_broken_utf8_reads_as_in_full() -> None:
    """After a byte order mark the bytes are unchecked: the paths still read them alike."""
    body = b"\xef\xbb\xbf" + _page().replace(b"Kettle &amp; lid", b"Kettle \xff lid").replace(
        b'"name": "Kettle"', b'"name": "Ke\xfftle"'
    )
    _same_on_both_paths(body)


def test_fragment_after_unchecked_bom_is_decoded_before_parsing() -> None:
    """A Product fragment of unchecked bytes is decoded as text first (one U+FFFD per cut)."""
    body = (
        b'\xef\xbb\xbf<html><body><div itemscope itemtype="https://schema.org/Product">'
        b'<span itemprop="name">N\xe2\x82x</span></div></body></html>'
    )
    product = parse_product_page(body, PAGE_URL).product
    assert product is not None and product.name == "N\ufffdx"


def test_jsonld_product_matching_the_page_url_is_chosen() -> None:
    """Of two JSON-LD Products, the one whose URL is the page's gives the product."""
    other = _JSONLD.replace('"S-1"', '"OTHER"').replace(
        '"name"', '"url": "https://x.example/o", "name"'
    )
    own = _JSONLD.replace('"S-1"', '"OWN"').replace('"name"', f'"url": "{PAGE_URL}", "name"')
    body = f"<html><head>{other}{own}</head><body></body></html>".encode()
    product = parse_product_page(body, PAGE_URL).product
    assert product is not None and product.sku == "OWN"
    _same_on_both_paths(body)


def test_start_tag_too_long_to_see_is_left_to_the_full_parse() -> None:
    """A script start tag longer than the scan looks at sends the page to the full parse."""
    body = _page(body='<script data-x="' + "x" * 70_000 + '">var a;</script>')
    assert parse_fast_path(body, PAGE_URL) is None
    assert parse_product_page(body, PAGE_URL) == parse_product_page_full(body, PAGE_URL)


# -- a Product element read only up to its last microdata attribute -----------------------

_PRODUCT_OPEN = '<div itemscope itemtype="https://schema.org/Product">'
_TRAILING_MARKUP = "<div class='more'><p>Related products</p><span>9.99</span></div>" * 20


def _microdata_page(product: str, after: str = "") -> bytes:
    return f"<html><body><main>{product}</main>{after}</body></html>".encode()


def test_product_is_parsed_only_up_to_its_last_microdata_attribute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The markup after the last itemprop in the Product element is left out of its parse."""
    parsed: list[bytes] = []

    def spy(utf8: bytes) -> object:
        parsed.append(utf8)
        return parse_document(utf8)

    monkeypatch.setattr(parser_fastpath_microdata, "parse_document", spy)
    body = _microdata_page(
        _PRODUCT_OPEN + '<div><h1 itemprop="name">Kettle</h1>\n<p itemprop="description">'
        "Steel <b>kettle</b>.</p>\n" + _TRAILING_MARKUP + "</div></div>"
    )
    assert _same_on_both_paths(body) is not None
    assert parsed and all(b"Related products" not in fragment for fragment in parsed)


MICRODATA_PAGES = {
    "text property still open after its last nested itemprop": _microdata_page(
        _PRODUCT_OPEN + '<div itemprop="description">Intro <span itemprop="name">Kettle</span>'
        " and the rest of the description</div>" + _TRAILING_MARKUP + "</div>"
    ),
    "offer item still open after its last property": _microdata_page(
        _PRODUCT_OPEN + '<span itemprop="name">Kettle</span><div itemprop="offers" itemscope '
        'itemtype="https://schema.org/Offer"><meta itemprop="price" content="9.50">'
        " offer text <p>more</p></div>" + _TRAILING_MARKUP + "</div>"
    ),
    "whitespace after the cut inside the product": _microdata_page(
        _PRODUCT_OPEN + '<span itemprop="name">Kettle</span>   \n  <p>x</p></div>'
    ),
    "product never closed": _microdata_page(
        _PRODUCT_OPEN + '<span itemprop="name">Kettle</span>' + _TRAILING_MARKUP
    ),
    "product closed by the end tag of an element around it": (
        b"<html><body><section><article itemscope itemtype='https://schema.org/Product'>"
        b'<span itemprop="name">Kettle</span></section><span itemprop="sku">S-1</span>'
        b"</article></body></html>"
    ),
    "another item after the product": _microdata_page(
        _PRODUCT_OPEN + '<span itemprop="name">Kettle</span></div>',
        '<div itemscope itemtype="https://schema.org/Thing"><span itemprop="sku">S-1</span></div>',
    ),
    "microdata attribute inside a comment after the product": _microdata_page(
        _PRODUCT_OPEN + '<span itemprop="name">Kettle</span><p>text</p></div>',
        '<!-- <span itemprop="sku">S-1</span> -->',
    ),
}


@pytest.mark.parametrize("body", MICRODATA_PAGES.values(), ids=MICRODATA_PAGES.keys())
def test_microdata_page_read_up_to_its_last_attribute_reads_as_in_full(body: bytes) -> None:
    """Whatever follows the last microdata attribute in the Product, it reads as in full."""
    _same_on_both_paths(body)


def test_text_property_open_at_the_cut_keeps_its_whole_text() -> None:
    """A text-valued property still open where the reading would stop is read whole."""
    result = parse_product_page(
        MICRODATA_PAGES["text property still open after its last nested itemprop"], PAGE_URL
    )
    assert result.product is not None
    assert result.product.description == "Intro Kettle and the rest of the description"


def test_product_closed_by_an_outer_end_tag_loses_what_follows() -> None:
    """An itemprop after the end tag that closed the Product element is not the Product's."""
    result = parse_product_page(
        MICRODATA_PAGES["product closed by the end tag of an element around it"], PAGE_URL
    )
    assert result.product is not None and result.product.sku is None


# -- OpenGraph read only when it may fill something ----------------------------------------

_FULL_MICRODATA = (
    _PRODUCT_OPEN + '<meta itemprop="sku" content="S-1"><meta itemprop="url" '
    'content="https://shop.example/p"><h1 itemprop="name">Kettle</h1><img itemprop="image" '
    'src="https://shop.example/k.jpg"><p itemprop="description">Steel.</p><div itemprop="brand"'
    ' itemscope itemtype="https://schema.org/Brand"><meta itemprop="name" content="Acme"></div>'
    '<div itemprop="offers" itemscope itemtype="https://schema.org/Offer"><meta itemprop="price"'
    ' content="9.50"><meta itemprop="priceCurrency" content="EUR"><link itemprop="availability"'
    ' href="https://schema.org/InStock"></div></div>'
)


def _with_metas(metas: str) -> bytes:
    return (
        f'<html><head><meta property="og:type" content="product">{metas}</head>'
        f"<body>{_FULL_MICRODATA}<i>&#xE314;</i></body></html>"
    ).encode()


OPENGRAPH_ID_PAGES = {
    "retailer id spelled out": _with_metas(
        '<meta property="product:retailer_item_id" content="R-7">'
    ),
    "retailer id key with character references": _with_metas(
        '<meta property="product:retailer&#95;item&#95;id" content="R-7">'
    ),
    "retailer id key with references after a '>' in a quoted value": _with_metas(
        '<meta content="R-7" data-x="a>b" property="product:retailer&#95;item&#95;id">'
    ),
    "retailer id key in capitals": _with_metas(
        '<meta name="PRODUCT:RETAILER_ITEM_ID" content="R-7">'
    ),
}


@pytest.mark.parametrize("body", OPENGRAPH_ID_PAGES.values(), ids=OPENGRAPH_ID_PAGES.keys())
def test_opengraph_retailer_id_fills_the_only_missing_field(body: bytes) -> None:
    """With only the product id missing, a retailer id meta however spelled still fills it."""
    assert _same_on_both_paths(body) is not None
    result = parse_product_page(body, PAGE_URL)
    assert result.product is not None and result.product.product_id == "R-7"


def test_page_without_retailer_id_reads_as_in_full() -> None:
    """With only the product id missing and no meta that can state it, the result is the same."""
    body = _with_metas('<meta property="og:title" content="Other name">')
    assert _same_on_both_paths(body) is not None
    result = parse_product_page(body, PAGE_URL)
    assert result.product is not None and result.product.product_id is None
    assert result.product.name == "Kettle"


def test_jsonld_type_spelled_with_json_escapes_is_read_on_both_paths() -> None:
    """JSON escapes spelling "Product" are read by the fast path as by the full one."""
    body = (
        b'<html><head><script type="application/ld+json">{"@type": "\\u0050rodu\\u0063t",'
        b' "name": "Kettle", "sku": "K1", "offers": {"price": "19.90", "priceCurrency": "EUR"}}'
        b"</script></head><body><p>caf\\u00e9</p></body></html>"
    )
    full = parse_product_page_full(body, PAGE_URL)
    assert full.product is not None and full.product.name == "Kettle"
    _same_on_both_paths(body)


BOGUS_COMMENTS = ["<?x </div> ?>", "<!x </div> >", "</ x </div> >", "<![CDATA[ </div> ]]>"]


@pytest.mark.parametrize("bogus", BOGUS_COMMENTS)
def test_end_tags_inside_bogus_comments_do_not_end_a_microdata_product(bogus: str) -> None:
    """The tokenizer reads "<?...>", "<!x...>", "</ ...>" as comments: both paths agree."""
    body = (
        '<html><body><div itemscope itemtype="https://schema.org/Product">'
        f"<h1 itemprop=name>Kettle</h1>{bogus}<span itemprop=sku>S1</span>"
        '<span itemprop=price content="19.90"></span></div></body></html>'
    ).encode()
    full = parse_product_page_full(body, PAGE_URL)
    assert full.product is not None and full.product.sku == "S1"
    _same_on_both_paths(body)


def test_plaintext_inside_a_microdata_property_reads_alike_on_both_paths() -> None:
    """<plaintext> never closes: the fast path does not pretend it does."""
    body = (
        b'<html><body><div itemscope itemtype="https://schema.org/Product">'
        b"<h1 itemprop=name>Kettle</h1><span itemprop=sku>S1</span>"
        b"<p itemprop=description>a<plaintext>b</plaintext>c</p></div>more</body></html>"
    )
    _same_on_both_paths(body)
