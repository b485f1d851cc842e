"""Product-page parser: the shared corpus, the tag fixtures, each source, and robustness."""

from __future__ import annotations

import json
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier import parser as parser_module
from verifier.parser import (
    PageProduct,
    ParseResult,
    _parse,
    parse_fast_path,
    parse_product_page,
    parse_product_page_full,
)
from verifier.parser_elements import element_open_past

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "pages"
_CORPUS_CANDIDATES = (ROOT.parent / "shared" / "corpus", Path("/work/shared/corpus"))
CORPUS = next((path for path in _CORPUS_CANDIDATES if path.is_dir()), _CORPUS_CANDIDATES[0])
EXPECTED: dict[str, Any] = (
    json.loads((CORPUS / "expected.json").read_text())["pages"]
    if (CORPUS / "expected.json").is_file()
    else {}
)
PAGE_URL = "https://shop.example/product"
# The corpus states preorder/backorder as availabilities; the contract keeps them in_stock.
_AVAILABILITY = {"preorder": "in_stock", "backorder": "in_stock", "unknown": None}


def _corpus_pages() -> list[str]:
    if not EXPECTED:
        pytest.fail(f"corpus not found at {CORPUS}")
    return sorted(EXPECTED)


def _all_pages() -> list[Path]:
    return sorted(FIXTURES.glob("*.html")) + [CORPUS / "pages" / name for name in sorted(EXPECTED)]


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _observed(product: PageProduct, field: str) -> object:
    if field == "price":
        return product.unit_price
    if field == "availability":
        return product.availability
    return getattr(product, field)


def _wanted(field: str, value: object) -> object:
    if field == "price":
        return Decimal(str(value)) if value is not None else None
    if field == "availability":
        return _AVAILABILITY.get(str(value), value)
    return value


@pytest.mark.parametrize("name", sorted(EXPECTED) or ["(corpus missing)"])
def test_corpus_page_gives_expected_product(name: str) -> None:
    """Each corpus page yields the expected.json values; ambiguous fields only warn."""
    _corpus_pages()
    case = EXPECTED[name]
    ambiguous = set(case["ambiguous_fields"])
    product = parse_product_page(_read(CORPUS / "pages" / name), PAGE_URL).product
    if (product is not None) != case["product_found"]:
        message = f"{name}: product_found {product is not None}, expected {case['product_found']}"
        if "product_found" in ambiguous:
            warnings.warn(message, stacklevel=1)
            return
        pytest.fail(message)
    if product is None:
        return
    for field, value in case["expected"].items():
        observed, wanted = _observed(product, field), _wanted(field, value)
        if observed != wanted:
            message = f"{name}: {field} = {observed!r}, expected {wanted!r}"
            if field not in ambiguous:
                pytest.fail(message)
            warnings.warn(message, stacklevel=1)


@pytest.mark.parametrize("path", _all_pages(), ids=lambda path: path.name)
def test_fast_and_full_paths_agree(path: Path) -> None:
    """parse_product_page (fast path first) and the full lxml parse give identical results."""
    body = _read(path)
    fast = parse_product_page(body, PAGE_URL)
    full = parse_product_page_full(body, PAGE_URL)
    assert repr(fast) == repr(full)
    taken = parse_fast_path(body, PAGE_URL)
    assert taken is None or repr(taken) == repr(full)


@pytest.mark.parametrize(
    "name",
    [
        "prestashop-tag-jsonld.html",
        "tag-only.html",
        "tag-html-description.html",
        "tag-latin1-no-charset.html",
        "tag-hidden-copies.html",
        "tag-not-found.html",
        "prestashop17-tag-microdata.html",
    ],
)
def test_tag_pages_take_the_fast_path(name: str) -> None:
    """Tag pages, with JSON-LD or microdata beside the tag, are parsed without a full tree."""
    assert parse_fast_path(_read(FIXTURES / name), PAGE_URL) is not None


PRESTASHOP: dict[str, object] = {
    "source": "connectif",
    "product_id": "RC-2019",
    "sku": "RC-2019",
    "name": "Rioja Crianza 2019",
    "url": "https://www.vinosdelsur.example/tintos/42-rioja-crianza-2019.html",
    "unit_price": Decimal("12.95"),
    "currency": "EUR",
    "availability": "in_stock",
    "availability_detail": "in_stock",
    "brand": "Bodegas Ejemplo",
    "description": "<p>Vino tinto con 12 meses en barrica de roble americano. Aromas a fruta "
    "roja madura, vainilla y especias.</p>",
    "image_url": "https://www.vinosdelsur.example/126-large_default/rioja-crianza-2019.jpg",
    "categories": ("/Inicio/Vinos tintos", "/Inicio/Vinos tintos/Rioja", "/Inicio/Ofertas"),
    "tags": ("rioja", "crianza", "tempranillo"),
    "related_product_ids": ("RB-2021", "PS-2018", "TT-2020"),
    "unit_price_original": Decimal("14.39"),
    "unit_price_without_vat": Decimal("10.7025"),
    "discounted_percentage": Decimal("10"),
    "discounted_amount": Decimal("1.44"),
    "rating_value": None,
}
TAG_ONLY: dict[str, object] = {
    "source": "connectif",
    "product_id": "77",
    "sku": None,
    "name": "Théière en fonte 0,8 L & filtre",
    "unit_price": Decimal("29.9"),
    "currency": None,
    "availability": "out_of_stock",
    "thumbnail_url": "https://boutique.example/231-small_default/theiere-fonte.jpg",
    "categories": ("/Accueil/Cuisine", "/Accueil/Cuisine/Thé & café"),
    "tags": ("fonte", "thé"),
    "related_product_ids": ("78",),
    "rating_value": Decimal("4.5"),
    "review_count": 7,
    "rating_count": None,
    "published_at": "2023-10-02T09:30:00+02:00",
    "custom_fields": {"custom_field_1": "Asie", "custom_field_3": "fonte"},
}
FIXTURE_CASES: list[tuple[str, dict[str, object]]] = [
    ("prestashop-tag-jsonld.html", PRESTASHOP),
    ("tag-only.html", TAG_ONLY),
    (
        # The first block lacks a url, so (as the tag client does) the second one counts;
        # its description holds real markup, whose text content is the value.
        "tag-html-description.html",
        {
            "product_id": "AOVE-250",
            "name": "Aceite de oliva virgen extra 250 ml",
            "description": "Cosecha temprana,\npicualarbequina\nnombre dentro de la descripción",
            "unit_price": Decimal("4.75"),
            "currency": "EUR",
            "sku": "AOVE-250",
            "categories": ("/Inicio/Aceites",),
        },
    ),
    (
        # An unclosed span holds everything after it, so its text content does too.
        "tag-broken-html.html",
        {
            "url": "https://broken.example/p/5?ref=a&b=c",
            "name": "Sac étanche 20\u00a0L",
            "unit_price": Decimal("15"),
            "availability": "in_stock",
            "categories": ("/Sport/Nautique", "/Sport/Nautique/Sacs"),
        },
    ),
    ("tag-latin1-no-charset.html", {"name": "Café crème € 10", "brand": "Torréfaction"}),
    ("tag-wrong-charset.html", {"name": "Café € naïve", "unit_price": Decimal("7")}),
    ("tag-declared-utf8-but-latin1.html", {"name": "Crème brûlée", "availability": "out_of_stock"}),
    (
        # Copies in a script string, a comment and a textarea are not tags; the first real
        # block has a negative price, which the tag client rejects.
        "tag-hidden-copies.html",
        {
            "product_id": "LMP-32",
            "unit_price": Decimal("39"),
            "availability": "in_stock",
            "availability_detail": "pre_order",
        },
    ),
    (
        # Tag first; microdata fills sku and currency; OpenGraph's GBP price is not used.
        "prestashop17-tag-microdata.html",
        {
            "source": "connectif",
            "product_id": "demo_1",
            "sku": "demo_1",
            "unit_price": Decimal("19.12"),
            "currency": "GBP",
            "unit_price_original": Decimal("23.9"),
        },
    ),
]


@pytest.mark.parametrize(("name", "expected"), FIXTURE_CASES, ids=[c[0] for c in FIXTURE_CASES])
def test_tag_fixture_gives_expected_product(name: str, expected: dict[str, object]) -> None:
    """Each tag fixture yields the product the tag template states, field by field."""
    result = parse_product_page(_read(FIXTURES / name), PAGE_URL)
    assert result.not_found is False
    assert result.product is not None
    for field, value in expected.items():
        assert getattr(result.product, field) == value, field


def test_not_found_block_sets_not_found() -> None:
    """A cn_product_not_found block sets not_found and names its product_id."""
    result = parse_product_page(_read(FIXTURES / "tag-not-found.html"), PAGE_URL)
    assert result == ParseResult(not_found=True, product=None, not_found_product_id="RC-2015")


def test_huge_page_parses_like_its_small_self() -> None:
    """A 5 MB page (filler before the tag) gives the same product on both paths."""
    small = _read(FIXTURES / "prestashop-tag-jsonld.html")
    filler = b"<div class='row'><p>" + b"Lorem ipsum dolor sit amet. " * 40 + b"</p></div>\n"
    body = small.replace(b'<footer id="footer"', filler * 4400 + b'<footer id="footer"', 1)
    assert len(body) > 5_000_000
    expected = parse_product_page(small, PAGE_URL)
    assert parse_product_page(body, PAGE_URL) == expected
    assert parse_product_page_full(body, PAGE_URL) == expected


def test_charset_from_content_type_header_decodes_the_page() -> None:
    """Bytes that are not UTF-8 decode with the charset the HTTP header names."""
    name = "Чайник электрический"
    body = _tag_page(name=name).encode("koi8-r")
    product = parse_product_page(body, PAGE_URL, "text/html; charset=KOI8-R").product
    assert product is not None and product.name == name
    assert parse_product_page_full(body, PAGE_URL, "text/html; charset=koi8-r") == (
        parse_product_page(body, PAGE_URL, "text/html; charset=koi8-r")
    )


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_byte_order_mark_decides_the_charset(encoding: str) -> None:
    """A UTF-16 or UTF-8 byte order mark decodes the page whatever it declares."""
    body = _tag_page(name="Ñandú €").encode(encoding)
    for result in (parse_product_page(body, PAGE_URL), parse_product_page_full(body, PAGE_URL)):
        assert result.product is not None and result.product.name == "Ñandú €"


def _tag_page(name: str = "Kettle", extra: str = "", head: str = "") -> str:
    return (
        f"<html><head><title>t</title>{head}</head><body>{extra}"
        '<div class="cn_product_visited" style="display:none">'
        '<span class="url">https://shop.example/product</span>'
        f'<span class="product_id">K-1</span><span class="name">{name}</span>'
        '<span class="unit_price">10.00</span><span class="availability">instock</span>'
        "</div></body></html>"
    )


def _jsonld_page(*blocks: str, body: str = "") -> bytes:
    scripts = "".join(f'<script type="application/ld+json">{b}</script>' for b in blocks)
    return f"<html><head>{scripts}</head><body>{body}</body></html>".encode()


PRODUCT = '{"@context": "https://schema.org", "@type": "Product", "name": "Kettle"'
JSONLD_CASES: list[tuple[str, tuple[str, ...], dict[str, object]]] = [
    (
        "graph",
        ('{"@graph": [{"@type": "WebPage"}, ' + PRODUCT + ', "sku": "G1"}]}',),
        {"sku": "G1"},
    ),
    (
        "top-level array",
        ("[" + PRODUCT + ', "sku": "A1"}, {"@type": "BreadcrumbList"}]',),
        {"sku": "A1"},
    ),
    ("null blocks", ("null", "", "{bad json", PRODUCT + "}"), {"name": "Kettle"}),
    (
        "escaped keys and slashes",
        ('{"\\u0040type": "Product", "name": "K\\u00e9", "url": "https:\\/\\/s.example\\/p"}',),
        {"name": "Ké", "url": "https://s.example/p"},
    ),
    (
        "offers array: first priced offer",
        (
            PRODUCT + ', "offers": [{"@type": "Offer"}, {"price": "9.90", "priceCurrency": "eur", '
            '"availability": "SoldOut"}]}',
        ),
        {"unit_price": Decimal("9.90"), "currency": "EUR", "availability": "out_of_stock"},
    ),
    (
        "AggregateOffer lowPrice, availability URL",
        (
            PRODUCT + ', "offers": {"@type": "AggregateOffer", "lowPrice": 5.29, "highPrice": 9, '
            '"priceCurrency": "GBP", "availability": "http://schema.org/PreOrder"}}',
        ),
        {
            "unit_price": Decimal("5.29"),
            "availability": "in_stock",
            "availability_detail": "pre_order",
        },
    ),
    (
        "price as object is no price, brand null",
        (PRODUCT + ', "brand": null, "offers": {"price": {}, "priceCurrency": "USD"}}',),
        {"unit_price": None, "currency": "USD", "brand": None},
    ),
    (
        "priceSpecification and ImageObject",
        (
            PRODUCT + ', "image": [{"@type": "ImageObject", "url": "https://i.example/1.jpg"}], '
            '"offers": {"priceSpecification": [{"price": "20", "priceCurrency": "EUR", '
            '"priceType": '
            '"https://schema.org/ListPrice"}, {"price": "15", "priceCurrency": "EUR"}]}}',
        ),
        {
            "unit_price": Decimal("15"),
            "unit_price_original": Decimal("20"),
            "image_url": "https://i.example/1.jpg",
        },
    ),
    (
        "raw newline inside a string, comment wrapper",
        ("<!--\n" + PRODUCT + ', "description": "two\nlines"}\n-->',),
        {"description": "two lines"},
    ),
    (
        "variant matching the page URL",
        (
            '{"@type": "ProductGroup", "name": "Tee", "hasVariant": ['
            '{"@type": "Product", "sku": "S", "url": "https://shop.example/p?size=s"}, '
            '{"@type": "Product", "sku": "M", "url": "https://shop.example/product"}]}',
        ),
        {"sku": "M"},
    ),
    (
        "rating scaled to five",
        (
            PRODUCT + ', "aggregateRating": {"ratingValue": "87", "bestRating": "100", '
            '"ratingCount": "24"}}',
        ),
        {"rating_value": Decimal("4.35"), "rating_count": 24},
    ),
]


@pytest.mark.parametrize(
    ("case", "blocks", "expected"), JSONLD_CASES, ids=[c[0] for c in JSONLD_CASES]
)
def test_jsonld_product_variant_is_read(
    case: str, blocks: tuple[str, ...], expected: dict[str, object]
) -> None:
    """JSON-LD in its many published shapes yields the Product's fields."""
    body = _jsonld_page(*blocks)
    result = parse_product_page(body, PAGE_URL)
    assert result.product is not None and result.product.source == "jsonld", case
    for field, value in expected.items():
        assert getattr(result.product, field) == value, field
    assert repr(result) == repr(parse_product_page_full(body, PAGE_URL))


def test_jsonld_without_product_gives_no_product() -> None:
    """Organization, WebSite and breadcrumb JSON-LD alone is not a product."""
    body = _jsonld_page('{"@type": "Organization", "name": "Shop"}', '{"@type": "WebSite"}')
    assert parse_product_page(body, PAGE_URL) == ParseResult(not_found=False, product=None)


def test_tag_wins_and_jsonld_fills_what_it_lacks() -> None:
    """The tag's price wins over JSON-LD's; JSON-LD adds the currency and sku the tag lacks."""
    jsonld = (
        '<script type="application/ld+json">' + PRODUCT + ', "sku": "SKU-K", "offers": '
        '{"price": "12.00", "priceCurrency": "EUR", "availability": "OutOfStock"}, '
        '"aggregateRating": {"ratingValue": "4", "reviewCount": "3"}}</script>'
    )
    product = parse_product_page(_tag_page(head=jsonld).encode(), PAGE_URL).product
    assert product is not None
    assert (product.source, product.unit_price, product.currency) == (
        "connectif",
        Decimal("10.00"),
        "EUR",
    )
    assert (product.sku, product.availability) == ("SKU-K", "in_stock")
    # Ratings are not among the fields a lower source fills.
    assert product.rating_value is None


def test_microdata_product_uses_content_and_itemref() -> None:
    """Microdata reads content attributes first and follows itemref, not unreferenced items."""
    body = b"""<div itemscope itemtype="https://schema.org/Product" itemref="extra">
      <span itemprop="name">Anvil</span>
      <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
        <span itemprop="price" content="1000.00">1,000.00</span>
        <meta itemprop="priceCurrency" content="USD"><link itemprop="availability" href=" https://schema.org/Discontinued">
      </div></div>
      <p id="extra"><span itemprop="sku">AN-1</span></p>
      <div itemscope itemtype="https://schema.org/Product">
        <span itemprop="name">Other</span></div>"""
    product = parse_product_page(body, PAGE_URL).product
    assert product is not None and product.source == "microdata"
    assert (product.name, product.sku, product.unit_price) == ("Anvil", "AN-1", Decimal("1000.00"))
    assert (product.currency, product.availability) == ("USD", "discontinued")


def test_opengraph_product_tags_are_the_last_resort() -> None:
    """OpenGraph product tags give id, sale price, currency and availability when alone."""
    metas = "".join(
        f'<meta property="{key}" content="{value}">'
        for key, value in [
            ("og:type", "product.item"),
            ("og:title", "Dead &amp; Alive"),
            ("product:retailer_item_id", "fye.1"),
            ("product:price:amount", "20,00"),
            ("product:sale_price:amount", "17.99"),
            ("product:sale_price:currency", "usd"),
            ("product:availability", "in stock"),
        ]
    )
    product = parse_product_page(f"<html><head>{metas}</head></html>".encode(), PAGE_URL).product
    assert product is not None and product.source == "opengraph"
    assert (product.product_id, product.name, product.currency) == ("fye.1", "Dead & Alive", "USD")
    assert (product.unit_price, product.unit_price_original) == (Decimal("17.99"), Decimal("20.00"))
    assert product.availability == "in_stock"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"\x00\x01\x02",
        b"<",
        b"<html",
        b"\xff\xfe",
        b"\xff\xfe<\x00",
        b"<!--",
        b"<script>",
        b'<div class="cn_product_visited">',
        b"<?xml version='1.0' encoding='utf-8'?><html/>",
        b'<meta charset="utf-16"><p>x</p>',
        b'<script type="application/ld+json">{"@type": "Product", "offers": {"lowPrice": '
        b'"1e9999"}, "aggregateRating": {"ratingValue": "1e9999", "bestRating": "1e-9999"}}'
        b"</script>",
        b"\xef\xbb\xbf",
        "<p>\ud800</p>".encode("utf-8", "surrogatepass"),
    ],
)
def test_degenerate_input_gives_a_result(body: bytes) -> None:
    """Empty, truncated and garbage bodies give a ParseResult on both paths, never an error."""
    for fast in (True, False):
        assert isinstance(_parse(body, PAGE_URL, None, fast=fast), ParseResult)


_SMALL_PAGES = [p for p in _all_pages() if p.stat().st_size < 60_000]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=3000),
    st.sampled_from([None, "text/html; charset=shift_jis", "charset=bogus"]),
)
def test_random_bytes_never_raise(body: bytes, content_type: str | None) -> None:
    """Arbitrary bytes parse without an exception, on both paths (no catch-all involved)."""
    for fast in (True, False):
        assert isinstance(_parse(body, PAGE_URL, content_type, fast=fast), ParseResult)


@st.composite
def _mutated_page(draw: st.DrawFn) -> bytes:
    body = bytearray(_read(draw(st.sampled_from(_SMALL_PAGES))))
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(body)))
        end = draw(st.integers(start, min(len(body), start + 200)))
        insert = draw(
            st.sampled_from(
                [
                    b"",
                    b"<",
                    b">",
                    b"<!--",
                    b"-->",
                    b"</div>",
                    b"<script>",
                    b'"',
                    b"\x00",
                    b"\xe9",
                    b'<span class="name">',
                ]
            )
        )
        body[start:end] = insert + draw(st.binary(max_size=8))
    return bytes(body)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated_page())
def test_mutated_pages_never_raise(body: bytes) -> None:
    """Corpus and fixture pages with random cuts and insertions parse without an exception."""
    for fast in (True, False):
        assert isinstance(_parse(body, PAGE_URL, None, fast=fast), ParseResult)


_SCHEMA_KEYS = [
    "@type",
    "@graph",
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
    "priceSpecification",
    "priceType",
    "aggregateRating",
    "ratingValue",
    "bestRating",
    "ratingCount",
    "category",
]
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["Product", "AggregateOffer", "InStock", "1e9999", "12,50", "EUR", ""])
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_SCHEMA_KEYS), children, max_size=6)
    ),
    max_leaves=30,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(_SCHEMA_KEYS), _JSON, max_size=8))
def test_arbitrary_jsonld_product_never_raises(node: dict[str, Any]) -> None:
    """Any JSON under a Product @type maps to a product (or none) without an exception."""
    node["@type"] = "Product"
    body = _jsonld_page(json.dumps(node))
    for fast in (True, False):
        result = _parse(body, PAGE_URL, None, fast=fast)
        assert result.product is not None and result.product.source == "jsonld"


_REFERENCE_PIECES = st.sampled_from(
    [
        "&amp;",
        "&amp",
        "&notit;",
        "&copy=",
        "&#0;",
        "&#128;",
        "&#x10FFFF;",
        "&#xD800;",
        "&#13",
        "&#99999999999;",
        "&;",
        "&",
        "\r\n",
        "\r",
        "\x00",
        "\x01",
        "é",
        "=",
        "a",
        " ",
        "'",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_REFERENCE_PIECES, min_size=1, max_size=8).map("".join))
def test_paths_agree_on_character_references(text: str) -> None:
    """Tag text and OpenGraph content decode identically on the fast and the full path."""
    page = _tag_page(name=text, head=f'<meta property="og:title" content="{text}">').encode()
    og_only = (
        f'<html><head><meta property="og:type" content="product">'
        f'<meta property="og:title" content="{text}"></head></html>'
    ).encode()
    for body in (page, og_only):
        fast = _parse(body, PAGE_URL, None, fast=True)
        assert repr(fast) == repr(_parse(body, PAGE_URL, None, fast=False))


@pytest.mark.parametrize(
    "wrapper",
    ["script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "!--"],
)
def test_tag_copy_inside_raw_text_is_ignored(wrapper: str) -> None:
    """A tag block written inside a comment or raw-text element is text, not a tag."""
    decoy = (
        '<div class="cn_product_visited"><span class="url">https://shop.example/decoy</span>'
        '<span class="product_id">DECOY</span><span class="name">Decoy</span>'
        '<span class="unit_price">1</span></div>'
    )
    opening, closing = ("<!--", "-->") if wrapper == "!--" else (f"<{wrapper}>", f"</{wrapper}>")
    body = _tag_page(extra=f"{opening}{decoy}{closing.upper()}").encode()
    for result in (parse_product_page(body, PAGE_URL), parse_product_page_full(body, PAGE_URL)):
        assert result.product is not None and result.product.product_id == "K-1", wrapper
    assert parse_fast_path(body, PAGE_URL) is not None


_REPEATS = 100_000
ADVERSARIAL = {
    "class names outside tags": b"cn_product_visited " * _REPEATS,
    "thousands of tag blocks": b'<div class="cn_product_visited">' * _REPEATS,
    "metas never closed": b"<html><head>" + b"<meta " * _REPEATS,
    "deeply nested block": b'<div class="cn_product_visited">' + b"<span>" * _REPEATS,
    "product items never closed": b'<div itemscope itemtype="https://schema.org/Product">' * 5000,
    "itemtype in text": b'itemtype="product" ' * _REPEATS,
    "typeof without spaces": b"typeof=" * _REPEATS,
    "itemtype without spaces": b"itemtype=" * _REPEATS,
    "typeof with an unclosed quote": b"typeof='" + b"typeof=x" * _REPEATS,
    "script tags never closed": b"<script x " * _REPEATS,
    "many comments": b"<!-- --> " * _REPEATS,
    "many json-ld scripts": b'<script type="application/ld+json">{"@type":"Product"}</script>'
    * 5000,
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("body", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_adversarial_repetition_parses_in_linear_time(body: bytes) -> None:
    """Megabyte pages built to make a scanner quadratic parse well within the timeout."""
    for fast in (True, False):
        assert isinstance(_parse(body, PAGE_URL, None, fast=fast), ParseResult)


def test_a_failing_fast_path_falls_back_to_the_full_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception inside the fast path costs speed, never the page's product."""
    body = _read(FIXTURES / "prestashop-tag-jsonld.html")
    expected = parse_product_page_full(body, PAGE_URL)
    assert expected.product is not None

    def broken(*_: object) -> None:
        raise IndexError("fast path bug")

    monkeypatch.setattr(parser_module, "_parse_fast", broken)
    assert repr(parse_product_page(body, PAGE_URL)) == repr(expected)


def test_a_limited_element_scan_gives_up_before_rereading_deep_open_markup() -> None:
    """Deeply nested elements open at the limit: the scan stops, the page still parses alike."""
    product = b'<div itemscope itemtype="https://schema.org/Product"><h1 itemprop=name>K</h1>'
    inner = b"<div><p>t <b>u</b></p></div>" * 4000
    body = (
        b"<html><body>"
        + product
        + b"<section>" * 12
        + inner
        + b"<b itemprop=sku>1</b>"
        + b"</section>" * 12
        + b"</div></body></html>"
    )
    low = body.lower()
    content_start = body.index(b">", body.index(b"<div itemscope")) + 1
    limit = body.index(b"<b itemprop=sku>") + len(b"<b itemprop=sku>")
    assert element_open_past(low, b"div", content_start, limit) is None
    # A shallow page of the same size is cut as usual.
    shallow = product + inner + b"<b itemprop=sku>1</b></div>"
    shallow_start = shallow.index(b">", shallow.index(b"<div itemscope")) + 1
    shallow_limit = shallow.index(b"<b itemprop=sku>") + len(b"<b itemprop=sku>")
    assert element_open_past(shallow.lower(), b"div", shallow_start, shallow_limit) is not None
    full = parse_product_page_full(body, PAGE_URL)
    assert full.product is not None and full.product.sku == "1"
    assert repr(parse_product_page(body, PAGE_URL)) == repr(full)
