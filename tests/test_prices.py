"""Price and number normalisation: page prices, and the tag client's parseFloat/parseInt."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifier.prices import parse_integer, parse_number, parse_price

PRICE_CASES: list[tuple[object, str | None]] = [
    ("1.234,56", "1234.56"),
    ("1,234.56", "1234.56"),
    ("12,5", "12.5"),
    ("12,50", "12.50"),
    ("€ 12,50", "12.50"),
    ("12,50 €", "12.50"),
    ("USD 1 234.00", "1234.00"),
    ("4 399,00 \u0440\u0443\u0431", "4399.00"),
    ("1\u00a0234,50\u00a0€", "1234.50"),
    ("1\u202f234,50 €", "1234.50"),
    ("CHF 1'234.50", "1234.50"),
    ("1,234,567.89", "1234567.89"),
    ("1.234.567,89", "1234567.89"),
    ("1.234.567", "1234567"),
    ("$1,250", "1250"),
    ("€ 1.500", "1500"),
    ("0,125", "0.125"),
    ("1234,567", "1234.567"),
    ("12,-", "12"),
    (",99", "0.99"),
    ("$1250 to $1495", "1250"),
    ("5.29 9.56", "5.29"),
    ("48,00", "48.00"),
    ("119.99 ", "119.99"),
    ("1000.00", "1000.00"),
    ("1250", "1250"),
    ("1.500", "1.500"),
    (".99", "0.99"),
    ("-5.00", "-5.00"),
    ("Price: -12,50 €", "-12.50"),
    ("10-20", "10"),
    ("1e3", "1E+3"),
    ("", None),
    ("   ", None),
    ("Free", None),
    ("{}", None),
    ("NaN", None),
    ("Infinity", None),
    ("1.234,5.6", None),
    ("1,2,3.4.5", None),
    (None, None),
    (98.99, "98.99"),
    (239.99, "239.99"),
    (0.1, "0.1"),
    (1e16, "1E+16"),
    (1250, "1250"),
    (Decimal("12.50"), "12.50"),
    (float("nan"), None),
    (float("inf"), None),
    (Decimal("NaN"), None),
    (True, None),
]


@pytest.mark.parametrize(("text", "expected"), PRICE_CASES)
def test_price_text_parses_to_exact_decimal(text: object, expected: str | None) -> None:
    """Page prices in any common convention parse to the exact Decimal they state."""
    result = parse_price(text)  # type: ignore[arg-type]
    if expected is None:
        assert result is None
    else:
        assert result is not None
        assert str(result) == str(Decimal(expected))


def _format(value: Decimal, decimal_mark: str, group_mark: str) -> str:
    sign = "-" if value < 0 else ""
    integer, fraction = f"{abs(value):.2f}".split(".")
    groups: list[str] = []
    while len(integer) > 3:
        groups.insert(0, integer[-3:])
        integer = integer[:-3]
    groups.insert(0, integer)
    return f"{sign}{group_mark.join(groups)}{decimal_mark}{fraction}"


@given(
    st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False, allow_infinity=False),
    st.sampled_from([(".", ","), (",", "."), (",", " "), (",", "\u00a0"), (".", "'"), (".", "")]),
    st.sampled_from(["", "€ ", "$", "USD "]),
    st.sampled_from(["", " €", " \u0440\u0443\u0431", " EUR"]),
)
def test_price_formatted_either_way_parses_back(
    value: Decimal, marks: tuple[str, str], prefix: str, suffix: str
) -> None:
    """A two-decimal price written with either decimal mark and any grouping parses back."""
    decimal_mark, group_mark = marks
    text = prefix + _format(value, decimal_mark, group_mark) + suffix
    assert parse_price(text) == value
    assert parse_price(text) == Decimal(f"{value:.2f}")


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_price_of_float_is_its_shortest_repr(value: float) -> None:
    """A float (a JSON number) converts through repr, never through binary arithmetic."""
    assert parse_price(value) == Decimal(repr(value))


@given(st.text(max_size=400))
def test_price_of_any_text_is_none_or_finite(text: str) -> None:
    """Any text yields None or a finite Decimal, never an error."""
    result = parse_price(text)
    assert result is None or result.is_finite()


NUMBER_CASES: list[tuple[object, str | None]] = [
    ("12.50", "12.50"),
    ("  19.9900\n", "19.9900"),
    ("\u00a012\ufeff", "12"),
    ("12,50", "12"),
    ("1.234,56", "1.234"),
    ("39.95 €", "39.95"),
    (".5", "0.5"),
    ("5.", "5"),
    ("-3e2", "-3E+2"),
    ("1e", "1"),
    ("+7", "7"),
    ("0x1A", "0"),
    ("€12", None),
    ("abc", None),
    ("", None),
    ("Infinity", None),
    ("-Infinity", None),
    ("1e400", None),
    (None, None),
    (12, "12"),
    (12.5, "12.5"),
    (Decimal("0.10"), "0.10"),
    (True, None),
]


@pytest.mark.parametrize(("text", "expected"), NUMBER_CASES)
def test_tag_number_parses_like_parsefloat(text: object, expected: str | None) -> None:
    """Tag numbers read the leading JavaScript number literal of the trimmed text, exactly."""
    result = parse_number(text)  # type: ignore[arg-type]
    if expected is None:
        assert result is None
    else:
        assert result == Decimal(expected)


INTEGER_CASES: list[tuple[object, int | None]] = [
    ("89", 89),
    ("89\n        ", 89),
    (" 4.7", 4),
    ("-3", -3),
    ("1e3", 1),
    ("x1", None),
    ("", None),
    (None, None),
    (7, 7),
    (7.9, 7),
    (Decimal("11"), 11),
    (True, None),
]


@pytest.mark.parametrize(("text", "expected"), INTEGER_CASES)
def test_tag_integer_parses_like_parseint(text: object, expected: int | None) -> None:
    """Tag integers read the leading decimal digits of the trimmed text."""
    assert parse_integer(text) == expected  # type: ignore[arg-type]


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4, max_value=10**15))
def test_tag_number_of_decimal_text_parses_back(value: Decimal) -> None:
    """The text of a finite decimal parses back to the same value."""
    assert parse_number(f"{value:f}") == value


@given(st.text(max_size=400))
def test_tag_number_of_any_text_is_none_or_finite(text: str) -> None:
    """Any text yields None or a finite Decimal, and parse_integer None or an int."""
    result = parse_number(text)
    assert result is None or result.is_finite()
    integer = parse_integer(text)
    assert integer is None or isinstance(integer, int)
