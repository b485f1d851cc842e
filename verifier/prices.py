"""Price and number normalisation to Decimal, without float arithmetic.

Two parsers on purpose:
- `parse_price` reads prices as shops print them ("1.234,56", "€ 12,50", "4 399,00 RUB") and
  as structured data states them ("1250", "119.99"), guessing the decimal mark.
- `parse_number` / `parse_integer` read the tag's numbers the way the browser tag client does
  (JavaScript parseFloat / parseInt on trimmed text), so that values parsed here from a page
  and values the client sent to the ingest listener agree.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

# What String.prototype.trim() removes; str.strip() differs (it keeps U+FEFF, strips U+001C..1F).
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)

_MAX_TEXT_CHARS = 200
_MAX_DIGITS = 40
# Above this a JavaScript number is Infinity, which the tag client discards.
_MAX_DOUBLE = Decimal("1.7976931348623157e308")

_MACHINE_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d{1,4})?")
# Digits with '.'/',' marks; a space-like or apostrophe separator only before a 3-digit group,
# so "5.29 9.56" stops after "5.29" while "4 399,00" and "1'234.50" stay whole.
_LOCALE_NUMBER = re.compile(
    r"(?:\d|[.,](?=\d))(?:[\d.,]|[ \u00a0\u202f\u2009'\u2019](?=\d{3}(?!\d)))*"
)
_GROUP_SEPARATORS = str.maketrans("", "", " \u00a0\u202f\u2009'\u2019")
_MINUS_SIGNS = "-\u2212"

_JS_FLOAT_PREFIX = re.compile(r"[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")
_JS_INT_PREFIX = re.compile(r"[+-]?\d+")
_MAX_JS_INT_DIGITS = 309


def _from_number(value: int | float | Decimal) -> Decimal | None:
    """Exact Decimal of a number; floats go through repr so 98.99 stays 98.99."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    try:
        return Decimal(value)
    except (ValueError, OverflowError):
        return None


def _split_marks(number: str) -> tuple[str, str] | None:
    """Split a digits-and-marks string into (integer digits, fraction digits), guessing marks."""
    dots, commas = number.count("."), number.count(",")
    if dots and commas:
        decimal_mark = "." if number.rfind(".") > number.rfind(",") else ","
        group_mark = "," if decimal_mark == "." else "."
        if number.count(decimal_mark) > 1:
            return None
        integer, fraction = number.split(decimal_mark)
        if group_mark in fraction:
            return None
        return integer.replace(group_mark, ""), fraction
    if not dots and not commas:
        return number, ""
    mark = "." if dots else ","
    if number.count(mark) > 1:
        return number.replace(mark, ""), ""
    integer, fraction = number.split(mark)
    # "1,234" and "€ 1.234" are thousands; "0,125", "12,5" and "1234,567" are decimals.
    if len(fraction) == 3 and 0 < len(integer) <= 3 and integer != "0":
        return integer + fraction, ""
    return integer, fraction


def parse_price(text: str | int | float | Decimal | None) -> Decimal | None:
    """Parse a page price ("1.234,56", "1,234.56", "€ 12,50", "4 399,00 RUB") to a Decimal."""
    if text is None:
        return None
    if not isinstance(text, str):
        return _from_number(text)
    stripped = text.strip()[:_MAX_TEXT_CHARS]
    if _MACHINE_NUMBER.fullmatch(stripped):
        # Structured data states prices with a '.' decimal mark: "1.500" is one and a half.
        try:
            value = Decimal(stripped)
        except InvalidOperation:
            return None
        return value if value.is_finite() else None
    match = _LOCALE_NUMBER.search(stripped)
    if match is None:
        return None
    number = match.group().translate(_GROUP_SEPARATORS).rstrip(".,")
    parts = _split_marks(number)
    if parts is None:
        return None
    integer, fraction = parts
    if not (integer + fraction).isdigit() or len(integer) + len(fraction) > _MAX_DIGITS:
        return None
    negative = match.start() > 0 and stripped[match.start() - 1] in _MINUS_SIGNS
    sign = (
        "-" if negative and (match.start() < 2 or not stripped[match.start() - 2].isdigit()) else ""
    )
    return Decimal(f"{sign}{integer or '0'}.{fraction}" if fraction else f"{sign}{integer}")


def parse_number(text: str | int | float | Decimal | None) -> Decimal | None:
    """Parse a tag number like JavaScript parseFloat on trimmed text, but exactly, as Decimal."""
    if text is None:
        return None
    if not isinstance(text, str):
        value = _from_number(text)
        return value if value is not None and abs(value) <= _MAX_DOUBLE else None
    match = _JS_FLOAT_PREFIX.match(text.strip(JS_WHITESPACE)[:_MAX_TEXT_CHARS])
    if match is None:
        return None
    number = match.group()
    if "Infinity" in number:
        return None
    try:
        value = Decimal(number)
        # Without an exponent, fewer than 300 digits stay far below _MAX_DOUBLE.
        if (len(number) > 300 or "e" in number or "E" in number) and abs(value) > _MAX_DOUBLE:
            return None
    except (InvalidOperation, ValueError, OverflowError):
        return None
    return value


def parse_integer(text: str | int | float | Decimal | None) -> int | None:
    """Parse a tag integer like JavaScript parseInt(text, 10) on trimmed text."""
    if text is None or isinstance(text, bool):
        return None
    if isinstance(text, int):
        return text
    if not isinstance(text, str):
        number = _from_number(text)
        return int(number) if number is not None else None
    match = _JS_INT_PREFIX.match(text.strip(JS_WHITESPACE)[:_MAX_TEXT_CHARS])
    if match is None or len(match.group().lstrip("+-")) > _MAX_JS_INT_DIGITS:
        return None
    return int(match.group())
