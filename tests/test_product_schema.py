"""Product objects: validation rules, canonical form, material differences, rendering."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifier.product_schema import (
    FIELDS,
    FieldError,
    differs_materially,
    format_decimal,
    normalize_host,
    normalize_price,
    parse_product_id,
    render_product,
    validate_product,
)

HOSTS = ["shop.example", "WWW.Shop.Example.", "[2001:db8::1]", "bücher.example"]
BASE = {
    "product_id": "p-1",
    "url": "https://shop.example/p/1",
    "name": "Anvil",
    "unit_price": "10.00",
}


def check(changes: dict[str, Any], **kwargs: Any) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """Validate BASE with some fields changed (None removes a field)."""
    obj = {**BASE, **changes}
    obj = {k: v for k, v in obj.items() if v is not None or k not in BASE}
    options: dict[str, Any] = {"allowed_hosts": HOSTS, "default_currency": "EUR"}
    return validate_product(obj, **(options | kwargs))


# (field, value sent, canonical value stored; absent = omitted)
ACCEPTED: list[tuple[str, Any, Any]] = [
    ("product_id", 123, "123"),
    ("product_id", "  sku 9  ", "sku 9"),
    ("product_id", "é" * 255, "é" * 255),
    ("url", "http://shop.example:8080/a?b=1", "http://shop.example:8080/a?b=1"),
    ("url", "HTTPS://WWW.SHOP.EXAMPLE/a", "HTTPS://WWW.SHOP.EXAMPLE/a"),
    ("url", "http://[2001:db8:0::1]:81/x", "http://[2001:db8:0::1]:81/x"),
    ("url", "https://xn--bcher-kva.example/b", "https://xn--bcher-kva.example/b"),
    ("url", " https://shop.example/p ", "https://shop.example/p"),
    ("name", "  Big \n Anvil ", "Big Anvil"),
    ("name", "n" * 1000, "n" * 1000),
    ("unit_price", 1234.5, "1234.50"),
    ("unit_price", " 1234.5 ", "1234.50"),
    ("unit_price", "12.3450", "12.345"),
    ("unit_price", 0, "0.00"),
    ("unit_price", "-0", "0.00"),
    ("unit_price", "+7", "7.00"),
    ("unit_price", ".5", "0.50"),
    ("unit_price", 19.990000000000002, "19.99"),
    ("unit_price", "0.0000004", "0.00"),
    ("unit_price", 999_999_999_999_999, "999999999999999.00"),
    ("unit_price_original", "20", "20.00"),
    ("unit_price_without_vat", 8.26, "8.26"),
    ("discounted_amount", "1.5", "1.50"),
    ("discounted_percentage", "15", "15.00"),
    ("availability", "InStock", "in_stock"),
    ("availability", "outofstock", "out_of_stock"),
    ("availability", "https://schema.org/Discontinued", "discontinued"),
    ("availability", "http://schema.org/PreOrder", "in_stock"),
    ("availability", "  ", None),
    ("description", "<p>Hi</p>", "<p>Hi</p>"),
    ("description", "", None),
    ("image_url", "//cdn.example/i.jpg", "https://cdn.example/i.jpg"),
    ("thumbnail_url", "https://cdn.example/t.jpg", "https://cdn.example/t.jpg"),
    ("brand", " ACME ", "ACME"),
    (
        "categories",
        ["Home/Kitchen ", "/Home/Kitchen/", " / Tools // Anvils "],
        ["/Home/Kitchen", "/Tools/Anvils"],
    ),
    ("categories", "/Only", ["/Only"]),
    ("categories", ["/", " "], None),
    ("tags", ["a", "a", " b "], ["a", "b"]),
    ("tags", [], None),
    ("tags", ["a  b", "c\td ", "a b"], ["a b", "c d"]),
    ("related_product_ids", [1, "2", " 2 "], ["1", "2"]),
    ("currency", "usd", "USD"),
    ("rating_value", "4.567", 4.57),
    ("rating_value", 5, 5),
    ("rating_value", 0, 0),
    ("rating_count", "12", 12),
    ("review_count", 3.0, 3),
    ("priority", -3, -3),
    ("published_at", "2024-05-01", "2024-05-01"),
    ("published_at", "2024-05-01T10:00:00+02:00", "2024-05-01T08:00:00Z"),
    ("published_at", "2024-05-01T10:00:00", "2024-05-01T10:00:00Z"),
    ("custom_fields", {"color": "red", "size": 42, "gone": None}, {"color": "red", "size": "42"}),
    ("unknown_field", {"anything": [1]}, None),
]

# (field, value sent, words of the error message)
REJECTED: list[tuple[str, Any, str]] = [
    ("product_id", None, "is required"),
    ("product_id", "", "is required"),
    ("product_id", "   ", "must not be empty"),
    ("product_id", "x" * 256, "at most 255"),
    ("product_id", 1.5, "must be a string"),
    ("product_id", True, "must be a string"),
    ("product_id", "a\x00b", "NUL"),
    ("url", None, "is required"),
    ("url", "ftp://shop.example/a", "absolute http(s) URL"),
    ("url", "/p/1", "absolute http(s) URL"),
    ("url", "https://evil.example/p", "allowed hosts"),
    ("url", "https://shop.example.evil.example/p", "allowed hosts"),
    ("url", "https://shop.example:99999/p", "absolute http(s) URL"),
    ("url", "https://user:pw@shop.example/p", "credentials"),
    ("url", "https://shop.example/a b", "spaces"),
    ("url", "https://shop.example/" + "a" * 2048, "at most 2048"),
    ("url", ["https://shop.example/"], "must be a string"),
    ("url", "https://shop.example\\@evil.example/", "backslashes"),
    ("url", "https://shop.example/\x00", "NUL"),
    ("url", "https://shop.example/\x01", "control characters"),
    ("url", "https://shop.example/\ud800", "surrogate"),
    ("name", None, "is required"),
    ("name", "n" * 1001, "at most 1000"),
    ("name", 12, "must be a string"),
    ("unit_price", None, "is required"),
    ("unit_price", "-0.01", ">= 0"),
    ("unit_price", -1, ">= 0"),
    ("unit_price", "NaN", "decimal number"),
    ("unit_price", "Infinity", "decimal number"),
    ("unit_price", "1e5", "decimal number"),
    ("unit_price", "12,50", "decimal number"),
    ("unit_price", "12 EUR", "decimal number"),
    ("unit_price", "١٢", "decimal number"),
    ("unit_price", 1e300, "integer digits"),
    ("unit_price", "1" * 16, "integer digits"),
    ("unit_price", "0." + "0" * 45, "decimal number"),
    ("unit_price", True, "boolean"),
    ("unit_price", {"amount": 1}, "number"),
    ("unit_price_original", "-5", ">= 0"),
    ("discounted_amount", "x", "decimal number"),
    ("discounted_percentage", 101, "between 0 and 100"),
    ("availability", "maybe", "schema.org availability"),
    ("availability", 1, "must be a string"),
    ("description", "d" * 20001, "at most 20000"),
    ("image_url", "javascript:alert(1)", "absolute http(s) URL"),
    ("brand", {"name": "ACME"}, "must be a string"),
    ("categories", ["/A", 3], "item 1 must be a string"),
    ("categories", [f"/c{i}" for i in range(101)], "at most 100"),
    ("categories", {"a": 1}, "must be an array"),
    ("categories", ["/A/\x00"], "NUL"),
    ("tags", ["ok\x00"], "NUL"),
    ("tags", ["t" * 256], "at most 255"),
    ("related_product_ids", ["ok", ""], "item 1 must not be empty"),
    ("currency", "EURO", "ISO 4217"),
    ("currency", "€", "ISO 4217"),
    ("rating_value", "5.01", "between 0 and 5"),
    ("rating_value", -1, "between 0 and 5"),
    ("rating_count", -1, "between 0"),
    ("rating_count", 1.5, "integer"),
    ("review_count", "many", "integer"),
    ("priority", False, "boolean"),
    ("published_at", "yesterday", "ISO 8601"),
    ("published_at", 1700000000, "must be a string"),
    ("custom_fields", {"a": "1", "b": "2", "c": "3", "d": "4"}, "at most 3"),
    ("custom_fields", ["x"], "must be an object"),
    ("custom_fields", {"a": ["x"]}, "must be a string"),
]


@pytest.mark.parametrize(("field", "value", "stored"), ACCEPTED)
def test_accepted_values_are_stored_in_canonical_form(field: str, value: Any, stored: Any) -> None:
    """Each accepted spelling of a field becomes its canonical value (or is omitted)."""
    product, errors = check({field: value})
    assert errors == []
    assert product is not None
    if stored is None:
        assert field not in product
    else:
        assert product[field] == stored


@pytest.mark.parametrize(("field", "value", "words"), REJECTED)
def test_rejected_values_give_a_field_error(field: str, value: Any, words: str) -> None:
    """Each unacceptable value gives one FieldError naming the field, never an exception."""
    product, errors = check({field: value}, index=7)
    assert product is None
    assert len(errors) == 1, errors
    assert (errors[0].index, errors[0].field) == (7, field)
    assert words in errors[0].message
    assert errors[0].as_dict() == {"index": 7, "field": field, "message": errors[0].message}


def test_every_error_of_a_product_is_reported() -> None:
    """Validation does not stop at the first bad field."""
    _, errors = validate_product(
        {"product_id": "", "unit_price": "x", "rating_value": 9},
        allowed_hosts=HOSTS,
        default_currency="EUR",
    )
    assert [e.field for e in errors] == ["product_id", "url", "name", "unit_price", "rating_value"]


@pytest.mark.parametrize("value", [None, 3, "x", [BASE], True])
def test_a_product_must_be_an_object(value: Any) -> None:
    """Anything but a JSON object is one error without a field."""
    assert validate_product(value, allowed_hosts=HOSTS, default_currency="EUR", index=2) == (
        None,
        [FieldError(2, None, "a product must be a JSON object")],
    )


def test_availability_keeps_its_detail() -> None:
    """A schema.org availability keeps its precise value in availability_detail."""
    product, _ = check({"availability": "https://schema.org/BackOrder"})
    assert product is not None
    assert (product["availability"], product["availability_detail"]) == ("in_stock", "back_order")


def test_currency_defaults_to_the_merchants() -> None:
    """Without a currency the merchant's default is stored."""
    product, _ = check({}, default_currency="SEK")
    assert product is not None and product["currency"] == "SEK"


def test_flat_custom_fields_of_the_browser_tag_are_collected() -> None:
    """custom_field_1..3 sent as properties become custom_fields."""
    product, _ = check({"custom_field_1": "a", "custom_field_3": 7})
    assert product is not None
    assert product["custom_fields"] == {"custom_field_1": "a", "custom_field_3": "7"}


def test_url_host_check_can_be_skipped() -> None:
    """require_url_host=False accepts any http(s) host, still no other scheme."""
    product, _ = check({"url": "https://elsewhere.example/"}, require_url_host=False)
    assert product is not None
    _, errors = check({"url": "file:///etc/passwd"}, require_url_host=False)
    assert [e.field for e in errors] == ["url"]


def test_canonical_form_has_only_known_fields_and_is_json() -> None:
    """Unknown input fields are dropped; the result serialises to JSON as is."""
    product, _ = check({"sku": "x", "price": 3, "availability": "InStock"})
    assert product is not None
    assert set(product) <= {*FIELDS, "availability_detail"}
    assert orjson.loads(orjson.dumps(product)) == product


def test_parse_product_id_trims_and_refuses_bad_ids() -> None:
    """Ids are trimmed strings of 1..255 characters; integers become strings."""
    assert parse_product_id(" 42 ") == "42"
    assert parse_product_id(42) == "42"
    for bad in ("", "x" * 256, None, 4.2, [1]):
        with pytest.raises(ValueError):
            parse_product_id(bad)


@pytest.mark.parametrize(
    ("host", "normal"),
    [
        ("Shop.Example.", "shop.example"),
        ("[2001:DB8:0::1]", "2001:db8::1"),
        ("Bücher.example", "xn--bcher-kva.example"),
    ],
)
def test_hosts_are_compared_in_normal_form(host: str, normal: str) -> None:
    """Case, trailing dots, IPv6 spellings and IDNs do not matter."""
    assert normalize_host(host) == normal


# --- prices ------------------------------------------------------------------------------------


@given(st.decimals(min_value=0, max_value=Decimal("999999999999999"), places=8, allow_nan=False))
def test_price_normalisation_is_exact_and_idempotent(number: Decimal) -> None:
    """A price keeps its value to six decimals, has 2..6 decimals and is a fixed point."""
    text = normalize_price(format(number, "f"))
    assert text is not None
    whole, fraction = text.split(".")
    assert 2 <= len(fraction) <= 6 and whole.isdigit()
    assert abs(Decimal(text) - number) <= Decimal("0.0000005")
    assert normalize_price(text) == text
    if len(whole.lstrip("0") + fraction) <= 15:  # what a double holds exactly
        assert normalize_price(float(text)) == text


def test_format_decimal_rounds_half_even_to_six_places() -> None:
    """Rounding happens only beyond six decimals, half to even."""
    assert format_decimal(Decimal("0.0000005")) == "0.00"
    assert format_decimal(Decimal("0.0000015")) == "0.000002"
    assert format_decimal(Decimal("10")) == "10.00"
    assert normalize_price("-1") is None and normalize_price("abc") is None


# --- material differences ----------------------------------------------------------------------

VERIFIED = {"name": "Anvil", "unit_price": "10.00", "availability": "in_stock"}


@pytest.mark.parametrize(
    ("observed", "differs"),
    [
        ({"name": "Anvil", "unit_price": "10.00", "availability": "in_stock"}, False),
        ({"name": "Anvil", "unit_price": "10.0", "description": "new"}, False),
        ({"name": "Anvil", "unit_price": "10.00"}, False),
        ({"name": "Anvil 2", "unit_price": "10.00"}, True),
        ({"name": "Anvil", "unit_price": "10.01"}, True),
        ({"name": "Anvil", "unit_price": "10.00", "availability": "out_of_stock"}, True),
    ],
)
def test_material_difference_is_name_price_or_availability(
    observed: dict[str, Any], differs: bool
) -> None:
    """Only a stated name, price or availability that disagrees counts."""
    assert differs_materially(VERIFIED, observed) is differs


# --- rendering ---------------------------------------------------------------------------------

AT = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def row(**changes: Any) -> dict[str, Any]:
    """A products row with every column."""
    base: dict[str, Any] = {
        "merchant_id": 1,
        "product_id": "p-1",
        "status": "verified",
        "source": "page",
        "url": "https://shop.example/p/1",
        "availability": "in_stock",
        "availability_detail": "limited_availability",
        "data": {**BASE, "unit_price": "10.00", "currency": "EUR", "availability": "in_stock"},
        "pending": None,
        "pending_at": None,
        "first_seen_at": AT,
        "updated_at": AT,
        "verified_at": AT,
        "last_checked_at": AT,
        "last_outcome": "verified",
        "last_http_status": 200,
        "last_error": None,
    }
    return base | changes


def test_render_verified_product() -> None:
    """A verified in-stock product is usable and shows its last verification."""
    out = render_product(row())
    assert out["usable"] is True
    assert (out["status"], out["availability"]) == ("verified", "in_stock")
    assert out["availability_detail"] == "limited_availability"
    assert (out["unit_price"], out["currency"]) == ("10.00", "EUR")
    assert out["first_seen_at"] == "2024-05-01T08:00:00.000000Z"
    assert out["last_verification"] == {
        "at": "2024-05-01T08:00:00.000000Z",
        "outcome": "verified",
        "http_status": 200,
        "error": None,
    }
    assert out["pending_observation"] is None
    assert orjson.loads(orjson.dumps(out)) == out


def test_render_unverified_product_is_never_usable() -> None:
    """Tag-only data shows as unverified, availability null, the tag data pending."""
    tag = {**BASE, "availability": "in_stock", "availability_detail": "in_stock"}
    out = render_product(
        row(
            status="unverified",
            source="tag",
            availability=None,
            availability_detail=None,
            data=tag,
            pending=orjson.dumps(tag).decode(),
            pending_at=AT,
            verified_at=None,
            last_checked_at=None,
        )
    )
    assert (out["usable"], out["availability"], out["verified_at"]) == (False, None, None)
    assert out["last_verification"] is None
    assert out["pending_observation"] == tag
    assert out["name"] == "Anvil"


def test_render_out_of_stock_verified_product_is_not_usable() -> None:
    """usable needs verified and in_stock."""
    assert render_product(row(availability="out_of_stock"))["usable"] is False
