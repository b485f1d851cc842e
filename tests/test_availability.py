"""Availability normalisation: every spelling a page or the tag uses, mapped to the contract."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifier.availability import normalize_availability

IN_STOCK = ("in_stock", "in_stock")
OUT_OF_STOCK = ("out_of_stock", "out_of_stock")

CASES = [
    ("InStock", IN_STOCK),
    ("instock", IN_STOCK),
    ("in stock", IN_STOCK),
    ("IN_STOCK", IN_STOCK),
    ("  http://schema.org/InStock", IN_STOCK),
    ("https://schema.org/InStock", IN_STOCK),
    ("https://schema.org/InStock/", IN_STOCK),
    ("schema:InStock", IN_STOCK),
    ("OutOfStock", OUT_OF_STOCK),
    ("outofstock", OUT_OF_STOCK),
    ("out of stock", OUT_OF_STOCK),
    ("http://schema.org/OutOfStock", OUT_OF_STOCK),
    ("SoldOut", ("out_of_stock", "sold_out")),
    ("PreOrder", ("in_stock", "pre_order")),
    ("preorder", ("in_stock", "pre_order")),
    ("https://schema.org/PreSale", ("in_stock", "pre_sale")),
    ("BackOrder", ("in_stock", "back_order")),
    ("LimitedAvailability", ("in_stock", "limited_availability")),
    ("InStoreOnly", ("in_stock", "in_store_only")),
    ("OnlineOnly", ("in_stock", "online_only")),
    ("MadeToOrder", ("in_stock", "made_to_order")),
    ("available for order", ("in_stock", "available_for_order")),
    ("Discontinued", ("discontinued", "discontinued")),
    ("http://schema.org/Discontinued", ("discontinued", "discontinued")),
    ("Reserved", ("out_of_stock", "reserved")),
    ("", (None, None)),
    ("   ", (None, None)),
    ("maybe", (None, None)),
    ("https://schema.org/NewCondition", (None, None)),
    ("<&=availability&>", (None, None)),
    (None, (None, None)),
]


@pytest.mark.parametrize(("value", "expected"), CASES)
def test_availability_spelling_maps_to_contract_value(
    value: str | None, expected: tuple[str | None, str | None]
) -> None:
    """Each known spelling maps to (availability, detail); unknown values to (None, None)."""
    assert normalize_availability(value) == expected


@pytest.mark.parametrize("value", ["InStock", "PreOrder", "SoldOut", "Discontinued", "BackOrder"])
def test_availability_ignores_case(value: str) -> None:
    """Upper, lower and swapped case of a value map like the canonical spelling."""
    expected = normalize_availability(value)
    assert expected[0] is not None
    for variant in (value.upper(), value.lower(), value.swapcase()):
        assert normalize_availability(variant) == expected


def test_availability_rejects_non_strings() -> None:
    """A number or a list (malformed JSON-LD) is unknown, not an error."""
    assert normalize_availability(5) == (None, None)  # type: ignore[arg-type]
    assert normalize_availability(["InStock"]) == (None, None)  # type: ignore[arg-type]


@given(st.text(max_size=300))
def test_availability_of_any_text_is_a_contract_value(value: str) -> None:
    """Any text yields None or one of the three contract values, never an error."""
    availability, detail = normalize_availability(value)
    assert availability in (None, "in_stock", "out_of_stock", "discontinued")
    assert (availability is None) == (detail is None)
