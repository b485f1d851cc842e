"""The CSV reader of product imports (see :mod:`verifier.importer` for the other formats).

RFC 4180, comma-separated, UTF-8 with or without BOM. The first record is a header of product
field names; an empty cell means "absent". List fields (``categories``, ``tags``,
``related_product_ids``) are either a JSON array or values separated by ``|``;
``custom_fields`` is a JSON object (or use columns ``custom_field_1`` to ``custom_field_3``).
A row's ``line`` is the physical line where its record starts (the header is line 1); quoted
cells may span lines.

Records are found without parsing: a record ends at the first newline where its count of ``"``
characters is even (quotes inside quoted cells are doubled). Complete records are then split
into cells by the C ``csv`` module, many at a time.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterable, AsyncIterator, Collection, Iterator
from typing import Any

import orjson

from verifier.importer import MAX_ROW_BYTES, ImportSyntaxError, RawRow, decoded_text, next_text
from verifier.product_schema import FIELDS

# The product fields, plus the tag's flat spelling of custom fields.
CSV_FIELDS: tuple[str, ...] = (*FIELDS, "custom_field_1", "custom_field_2", "custom_field_3")
LIST_FIELDS = frozenset({"categories", "tags", "related_product_ids"})
OBJECT_FIELDS = frozenset({"custom_fields"})


def _csv_value(field: str, cell: str) -> Any:
    """A CSV cell as the JSON value of ``field``; raises ValueError when unreadable."""
    if field in LIST_FIELDS:
        if cell.lstrip().startswith("["):
            return orjson.loads(cell)
        return [item.strip() for item in cell.split("|") if item.strip()]
    if field in OBJECT_FIELDS:
        value = orjson.loads(cell)
        if not isinstance(value, dict):
            raise ValueError("expected a JSON object")
        return value
    return cell


def _csv_row(line: int, header: list[str], cells: list[str]) -> RawRow | None:
    if not any(cell.strip() for cell in cells):
        return None
    if len(cells) > len(header):
        named = dict(zip(header, cells, strict=False))
        message = f"{len(cells)} cells but the header names {len(header)}"
        return RawRow(line, {"product_id": named.get("product_id")}, message)
    product: dict[str, Any] = {}
    for field, cell in zip(header, cells, strict=False):
        if cell == "":
            continue
        try:
            product[field] = _csv_value(field, cell)
        except ValueError as exc:
            # keep the id (when already read) so the error can name the product
            return RawRow(line, {"product_id": product.get("product_id")}, f"{field}: {exc}")
    return RawRow(line, product)


def _csv_header(cells: list[str], fields: Collection[str] | None) -> list[str]:
    header = [cell.strip() for cell in cells]
    if len(set(header)) != len(header) or "" in header:
        raise ImportSyntaxError(1, "the CSV header must name each column once")
    if fields is not None:
        unknown = [name for name in header if name not in fields]
        if unknown:
            raise ImportSyntaxError(1, f"unknown CSV column(s): {', '.join(unknown)}")
    return header


class _CsvRecords:
    """Groups physical lines into CSV records: a record ends where its quote count is even."""

    def __init__(self, max_row_bytes: int) -> None:
        self.max_row_bytes = max_row_bytes
        self.line_no = 0
        self.open_lines: list[str] = []
        self.open_line = 0
        self.open_size = 0
        self.quotes = 0

    def feed(self, lines: list[str], complete: list[tuple[int, str]]) -> None:
        """Append the records ``lines`` complete to ``complete``; raises ImportSyntaxError."""
        for physical in lines:
            self.line_no += 1
            if not self.open_lines:
                self.open_line = self.line_no
            self.open_lines.append(physical)
            self.open_size += len(physical)
            self.quotes += physical.count('"')
            if self.quotes % 2 == 0:
                complete.append((self.open_line, "\n".join(self.open_lines)))
                self.open_lines, self.open_size, self.quotes = [], 0, 0
            elif self.open_size > self.max_row_bytes:
                raise ImportSyntaxError(self.open_line, "unterminated quoted cell")

    def finish(self) -> None:
        """At the end of the body: no record may be left open."""
        if self.open_lines:
            raise ImportSyntaxError(self.open_line, "unterminated quoted cell")


async def read_csv(
    chunks: AsyncIterable[bytes],
    *,
    fields: Collection[str] | None = None,
    max_row_bytes: int = MAX_ROW_BYTES,
) -> AsyncIterator[list[RawRow]]:
    """CSV rows as product dicts; ``fields`` (when given) are the allowed header names."""
    header: list[str] | None = None
    records = _CsvRecords(max_row_bytes)
    tail = ""  # text after the last newline
    eof = False
    pieces = decoded_text(chunks)
    while not eof:
        piece = await next_text(pieces, records.line_no + 1)
        eof = piece is None
        text = tail + (piece or "")
        if eof and text and not text.endswith("\n"):
            text += "\n"
        lines = text.split("\n")
        tail = lines.pop()
        complete: list[tuple[int, str]] = []
        rows: list[RawRow] = []
        fatal: ImportSyntaxError | None = None
        try:
            if len(tail) > max_row_bytes:
                raise ImportSyntaxError(records.line_no + 1, f"a line over {max_row_bytes} bytes")
            records.feed(lines, complete)
            if eof:
                records.finish()
        except ImportSyntaxError as exc:
            fatal = exc
        try:
            for line, cells in _parse_records(complete):
                if header is None:
                    if any(cell.strip() for cell in cells):
                        header = _csv_header(cells, fields)
                elif (row := _csv_row(line, header, cells)) is not None:
                    rows.append(row)
        except ImportSyntaxError as exc:
            fatal = exc
        yield rows  # rows before a fatal error are still good
        if fatal is not None:
            raise fatal


def _parse_records(records: list[tuple[int, str]]) -> Iterator[tuple[int, list[str]]]:
    """Split complete CSV records into cells, all at once when they are well-formed."""
    try:
        parsed = list(csv.reader(text for _, text in records))
    except csv.Error:
        parsed = []
    if len(parsed) == len(records):
        yield from ((line, cells) for (line, _), cells in zip(records, parsed, strict=True))
        return
    for line, text in records:
        try:
            cells = list(csv.reader([text]))
        except csv.Error:
            cells = []
        if len(cells) > 1 or (not cells and text.strip()):
            # Only a stray quote in an unquoted cell makes the quote count lie like this.
            raise ImportSyntaxError(line, 'a quote (") inside an unquoted cell: quote the cell')
        yield line, cells[0] if cells else []
