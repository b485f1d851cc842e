"""The benchmark database: schema, merchants, and products loaded the way ingest stores them."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from bench.verify.catalog import BenchProduct, tag_data
from verifier.config import DatabaseConfig
from verifier.database import Database
from verifier.merchants import MerchantStore
from verifier.migrations import migrate
from verifier.product_schema import validate_product

DATABASE = "bench_verify"

# New tag-event products: unverified, data = pending = the tag's data, queued in `changed` when
# `due` (the same row shape as the ingest upsert writes).
_INSERT = """
INSERT INTO products
    (merchant_id, product_id, status, source, url, data, pending, pending_at, changed_due_at)
SELECT $1, t.product_id, 'unverified', 'tag', t.url, t.data, t.data, now(),
       CASE WHEN $5 THEN now() END
FROM unnest($2::text[], $3::text[], $4::jsonb[]) AS t (product_id, url, data)
"""


async def create_database(admin_dsn: str, dsn: str) -> None:
    """A fresh, migrated benchmark database."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        await admin.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()


def open_database(dsn: str) -> Database:
    """A Database (pool with the daemon's JSON codecs) on the benchmark database."""
    return Database(DatabaseConfig(dsn=dsn), Path(tempfile.gettempdir()))


async def create_merchant(db: Database, slug: str, hosts: Sequence[str]) -> int:
    """A merchant allowed to fetch ``hosts``; its internal id."""
    merchant = await MerchantStore(db).create(slug, hosts)
    return merchant.id


def canonical_rows(products: Sequence[BenchProduct], hosts: Sequence[str]) -> list[dict[str, Any]]:
    """Each product's tag data in the canonical stored form (ingest's validation)."""
    rows = []
    for product in products:
        data, errors = validate_product(
            tag_data(product), allowed_hosts=hosts, default_currency="EUR"
        )
        if data is None:
            raise RuntimeError(f"benchmark product {product.product_id} is invalid: {errors}")
        rows.append(data)
    return rows


async def load_products(
    db: Database, rows: Mapping[int, Sequence[dict[str, Any]]], *, due: bool
) -> None:
    """Replace every product with ``rows`` (per merchant id; queued in `changed` when ``due``)."""
    async with db.pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute("TRUNCATE products, changes, verification_requests CASCADE")
            for merchant_id, merchant_rows in rows.items():
                await conn.execute(
                    _INSERT,
                    merchant_id,
                    [row["product_id"] for row in merchant_rows],
                    [row["url"] for row in merchant_rows],
                    list(merchant_rows),
                    due,
                )
        # Start every run from the same state: no dead rows, fresh statistics, no checkpoint
        # pending from the previous run's writes.
        await conn.execute("VACUUM ANALYZE products")
        await conn.execute("VACUUM ANALYZE changes")
        await conn.execute("CHECKPOINT")
    # ... and the checkpoint's pages on disk, not still being written back by the kernel while a
    # run measures commit latencies.
    await asyncio.to_thread(os.sync)
