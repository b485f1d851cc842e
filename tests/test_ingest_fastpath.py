"""The fast path of product validation: the same results as the general path, for any input."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.product_fastpath import fast_product
from verifier.product_fields import FieldContext
from verifier.product_schema import (
    FIELDS,
    validate_product,
    validate_product_generally,
)
from verifier.product_urls import check_http_url, host_set, plain_url_pattern

HOSTS = ("shop.example", "WWW.Shop.Example.", "[2001:db8::1]", "bücher.example", "10.0.0.1")
CONTEXT = FieldContext(host_set(HOSTS))


def tag_product(n: int = 7) -> dict[str, Any]:
    """A product as the browser tag sends it (the ingest benchmark's shape)."""
    return {
        "product_id": f"sku-{n}",
        "url": f"https://shop.example/p/sku-{n}",
        "name": f"Forged steel anvil, model {n}",
        "unit_price": "12.50",
        "unit_price_original": "20.99",
        "availability": "InStock",
        "brand": "ACME",
        "currency": "EUR",
        "description": "A sturdy anvil for every workshop, forged from one piece of steel.",
        "image_url": f"https://cdn.shop.example/img/{n}.jpg",
        "categories": ["/Tools/Anvils", "/Workshop/Metal"],
        "tags": ["steel", "forged"],
        "rating_value": 4.5,
        "rating_count": n,
    }


def both_paths(obj: object, **options: Any) -> None:
    """Assert validate_product and the general path agree, key order included."""
    arguments: dict[str, Any] = {"allowed_hosts": HOSTS, "default_currency": "SEK"} | options
    fast = validate_product(obj, **arguments)
    general = validate_product_generally(obj, **arguments)
    assert fast == general
    if fast[0] is not None and general[0] is not None:
        assert list(fast[0].items()) == list(general[0].items())


# --- arbitrary JSON ----------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**16), max_value=10**16)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
_json = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=10,
)
_keys = st.sampled_from([*FIELDS, "custom_field_1", "availability_detail", "sku"]) | st.text(
    max_size=6
)


@settings(max_examples=300)
@given(obj=st.dictionaries(_keys, _json, max_size=12), index=st.none() | st.integers(0, 499))
def test_any_json_object_gets_the_general_paths_result(obj: dict[str, Any], index: int) -> None:
    """For arbitrary JSON objects both paths give the same product or the same errors."""
    both_paths(obj, index=index)


@given(value=_json)
def test_any_json_value_gets_the_general_paths_result(value: object) -> None:
    """Non-objects (and objects) give the same answer on both paths."""
    both_paths(value, index=3)


# --- near-valid products -----------------------------------------------------------------------

_SPECIAL_CHARS = [
    " ",
    "  ",
    "\t",
    "\n",
    "\x00",
    "\x7f",
    "\\",
    "@",
    "?",
    "#",
    ":",
    "/",
    "é",
    "\u2028",
]
_URLS = [
    "https://shop.example",
    "https://shop.example?q=1",
    "https://shop.example#top",
    "HTTPS://shop.example/p",
    "https://SHOP.example/p",
    "https://shop.example:443/p",
    "https://shop.example:99999/p",
    "https://shop.example./p",
    "https://www.shop.example/p",
    "https://user@shop.example/p",
    "//shop.example/p",
    " https://shop.example/p",
    "https://shop.example.evil.example/p",
    "https://evil.example/p",
    "http://[2001:db8::1]/p",
    "http://10.0.0.1/p",
    "http://010.0.0.1/p",
    "https://xn--bcher-kva.example/p",
    "https://bücher.example/p",
    "ftp://shop.example/p",
    "https:///p",
    "https://a..b/p",
    "https://%41.example/p",
]
_NUMBERS = [
    -1,
    0,
    5,
    6,
    10**12,
    10**12 + 1,
    10**15 - 1,
    10**15,
    0.0,
    -0.0,
    4.5,
    4.55,
    4.555,
    5.0,
    5.01,
    0.1 + 0.2,
    1e300,
    float("nan"),
    float("inf"),
    True,
    False,
]
# Length limits of ids, text, URLs and descriptions, and one more.
_LIMITS = [255, 256, 1000, 1001, 2048, 2049, 20000, 20001]
_TEXTS = ["", " ", "12.50", "12.5", "012.50", "1e3", "+1.00", " 12.50", "InStock", "instock", "eur"]


@st.composite
def _near(draw: st.DrawFn, value: object) -> object:
    """A value close to ``value``: one character added or changed, a case or a type changed."""
    if isinstance(value, str) and value:
        position = draw(st.integers(0, len(value)))
        length = draw(st.sampled_from(_LIMITS))
        special = draw(st.sampled_from(_SPECIAL_CHARS))
        return draw(
            st.sampled_from(
                [
                    value[:position] + special + value[position:],
                    value[:position] + special + value[position + 1 :],
                    value.upper(),
                    f" {value}",
                    f"{value} ",
                    (value + "x" * length)[:length],
                ]
            )
            | st.sampled_from(_URLS + _TEXTS)
        )
    if isinstance(value, list):
        items = draw(st.lists(st.sampled_from([*value, "/A", "a", "", " ", "/A/", 3]), max_size=5))
        return draw(st.sampled_from([items, items * 30, "/Only", []]))
    return draw(st.sampled_from(_NUMBERS + _TEXTS + [[], {}, ["x"]]))


@settings(max_examples=500)
@given(data=st.data(), field=st.sampled_from([*FIELDS, "custom_field_2", "unknown"]))
def test_near_valid_products_get_the_general_paths_result(data: Any, field: str) -> None:
    """A tag product with one field perturbed, removed or added: both paths agree."""
    obj = tag_product()
    change = data.draw(st.sampled_from(["perturb", "remove", "null", "empty"]))
    if change == "perturb":
        obj[field] = data.draw(_near(obj.get(field, "12.50")))
    elif change == "remove":
        obj.pop(field, None)
    else:
        obj[field] = None if change == "null" else ""
    both_paths(obj)
    both_paths(obj, require_url_host=False, index=0)


def test_listed_odd_values_in_every_field_get_the_general_paths_result() -> None:
    """Each boundary number, odd text and URL above, in each field: both paths agree."""
    odd: list[object] = [*_NUMBERS, *_TEXTS, *_URLS, [], {}, ["x"], ["/A", "/A"], 5.5]
    odd += [
        text.ljust(length, "x") for text in ("n", "https://shop.example/") for length in _LIMITS
    ]
    for field in [*FIELDS, "custom_field_3"]:
        for value in odd:
            both_paths({**tag_product(), field: value})


@given(
    product_id=st.text(max_size=8),
    name=st.text(max_size=8),
    price=st.text("0123456789. +-e", max_size=8) | st.integers(-5, 10**16),
)
def test_required_fields_get_the_general_paths_result(
    product_id: str, name: str, price: Any
) -> None:
    """Any short id, name or price text is judged alike on both paths."""
    both_paths({**tag_product(), "product_id": product_id, "name": name, "unit_price": price})


def test_unperturbed_tag_product_gets_the_general_paths_result() -> None:
    """The benchmark's product itself: both paths agree, key order included."""
    both_paths(tag_product())
    both_paths(tag_product(), require_url_host=False, index=0)


def test_fast_path_recognises_the_common_shape() -> None:
    """Plain tag products are decided by the fast path (so the properties above test it)."""
    assert fast_product(tag_product(), CONTEXT, "SEK") is not None
    minimal = {"product_id": "1", "url": "https://shop.example/", "name": "A", "unit_price": 12}
    assert fast_product(minimal, CONTEXT, "SEK") == {**minimal, "currency": "SEK"} | {
        "unit_price": "12.00"
    }
    with_extras = {**tag_product(), "thumbnail_url": "https://cdn.example/t.jpg", "sku": [1]}
    assert fast_product(with_extras, CONTEXT, "SEK") is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("product_id", 42),
        ("name", "Crème  brûlée"),
        ("unit_price", 12.5),
        ("url", "https://www.shop.example:8443/p"),
        ("categories", "/Tools"),
        ("published_at", "2024-05-01"),
        ("custom_field_1", "red"),
    ],
)
def test_unusual_fields_are_left_to_the_general_path(field: str, value: object) -> None:
    """The fast path declines what it does not know at a glance; the general path accepts it."""
    obj = {**tag_product(), field: value}
    assert fast_product(obj, CONTEXT, "SEK") is None
    product, errors = validate_product(obj, allowed_hosts=HOSTS, default_currency="SEK")
    assert product is not None and errors == []


def test_printable_text_has_no_whitespace_but_the_space() -> None:
    """What the fast path relies on for text: isprintable() excludes whitespace, NUL, surrogates."""
    odd = [
        chr(code)
        for code in range(sys.maxunicode + 1)
        if chr(code).isprintable() and (chr(code).isspace() or code == 0 or 0xD800 <= code < 0xE000)
    ]
    assert odd == [" "]


def test_unicode_text_takes_the_fast_path() -> None:
    """Names, brands and descriptions beyond ASCII are decided by the fast path too."""
    obj = {**tag_product(), "name": "Crème brûlée", "brand": "Größe", "description": " Ça va\n"}
    product = fast_product(obj, CONTEXT, "SEK")
    assert product is not None and product["description"] == "Ça va"
    both_paths(obj)


def test_canonical_keys_come_in_jsonb_order() -> None:
    """Whatever the object's key order, the canonical dict lists keys shortest first."""
    obj = dict(reversed(tag_product().items()))
    for product in (
        validate_product(obj, allowed_hosts=HOSTS, default_currency="SEK")[0],
        validate_product_generally(obj, allowed_hosts=HOSTS, default_currency="SEK")[0],
    ):
        assert product is not None
        assert list(product) == sorted(product, key=lambda key: (len(key), key))


# --- plain URLs --------------------------------------------------------------------------------

_url_texts = st.builds(
    lambda scheme, host, rest: f"{scheme}{host}{rest}",
    st.sampled_from(["https://", "http://", "HTTP://", "//", "https:/"]),
    st.sampled_from(["shop.example", "www.shop.example", "SHOP.example", "evil.example", ""])
    | st.text(max_size=12),
    st.text(max_size=12),
)


@settings(max_examples=300)
@given(url=_url_texts | st.sampled_from(_URLS), any_host=st.booleans())
def test_plain_url_pattern_matches_only_urls_kept_as_they_are(url: str, any_host: bool) -> None:
    """A URL the pattern matches is returned unchanged by check_http_url."""
    hosts = None if any_host else host_set(HOSTS)
    if plain_url_pattern(hosts).fullmatch(url):
        assert check_http_url(url, hosts) == url


def test_plain_url_pattern_knows_the_merchants_plain_host_names() -> None:
    """Plain host names match; IP literals and IDNs are left to the general check."""
    pattern = plain_url_pattern(host_set(HOSTS))
    assert pattern.fullmatch("https://www.shop.example/p?q=1")
    assert pattern.fullmatch("https://xn--bcher-kva.example")
    assert not pattern.fullmatch("http://[2001:db8::1]/p")
    assert not pattern.fullmatch("https://shop.example.evil.example/p")
