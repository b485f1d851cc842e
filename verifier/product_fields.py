"""Field by field checks of product objects, into their canonical JSON values.

Each normaliser takes the raw JSON value of one field and returns its canonical value, or raises
:class:`InvalidField` with a message for the sender. Numbers are parsed as exact decimals (never
float arithmetic): prices become decimal strings with 2..6 decimals. Strings are trimmed and
refused when PostgreSQL could not store them (NUL, unpaired surrogates).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TypeGuard

from verifier.product_urls import check_http_url

MAX_PRODUCT_ID_CHARS = 255
MAX_NAME_CHARS = 1000
MAX_DESCRIPTION_CHARS = 20_000
MAX_TEXT_CHARS = 1000
MAX_TAG_CHARS = 255
MAX_LIST_ITEMS = 100
MAX_CUSTOM_FIELDS = 3
MAX_CUSTOM_KEY_CHARS = 100
MAX_NUMBER_CHARS = 40
MAX_INTEGER_DIGITS = 15
MAX_COUNT = 10**12
DECIMAL_PLACES = 6

_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
_INTEGER_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)
# PostgreSQL cannot store NUL in text or jsonb, and lone surrogates cannot be encoded as UTF-8.
UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
# Values already in canonical form (trimmed, storable) skip the general path.
CANONICAL_CATEGORY_RE = re.compile(
    "(?:/[^/\\s\x00\ud800-\udfff](?:[^/\x00\ud800-\udfff]*[^/\\s\x00\ud800-\udfff])?)+"
)
CANONICAL_TAG_RE = re.compile("[^\\s\x00\ud800-\udfff]+(?: [^\\s\x00\ud800-\udfff]+)*")
# Already canonical prices take a fast path (most tags send two decimals).
CANONICAL_PRICE_RE = re.compile(r"(?:0|[1-9][0-9]{0,14})\.[0-9]{2}", re.ASCII)
_CURRENCY_RE = re.compile(r"[A-Za-z]{3}", re.ASCII)
_QUANTUM = Decimal(1).scaleb(-DECIMAL_PLACES)
_CENT = Decimal("0.01")
_MAX_RATING = Decimal(5)
_MAX_PERCENT = Decimal(100)
MAX_INT_PRICE = 10**MAX_INTEGER_DIGITS


class InvalidField(Exception):
    """Raised by the normalisers when a field value is unacceptable; the message says why."""


@dataclass(frozen=True, slots=True)
class FieldContext:
    """What field checks need to know besides the value: the allowed hosts (None: any)."""

    hosts: frozenset[str] | None


# Checks of fields whose URLs may point anywhere (a page's own statements, say).
ANY_HOST = FieldContext(None)


# --- numbers ---------------------------------------------------------------------------------


def parse_decimal(value: object) -> Decimal:
    """A JSON number or numeric string as an exact Decimal; raises ValueError when it is not one."""
    try:
        return to_decimal(value)
    except InvalidField as exc:
        raise ValueError(str(exc)) from None


def to_decimal(value: object) -> Decimal:
    """The value as an exact Decimal; raises InvalidField."""
    if isinstance(value, bool):
        raise InvalidField("must be a number, not a boolean")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidField("must be a finite number")
        # repr() is the shortest text that round-trips: the number as the sender wrote it.
        number = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_NUMBER_CHARS or not _DECIMAL_RE.fullmatch(text):
            raise InvalidField("must be a decimal number such as 12.50")
        number = Decimal(text)
    else:
        raise InvalidField("must be a number or a numeric string")
    if not number.is_zero() and number.adjusted() >= MAX_INTEGER_DIGITS:
        raise InvalidField(f"must have at most {MAX_INTEGER_DIGITS} integer digits")
    return number


def format_decimal(number: Decimal) -> str:
    """The canonical text of a decimal: 2..6 decimals, half-even rounding, no exponent."""
    rounded = number.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
    if rounded.is_zero():
        rounded = rounded.copy_abs()
    whole, _, fraction = format(rounded, "f").partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"


def normalize_price(value: object) -> str | None:
    """A price (number or numeric string) in canonical text, or None when it is not a price >= 0."""
    try:
        number = to_decimal(value)
    except InvalidField:
        return None
    return format_decimal(number) if number >= 0 else None


def _price(value: object, ctx: FieldContext) -> str:
    if isinstance(value, str):
        text = value.strip()
        if CANONICAL_PRICE_RE.fullmatch(text):
            return text
    elif type(value) is int and 0 <= value < MAX_INT_PRICE:
        return f"{value}.00"
    number = to_decimal(value)
    if number < 0:
        raise InvalidField("must be >= 0")
    return format_decimal(number)


def _percentage(value: object, ctx: FieldContext) -> str:
    number = to_decimal(value)
    if not 0 <= number <= _MAX_PERCENT:
        raise InvalidField("must be between 0 and 100")
    return format_decimal(number)


def _rating(value: object, ctx: FieldContext) -> int | float:
    # Common spellings (4, 4.5) need no decimal detour.
    if type(value) is int and 0 <= value <= 5:
        return value
    if type(value) is float and 0 <= value <= 5 and round(value, 2) == value:
        return value
    number = to_decimal(value)
    if not 0 <= number <= _MAX_RATING:
        raise InvalidField("must be between 0 and 5")
    rounded = number.quantize(_CENT, rounding=ROUND_HALF_EVEN)
    return int(rounded) if rounded == rounded.to_integral_value() else float(rounded)


def _integer(value: object) -> int:
    if isinstance(value, bool):
        raise InvalidField("must be an integer, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= MAX_NUMBER_CHARS and _INTEGER_RE.fullmatch(text):
            return int(text)
    raise InvalidField("must be an integer")


def _count(value: object, ctx: FieldContext) -> int:
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    number = _integer(value)
    if not 0 <= number <= MAX_COUNT:
        raise InvalidField(f"must be an integer between 0 and {MAX_COUNT}")
    return number


def _priority(value: object, ctx: FieldContext) -> int:
    number = _integer(value)
    if abs(number) > MAX_COUNT:
        raise InvalidField(f"must be an integer between -{MAX_COUNT} and {MAX_COUNT}")
    return number


# --- text --------------------------------------------------------------------------------------


def _text(value: object, max_chars: int) -> str:
    if not isinstance(value, str):
        raise InvalidField("must be a string")
    text = value.strip()
    if len(text) > max_chars:
        raise InvalidField(f"must be at most {max_chars} characters")
    # ASCII text cannot hold a surrogate: only the NUL test is left (a cheap substring test).
    if "\x00" in text if text.isascii() else UNSTORABLE_RE.search(text):
        raise InvalidField("must not contain NUL or unpaired surrogate characters")
    return text


def _product_id(value: object) -> str:
    # Surrounding whitespace is never part of an id: tag templates wrap ids in markup.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    elif not isinstance(value, str):
        raise InvalidField("must be a string (or an integer)")
    text = _text(value, MAX_PRODUCT_ID_CHARS)
    if not text:
        raise InvalidField("must not be empty")
    return text


def parse_product_id(value: object) -> str:
    """A product id (string or integer), trimmed, 1..255 characters; raises ValueError."""
    try:
        return _product_id(value)
    except InvalidField as exc:
        raise ValueError(str(exc)) from None


# The fast paths below accept the common shape of a value (an ASCII string without NUL within
# its length limit) in one step; anything else takes the general path, which gives the reason.


def _is_plain(value: object, max_chars: int) -> TypeGuard[str]:
    return (
        type(value) is str and len(value) <= max_chars and value.isascii() and "\x00" not in value
    )


def _product_id_field(value: object, ctx: FieldContext) -> str:
    if _is_plain(value, MAX_PRODUCT_ID_CHARS) and value and value == value.strip():
        return value
    return _product_id(value)


def _name(value: object, ctx: FieldContext) -> str:
    text = value if _is_plain(value, MAX_NAME_CHARS) else _text(value, MAX_NAME_CHARS)
    return " ".join(text.split())


def _short_text(value: object, ctx: FieldContext) -> str:
    text = value if _is_plain(value, MAX_TEXT_CHARS) else _text(value, MAX_TEXT_CHARS)
    return " ".join(text.split())


def _description(value: object, ctx: FieldContext) -> str:
    if _is_plain(value, MAX_DESCRIPTION_CHARS):
        return value.strip()
    return _text(value, MAX_DESCRIPTION_CHARS)


def _currency(value: object, ctx: FieldContext) -> str:
    if type(value) is str and len(value) == 3 and value.isascii() and value.isalpha():
        return value.upper()
    text = _text(value, 3 + 10)
    if not _CURRENCY_RE.fullmatch(text):
        raise InvalidField("must be an ISO 4217 code of three letters, e.g. EUR")
    return text.upper()


def _published_at(value: object, ctx: FieldContext) -> str:
    text = _text(value, 64)
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidField("must be an ISO 8601 date or date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- URLs --------------------------------------------------------------------------------------


def _product_url(value: object, ctx: FieldContext) -> str:
    try:
        return check_http_url(value, ctx.hosts)
    except ValueError as exc:
        raise InvalidField(str(exc)) from None


def _image_url(value: object, ctx: FieldContext) -> str:
    try:
        return check_http_url(value, None)
    except ValueError as exc:
        raise InvalidField(str(exc)) from None


# --- lists and objects -------------------------------------------------------------------------


def _items(value: object) -> list[object]:
    # The tag renders one span per item; a lone string is a list of one.
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise InvalidField("must be an array")
    if len(value) > MAX_LIST_ITEMS:
        raise InvalidField(f"must have at most {MAX_LIST_ITEMS} items")
    return value


def _string_list(value: object, item: Callable[[object], str]) -> list[str]:
    items = _items(value)
    try:
        texts = [item(raw) for raw in items]
    except InvalidField:
        for position, raw in enumerate(items):
            try:
                item(raw)
            except InvalidField as exc:
                raise InvalidField(f"item {position} {exc}") from None
        raise
    # Duplicates are kept once, in first-seen order, and blank items dropped.
    unique = dict.fromkeys(texts)
    unique.pop("", None)
    return list(unique)


def _category(value: object) -> str:
    if (
        type(value) is str
        and len(value) <= MAX_TEXT_CHARS
        and CANONICAL_CATEGORY_RE.fullmatch(value)
    ):
        return value
    text = _text(value, MAX_TEXT_CHARS)
    segments = [part.strip() for part in text.split("/")]
    segments = [part for part in segments if part]
    return "/" + "/".join(segments) if segments else ""


def _categories(value: object, ctx: FieldContext) -> list[str]:
    if all_canonical(value, MAX_TEXT_CHARS, CANONICAL_CATEGORY_RE):
        return list(dict.fromkeys(value))
    return _string_list(value, _category)


def all_canonical(value: object, max_chars: int, pattern: re.Pattern[str]) -> TypeGuard[list[str]]:
    """Whether value is a list of at most 100 strings all already in canonical form."""
    if type(value) is not list or len(value) > MAX_LIST_ITEMS:
        return False
    for item in value:
        if type(item) is not str or len(item) > max_chars or not pattern.fullmatch(item):
            return False
    return True


def _tag(value: object) -> str:
    if type(value) is str and len(value) <= MAX_TAG_CHARS and CANONICAL_TAG_RE.fullmatch(value):
        return value
    return " ".join(_text(value, MAX_TAG_CHARS).split())


def _tags(value: object, ctx: FieldContext) -> list[str]:
    if all_canonical(value, MAX_TAG_CHARS, CANONICAL_TAG_RE):
        return list(dict.fromkeys(value))
    return _string_list(value, _tag)


def _related(value: object, ctx: FieldContext) -> list[str]:
    return _string_list(value, _product_id)


def _custom_fields(value: object, ctx: FieldContext) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidField("must be an object of at most 3 string values")
    if len(value) > MAX_LIST_ITEMS:
        raise InvalidField(f"must have at most {MAX_CUSTOM_FIELDS} entries")
    out: dict[str, str] = {}
    for key, raw in value.items():
        if raw is None:
            continue
        name = _text(key, MAX_CUSTOM_KEY_CHARS)
        if not name:
            raise InvalidField("must not have an empty key")
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            raw = format(to_decimal(raw), "f")
        try:
            text = _text(raw, MAX_TEXT_CHARS)
        except InvalidField as exc:
            raise InvalidField(f"value of {name!r} {exc}") from None
        if text:
            out[name] = text
    if len(out) > MAX_CUSTOM_FIELDS:
        raise InvalidField(f"must have at most {MAX_CUSTOM_FIELDS} entries")
    return out


Normaliser = Callable[[object, FieldContext], Any]
NORMALISERS: dict[str, Normaliser] = {
    "product_id": _product_id_field,
    "url": _product_url,
    "name": _name,
    "unit_price": _price,
    "description": _description,
    "image_url": _image_url,
    "thumbnail_url": _image_url,
    "brand": _short_text,
    "categories": _categories,
    "tags": _tags,
    "unit_price_original": _price,
    "unit_price_without_vat": _price,
    "discounted_percentage": _percentage,
    "discounted_amount": _price,
    "currency": _currency,
    "rating_value": _rating,
    "rating_count": _count,
    "review_count": _count,
    "published_at": _published_at,
    "priority": _priority,
    "related_product_ids": _related,
    "custom_fields": _custom_fields,
}
