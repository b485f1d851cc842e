"""Admin commands for merchants, API keys and imports (dispatched by :mod:`verifier.cli`).

Each runs with an open, migrated database and returns the exit code: 0 ok, 1 failed (unknown
merchant or key, unreadable file, rejected rows), 2 bad arguments.

``import`` reads the file in chunks through the same path as ``POST /v1/products/import``
(batches of 1000, each committed on its own), without the API's 100,000-product limit. On a
terminal it draws a progress line on stderr. It exits 1 when any row was rejected; the summary
lists why.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import IO, TYPE_CHECKING, Any

from verifier.catalog import Catalog, ImportReport, import_products
from verifier.database import Database
from verifier.exceptions import InvalidInput
from verifier.import_csv import CSV_FIELDS
from verifier.importer import (
    ImportFormat,
    ImportSyntaxError,
    format_for_filename,
    read_rows,
    sniff_format,
)
from verifier.merchants import ApiKeyStore, MerchantStore

if TYPE_CHECKING:
    from verifier.cli import Output

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
READ_CHUNK_BYTES = 1024 * 1024
_PROGRESS_EVERY_S = 0.2


async def merchant_add(args: argparse.Namespace, db: Database, out: Output) -> int:
    """``merchant add SLUG --host HOST... [--name] [--currency]``."""
    try:
        merchant = await MerchantStore(db).create(
            args.slug, args.hosts, name=args.name, currency=args.currency.upper()
        )
    except InvalidInput as exc:
        out.error(str(exc))
        return EXIT_USAGE
    data = merchant.as_dict()
    text = "\n".join(
        [
            f"merchant {merchant.slug} created",
            f"  name:         {merchant.name}",
            f"  hosts:        {', '.join(merchant.hosts)}",
            f"  currency:     {merchant.currency}",
            f"  ingest_token: {merchant.ingest_token}",
        ]
    )
    out.record(data, text=text)
    return EXIT_OK


async def merchant_list(args: argparse.Namespace, db: Database, out: Output) -> int:
    """``merchant list``."""
    merchants = await MerchantStore(db).list()
    lines = [f"{m.slug}\t{m.name}\t{m.currency}\t{','.join(m.hosts)}" for m in merchants]
    text = "\n".join(["slug\tname\tcurrency\thosts", *lines]) if merchants else "no merchants"
    out.record({"merchants": [m.as_dict() for m in merchants]}, text=text)
    return EXIT_OK


async def key_create(args: argparse.Namespace, db: Database, out: Output) -> int:
    """``key create SLUG``: prints the secret key, the only time it is shown."""
    merchant = await MerchantStore(db).get(args.slug)
    key = await ApiKeyStore(db).create(merchant)
    text = (
        f"key_id: {key.key_id}\nkey:    {key.key}\n"
        "Store the key now: it is not kept and cannot be shown again."
    )
    out.record({"key_id": key.key_id, "key": key.key}, text=text)
    return EXIT_OK


async def key_list(args: argparse.Namespace, db: Database, out: Output) -> int:
    """``key list SLUG``: key ids and dates, never secrets."""
    merchant = await MerchantStore(db).get(args.slug)
    keys = await ApiKeyStore(db).list(merchant)
    lines = [
        f"{k.key_id}\t{k.created_at:%Y-%m-%d %H:%M}\t"
        f"{'revoked ' + format(k.revoked_at, '%Y-%m-%d %H:%M') if k.revoked_at else 'active'}"
        for k in keys
    ]
    text = "\n".join(["key_id\tcreated\tstate", *lines]) if keys else "no keys"
    out.record({"slug": merchant.slug, "keys": [k.as_dict() for k in keys]}, text=text)
    return EXIT_OK


async def key_revoke(args: argparse.Namespace, db: Database, out: Output) -> int:
    """``key revoke KEY_ID``: refused from the next request on."""
    info = await ApiKeyStore(db).revoke(args.key_id)
    out.record(info.as_dict(), text=f"key {info.key_id} of {info.slug} revoked")
    return EXIT_OK


class _ProgressLine:
    """A one-line progress display on stderr, redrawn a few times a second."""

    def __init__(self, stream: IO[str], total_bytes: int | None) -> None:
        self.stream = stream
        self.total_bytes = total_bytes
        self.bytes_read = 0
        self.started = time.monotonic()
        self.drawn_at = 0.0

    def update(self, report: ImportReport, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.drawn_at < _PROGRESS_EVERY_S:
            return
        self.drawn_at = now
        rate = report.read / max(now - self.started, 1e-6)
        size = f"{self.bytes_read / 1e6:.1f} MB"
        if self.total_bytes:
            share = min(self.bytes_read / self.total_bytes, 1.0)
            bar = "#" * int(share * 30)
            size = f"[{bar:<30}] {share:4.0%} {size} of {self.total_bytes / 1e6:.1f} MB"
        line = f"\rimporting {size}, {report.read:,} products ({rate:,.0f}/s)"
        self.stream.write(line + ("\n" if final else ""))
        self.stream.flush()


async def _file_chunks(
    stream: IO[bytes], head: bytes, progress: _ProgressLine | None
) -> AsyncIterator[bytes]:
    chunk = head
    while chunk:
        if progress is not None:
            progress.bytes_read += len(chunk)
        yield chunk
        chunk = await asyncio.to_thread(stream.read, READ_CHUNK_BYTES)


def _open_input(path: str) -> tuple[IO[bytes], int | None]:
    if path == "-":
        return sys.stdin.buffer, None
    stream = open(path, "rb")  # noqa: SIM115 - closed by the caller
    return stream, os.fstat(stream.fileno()).st_size


def _summary_text(report: ImportReport) -> str:
    lines = [
        f"created: {report.created}, updated: {report.updated}, "
        f"unchanged: {report.unchanged}, rejected: {report.rejected}"
    ]
    for error in report.errors:
        product = f" ({error['product_id']})" if error["product_id"] else ""
        lines.append(f"  line {error['line']}{product}: {error['message']}")
    if report.rejected > len(report.errors):
        lines.append(f"  ... and {report.rejected - len(report.errors)} more")
    return "\n".join(lines)


async def import_file(args: argparse.Namespace, db: Database, out: Output) -> int:
    """``import SLUG FILE [--format]``: stream a file through the import path."""
    merchant = await MerchantStore(db).get(args.slug)
    try:
        stream, total_bytes = _open_input(args.file)
    except OSError as exc:
        out.error(f"cannot read {args.file}: {exc.strerror or exc}")
        return EXIT_FAILED
    try:
        head = await asyncio.to_thread(stream.read, READ_CHUNK_BYTES)
        fmt: ImportFormat = args.format or format_for_filename(args.file) or sniff_format(head)
        progress = _ProgressLine(sys.stderr, total_bytes) if sys.stderr.isatty() else None
        report = ImportReport()
        rows = read_rows(fmt, _file_chunks(stream, head, progress), csv_fields=CSV_FIELDS)
        try:
            await import_products(
                Catalog(db),
                merchant,
                rows,
                report,
                max_products=sys.maxsize,
                progress=progress.update if progress is not None else None,
            )
        except ImportSyntaxError as exc:
            out.error(f"{args.file} is not readable as {fmt}: {exc}")
            return EXIT_FAILED
        if progress is not None:
            progress.update(report, final=True)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    summary: dict[str, Any] = {"format": fmt, **report.as_dict()}
    out.record(summary, text=_summary_text(report))
    return EXIT_OK if not report.errors else EXIT_FAILED
