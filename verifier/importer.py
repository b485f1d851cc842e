"""Streaming readers for product imports: NDJSON, a JSON array, or CSV.

Each reader takes the body as an async stream of byte chunks and yields the rows each chunk
completes, so memory holds one chunk and at most one unfinished product, never the whole body.

- NDJSON: one JSON object per line; blank lines are skipped; ``line`` is the line number.
- JSON array: ``[{...}, {...}]``; each element is decoded as soon as it is complete (C decoder
  on the happy path; a small structural scanner finds the end of a broken element so the rest
  can still be read); ``line`` is the element's index + 1.
- CSV with a header row: :mod:`verifier.import_csv`.

A broken row is reported with its line and the reading goes on. Damage that makes the rest
unreadable (no array, an unterminated string or quote, invalid UTF-8) raises
:class:`ImportSyntaxError`.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any, Literal

import orjson

ImportFormat = Literal["json", "ndjson", "csv"]
FORMATS: tuple[ImportFormat, ...] = ("json", "ndjson", "csv")

MAX_ROW_BYTES = 1_000_000

_CONTENT_TYPES: dict[str, ImportFormat] = {
    "application/json": "json",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/x-jsonlines": "ndjson",
    "text/csv": "csv",
}
_EXTENSIONS: dict[str, ImportFormat] = {
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".csv": "csv",
}
_WS = " \t\r\n"
_STRUCTURAL = re.compile(r'["\[\]{},]')
_STRING_TAIL = re.compile(r'(?:[^"\\]|\\.)*"', re.DOTALL)


@dataclass(frozen=True, slots=True)
class RawRow:
    """One product as read from the body, before validation; ``error`` when unreadable."""

    line: int
    value: Any
    error: str | None = None


class ImportSyntaxError(Exception):
    """The body cannot be read past ``line``; rows before it were already yielded."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


def format_for_content_type(content_type: str) -> ImportFormat | None:
    """The import format of a media type (parameters ignored), or None."""
    return _CONTENT_TYPES.get(content_type.split(";", 1)[0].strip().lower())


def format_for_filename(name: str) -> ImportFormat | None:
    """The import format of a file name's extension, or None."""
    lowered = name.lower()
    for extension, fmt in _EXTENSIONS.items():
        if lowered.endswith(extension):
            return fmt
    return None


def sniff_format(head: bytes) -> ImportFormat:
    """Guess the format from the first bytes: ``[`` array, ``{`` NDJSON, anything else CSV."""
    text = head.removeprefix(codecs.BOM_UTF8).lstrip()
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        return "ndjson"
    return "csv"


def read_rows(
    fmt: ImportFormat,
    chunks: AsyncIterable[bytes],
    *,
    csv_fields: Collection[str] | None = None,
    max_row_bytes: int = MAX_ROW_BYTES,
) -> AsyncIterator[list[RawRow]]:
    """The rows of a body in ``fmt``, a list per chunk (possibly empty)."""
    if fmt == "ndjson":
        return read_ndjson(chunks, max_row_bytes=max_row_bytes)
    if fmt == "json":
        return read_json_array(chunks, max_row_bytes=max_row_bytes)
    from verifier.import_csv import read_csv  # it builds on this module

    return read_csv(chunks, fields=csv_fields, max_row_bytes=max_row_bytes)


def _decode_line(line_no: int, raw: bytes | bytearray) -> RawRow | None:
    if not raw.strip():
        return None
    try:
        return RawRow(line_no, orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        return RawRow(line_no, None, f"invalid JSON: {exc}")


async def read_ndjson(
    chunks: AsyncIterable[bytes], *, max_row_bytes: int = MAX_ROW_BYTES
) -> AsyncIterator[list[RawRow]]:
    """NDJSON rows; a line over ``max_row_bytes`` is reported and skipped."""
    buf = bytearray()
    line_no = 0
    skipping = False  # inside an over-long line, dropping bytes up to its newline
    first = True
    async for chunk in chunks:
        if first and chunk:
            chunk = chunk.removeprefix(codecs.BOM_UTF8)
            first = False
        buf += chunk
        rows: list[RawRow] = []
        start = 0
        while (end := buf.find(b"\n", start)) != -1:
            line_no += 1
            if skipping:
                skipping = False
            elif (row := _decode_line(line_no, buf[start:end])) is not None:
                rows.append(row)
            start = end + 1
        del buf[:start]
        if len(buf) > max_row_bytes:
            if not skipping:
                rows.append(RawRow(line_no + 1, None, f"line longer than {max_row_bytes} bytes"))
            skipping = True
            buf.clear()
        yield rows
    if buf and not skipping and (row := _decode_line(line_no + 1, buf)) is not None:
        yield [row]


def _skip_value(text: str, pos: int) -> int | None:
    """End of the array element starting at ``pos`` (index of the ``,``/``]`` closing it).

    Only used on elements the decoder rejected, to step over them; None when the text ends
    before the element does.
    """
    depth = 0
    while (match := _STRUCTURAL.search(text, pos)) is not None:
        char = match.group()
        pos = match.end()
        if char == '"':
            tail = _STRING_TAIL.match(text, pos)
            if tail is None:
                return None
            pos = tail.end()
        elif char in "[{":
            depth += 1
        elif char in "]}" and depth > 0:
            depth -= 1
        elif depth == 0:
            return match.start()
    return None


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_error(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


class _InvalidUtf8(Exception):
    """The body stops being UTF-8 (turned into an ImportSyntaxError with a line number)."""


async def decoded_text(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]:
    """UTF-8 text of the chunks, a leading BOM dropped."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
    try:
        async for chunk in chunks:
            yield decoder.decode(chunk)
        yield decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise _InvalidUtf8 from exc


async def next_text(pieces: AsyncIterator[str], line: int) -> str | None:
    """The next decoded piece, or None at the end of the body."""
    try:
        return await anext(pieces)
    except StopAsyncIteration:
        return None
    except _InvalidUtf8:
        raise ImportSyntaxError(line, "the body is not valid UTF-8") from None


def _scan_array(
    decoder: json.JSONDecoder,
    text: str,
    pos: int,
    state: str,
    index: int,
    eof: bool,
    rows: list[RawRow],
) -> tuple[str, int, int]:
    """Read every complete element of ``text`` from ``pos``; returns (state, pos, index)."""
    while True:
        pos = _skip_ws(text, pos)
        if pos >= len(text):
            return state, pos, index
        if state == "start":
            if text[pos] != "[":
                raise ImportSyntaxError(1, "expected a JSON array of products")
            state, pos = "first", pos + 1
        elif state == "first" and text[pos] == "]":
            state, pos = "done", pos + 1
        elif state in ("first", "value"):
            try:
                value, end = decoder.raw_decode(text, pos)
            except (ValueError, RecursionError) as exc:
                skipped = _skip_value(text, pos)
                if skipped is None:
                    return state, pos, index  # not complete yet (at the end: unterminated)
                end = skipped
                rows.append(RawRow(index + 1, None, f"invalid JSON: {_json_error(exc)}"))
            else:
                if end >= len(text) and not eof:
                    return state, pos, index  # a number may go on in the next chunk
                rows.append(RawRow(index + 1, value))
            index += 1
            state, pos = "after", end
        elif state == "after":
            if text[pos] == ",":
                state = "value"
            elif text[pos] == "]":
                state = "done"
            else:
                raise ImportSyntaxError(index + 1, "expected ',' or ']' after an element")
            pos += 1
        else:
            raise ImportSyntaxError(index + 1, "unexpected data after the end of the array")


async def read_json_array(
    chunks: AsyncIterable[bytes], *, max_row_bytes: int = MAX_ROW_BYTES
) -> AsyncIterator[list[RawRow]]:
    """The elements of a top-level JSON array, each as soon as it is complete."""
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    text = ""
    pos = 0
    index = 0  # elements seen
    state = "start"  # start -> first (after "[") -> value -> after -> done
    eof = False
    pieces = decoded_text(chunks)
    while not eof:
        piece = await next_text(pieces, index + 1)
        eof = piece is None
        text = text[pos:] + (piece or "")
        pos = 0
        rows: list[RawRow] = []
        fatal: ImportSyntaxError | None = None
        try:
            state, pos, index = _scan_array(decoder, text, pos, state, index, eof, rows)
        except ImportSyntaxError as exc:
            fatal = exc
        yield rows  # rows before a fatal error are still good
        if fatal is not None:
            raise fatal
        if len(text) - pos > max_row_bytes:
            raise ImportSyntaxError(index + 1, f"element larger than {max_row_bytes} bytes")
    if state != "done":
        raise ImportSyntaxError(index + 1, "the JSON array is not terminated")
