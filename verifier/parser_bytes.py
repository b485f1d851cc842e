"""Substring search over page bytes, the parser's most repeated operation.

StringZilla's SIMD search reads a 40 KB page in about a microsecond, ten times faster than
bytes.find; where it is not installed the bytes methods give the same answers, slower.
Offsets passed in are never negative (unlike bytes.find, StringZilla does not count them
from the end).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

_LOWER_TABLE = bytes(range(256)).lower()

_stringzilla: Any
try:
    # Imported this way, mypy needs no stubs for a module that ships none.
    _stringzilla = importlib.import_module("stringzilla")
except ImportError:  # pragma: no cover - the project installs it
    _stringzilla = None

# find(data, needle, start, end) and rfind(...): bytes.find and bytes.rfind.
find: Callable[..., int] = bytes.find if _stringzilla is None else _stringzilla.find
rfind: Callable[..., int] = bytes.rfind if _stringzilla is None else _stringzilla.rfind


def lower(data: bytes) -> bytes:
    """bytes.lower(): ASCII letters lower-cased, every other byte kept (offsets unchanged)."""
    return translate(data, _LOWER_TABLE)


def translate(data: bytes, table: bytes) -> bytes:
    """bytes.translate(table) for a 256-byte table."""
    if _stringzilla is None:  # pragma: no cover
        return data.translate(table)
    result: bytes = _stringzilla.translate(data, table)
    return result
