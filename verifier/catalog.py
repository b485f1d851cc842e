"""The merchant API's product store: read, list, trusted upserts, discontinuation and imports.

Writes here come from the merchant's own backend, which is trusted: a product it sends is
stored ``verified`` with ``source = 'api'`` (no page fetch needed), and its availability is the
object's own (``in_stock`` when the object does not say). Such a write replaces the verified
data and drops the pending tag observation, which it supersedes; verifications already queued
for the product stay queued. A write whose result equals the stored state is skipped, which is
what makes re-importing the same file report every product ``unchanged``.

"Deleting" a product keeps the row and marks it verified ``discontinued``, so it is never
recommended and tag events for it are still understood.

Imports go through :func:`import_products` in batches, each committed on its own: an import
cut short (bad syntax, over the limit, a dropped connection) keeps the batches before it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from verifier.database import Database
from verifier.exceptions import InvalidInput, NotFound
from verifier.importer import ImportSyntaxError, RawRow
from verifier.merchants import Merchant
from verifier.metrics import Metrics
from verifier.product_schema import FieldError, render_product, validate_product

MAX_IMPORT_PRODUCTS = 100_000
IMPORT_BATCH_SIZE = 1000
MAX_REPORTED_ERRORS = 1000
_DEADLOCK_RETRIES = 3
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    """What a batch of trusted writes did."""

    created: int
    updated: int
    unchanged: int


@dataclass(slots=True)
class ImportReport:
    """The running result of an import; ``errors`` keeps the first MAX_REPORTED_ERRORS."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    read: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, line: int, product_id: str | None, message: str) -> None:
        """Count a bad row and remember why."""
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "product_id": product_id, "message": message})

    def as_dict(self) -> dict[str, Any]:
        """The JSON response of an import."""
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "errors": self.errors,
        }


def encode_cursor(product_id: str) -> str:
    """The opaque pagination cursor after ``product_id``."""
    return base64.urlsafe_b64encode(product_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The product_id inside a cursor; raises InvalidInput for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        product_id = raw.decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput("after: not a cursor returned by this API") from None
    if (
        not 1 <= len(product_id) <= 255
        or "\x00" in product_id
        or encode_cursor(product_id) != cursor
    ):
        raise InvalidInput("after: not a cursor returned by this API")
    return product_id


def error_message(errors: Sequence[FieldError]) -> str:
    """One line for the validation errors of one product."""
    return "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in errors)


def with_availability(product: Mapping[str, Any]) -> dict[str, Any]:
    """A trusted product states its availability; ``in_stock`` when the object is silent."""
    if "availability" in product:
        return dict(product)
    return {**product, "availability": "in_stock", "availability_detail": "in_stock"}


def _product_id_of(value: object) -> str | None:
    """The id of a rejected row, for its error entry, when it has a printable one."""
    if isinstance(value, Mapping):
        product_id = value.get("product_id")
        if isinstance(product_id, str | int) and not isinstance(product_id, bool):
            text = str(product_id).strip()[:255]
            # A lone surrogate (legal in a JSON escape) cannot go back out as UTF-8.
            return text if text and _encodable(text) else None
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class Catalog:
    """Products as the merchant API sees them; every call is scoped to one merchant."""

    def __init__(self, db: Database, metrics: Metrics | None = None) -> None:
        self.db = db
        self.metrics = metrics

    def validate(
        self, merchant: Merchant, obj: object, index: int | None = None
    ) -> tuple[dict[str, Any] | None, list[FieldError]]:
        """A product object in canonical trusted form (availability stated), or its errors."""
        product, errors = validate_product(
            obj, allowed_hosts=merchant.hosts, default_currency=merchant.currency, index=index
        )
        return (with_availability(product) if product is not None else None), errors

    async def get(self, merchant: Merchant, product_id: str) -> dict[str, Any]:
        """The response object of one product; NotFound when the merchant has no such id."""
        row = await self.db.pool.fetchrow(
            self.db.queries["catalog_get_product"], merchant.id, product_id
        )
        if row is None:
            raise NotFound(f"no product {product_id!r}")
        return render_product(row)

    async def list(
        self,
        merchant: Merchant,
        *,
        status: str | None = None,
        availability: str | None = None,
        usable: bool | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page in product_id order and the cursor of the next page (None at the end)."""
        rows = await self.db.pool.fetch(
            self.db.queries["catalog_list_products"],
            merchant.id,
            status,
            availability,
            usable,
            after,
            limit + 1,
        )
        items = [render_product(row) for row in rows[:limit]]
        more = len(rows) > limit
        return items, encode_cursor(rows[limit - 1]["product_id"]) if more else None

    async def upsert_many(
        self, merchant: Merchant, products: Sequence[Mapping[str, Any]]
    ) -> UpsertCounts:
        """Store canonical trusted products (distinct ids) in one statement."""
        if not products:
            return UpsertCounts(0, 0, 0)
        # Sorted ids: concurrent batches lock rows in the same order and cannot deadlock.
        ordered = sorted(products, key=lambda product: str(product["product_id"]))
        args = (
            merchant.id,
            [p["product_id"] for p in ordered],
            [p["url"] for p in ordered],
            [p["availability"] for p in ordered],
            [p.get("availability_detail") for p in ordered],
            list(ordered),
        )
        for attempt in range(_DEADLOCK_RETRIES):
            try:
                rows = await self.db.pool.fetch(self.db.queries["catalog_upsert_products"], *args)
                break
            except _RETRYABLE:
                if attempt == _DEADLOCK_RETRIES - 1:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        created = sum(1 for row in rows if row["created"])
        counts = UpsertCounts(created, len(rows) - created, len(products) - len(rows))
        if self.metrics is not None:
            for result in ("created", "updated", "unchanged"):
                self.metrics.imported_products.labels(result).inc(getattr(counts, result))
        return counts

    async def upsert(
        self, merchant: Merchant, product: Mapping[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """Store one canonical product; ("created"|"updated"|"unchanged", response object)."""
        counts = await self.upsert_many(merchant, [product])
        result = "created" if counts.created else "updated" if counts.updated else "unchanged"
        return result, await self.get(merchant, str(product["product_id"]))

    async def discontinue(self, merchant: Merchant, product_id: str) -> dict[str, Any]:
        """Mark a product discontinued (verified); NotFound when there is no such product."""
        row = await self.db.pool.fetchrow(
            self.db.queries["catalog_discontinue_product"], merchant.id, product_id
        )
        if row is None:
            raise NotFound(f"no product {product_id!r}")
        return render_product(row)


class _BatchWriter:
    """Writes import batches in order, one in flight, so the database writes a batch while
    the next one is read and validated."""

    def __init__(self, catalog: Catalog, merchant: Merchant, report: ImportReport) -> None:
        self.catalog = catalog
        self.merchant = merchant
        self.report = report
        self.pending: dict[str, dict[str, Any]] = {}
        self._in_flight: asyncio.Task[UpsertCounts] | None = None

    async def settle(self) -> None:
        """Wait for the batch in flight and count it."""
        task, self._in_flight = self._in_flight, None
        if task is not None:
            counts = await task
            self.report.created += counts.created
            self.report.updated += counts.updated
            self.report.unchanged += counts.unchanged

    async def flush(self) -> None:
        """Hand the pending products to the database (after the previous batch is done)."""
        await self.settle()
        if self.pending:
            batch, self.pending = list(self.pending.values()), {}
            self._in_flight = asyncio.create_task(self.catalog.upsert_many(self.merchant, batch))

    def abort(self) -> None:
        """Stop the batch in flight (the request went away)."""
        if self._in_flight is not None:
            self._in_flight.cancel()


async def import_products(
    catalog: Catalog,
    merchant: Merchant,
    batches: AsyncIterable[list[RawRow]],
    report: ImportReport,
    *,
    max_products: int = MAX_IMPORT_PRODUCTS,
    batch_size: int = IMPORT_BATCH_SIZE,
    progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Validate and store streamed rows in batches; bad rows are reported in ``report``.

    Raises ImportSyntaxError when the body is unreadable from its start (no row at all). On
    any other error the batches already handed to the database are counted in ``report``.
    """
    writer = _BatchWriter(catalog, merchant, report)
    try:
        async for rows in batches:
            for row in rows:
                if report.read >= max_products:
                    message = f"over {max_products} products: this row and the rest were not read"
                    report.errors.append({"line": row.line, "product_id": None, "message": message})
                    break
                report.read += 1
                if row.error is not None:
                    report.reject(row.line, _product_id_of(row.value), row.error)
                    continue
                product, errors = catalog.validate(merchant, row.value, row.line)
                if product is None:
                    report.reject(row.line, _product_id_of(row.value), error_message(errors))
                    continue
                if product["product_id"] in writer.pending:
                    await writer.flush()  # the same product twice: both writes count, in order
                writer.pending[product["product_id"]] = product
                if len(writer.pending) >= batch_size:
                    await writer.flush()
            else:
                if progress is not None:
                    progress(report)
                continue
            break  # over the limit
    except ImportSyntaxError as exc:
        if report.read == 0:
            raise  # nothing readable at all: the caller refuses the whole body
        message = f"{exc.message}; the rest of the body was not read"
        report.errors.append({"line": exc.line, "product_id": None, "message": message})
    except asyncio.CancelledError:
        writer.abort()
        raise
    except Exception:
        await writer.settle()
        raise
    await writer.flush()
    await writer.settle()
    if progress is not None:
        progress(report)
    if catalog.metrics is not None:
        catalog.metrics.imported_products.labels("rejected").inc(report.rejected)
    return report
