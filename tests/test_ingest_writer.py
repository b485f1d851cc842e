"""The ingest writer's group commit against a real PostgreSQL database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import structlog

from verifier.database import Database
from verifier.ingest_writer import IngestUnavailable, IngestWriter
from verifier.metrics import Metrics
from verifier.product_schema import validate_product

HOSTS = ["shop.example"]


def canonical(product_id: str, **changes: Any) -> dict[str, Any]:
    """A canonical product dict, as the listener hands it to the writer."""
    raw = {
        "product_id": product_id,
        "url": f"https://shop.example/p/{product_id}",
        "name": f"Product {product_id}",
        "unit_price": "19.90",
    }
    product, errors = validate_product(raw | changes, allowed_hosts=HOSTS, default_currency="EUR")
    assert product is not None, errors
    return product


@pytest.fixture
async def merchant_id(database: Database) -> int:
    """A merchant owning shop.example."""
    async with database.pool.acquire() as conn:
        merchant: int = await conn.fetchval(
            "INSERT INTO merchants (slug, name, hosts, currency, ingest_token)"
            " VALUES ('shop', 'Shop', $1, 'EUR', 'tok-writer') RETURNING id",
            HOSTS,
        )
    return merchant


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll the predicate until it holds; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.01)


async def stored_names(database: Database) -> dict[str, str]:
    """product_id -> stored name."""
    async with database.pool.acquire() as conn:
        rows = await conn.fetch("SELECT product_id, data ->> 'name' AS name FROM products")
    return {row["product_id"]: row["name"] for row in rows}


def committed_rows(metrics: Metrics) -> dict[str, float]:
    """The writer's commit histogram: count (commits) and sum (rows)."""
    samples = next(iter(metrics.ingest_batch_rows.collect())).samples
    return {s.name.rsplit("_", 1)[1]: s.value for s in samples if s.name.endswith(("count", "sum"))}


async def test_requests_queued_together_share_one_commit_and_the_last_row_wins(
    database: Database, merchant_id: int
) -> None:
    """Rows queued before the writer runs go into one statement; per product the last wins."""
    metrics = Metrics()
    writer = IngestWriter(database, metrics)
    await writer.start()
    try:
        waits = [
            writer.submit(merchant_id, [canonical("p-1", name="first"), canonical("p-2")]),
            writer.submit(merchant_id, [canonical("p-1", name="second")]),
            writer.submit(merchant_id, [canonical("p-3"), canonical("p-1", name="last")]),
        ]
        await asyncio.gather(*waits)
    finally:
        await writer.close()
    assert await stored_names(database) == {
        "p-1": "last",
        "p-2": "Product p-2",
        "p-3": "Product p-3",
    }
    assert committed_rows(metrics) == {"count": 1.0, "sum": 5.0}
    assert metrics.ingest_events.labels("accepted")._value.get() == 5


async def test_rows_of_two_merchants_in_one_commit_stay_apart(
    database: Database, merchant_id: int
) -> None:
    """The same product id from two merchants' requests in one statement gives two rows."""
    async with database.pool.acquire() as conn:
        other: int = await conn.fetchval(
            "INSERT INTO merchants (slug, name, hosts, currency, ingest_token)"
            " VALUES ('other', 'Other', $1, 'EUR', 'tok-other') RETURNING id",
            HOSTS,
        )
    writer = IngestWriter(database, Metrics())
    await writer.start()
    try:
        await asyncio.gather(
            writer.submit(merchant_id, [canonical("p-1", name="mine")]),
            writer.submit(other, [canonical("p-1", name="theirs")]),
        )
    finally:
        await writer.close()
    async with database.pool.acquire() as conn:
        rows = await conn.fetch("SELECT merchant_id, data ->> 'name' AS name FROM products")
    assert {(row["merchant_id"], row["name"]) for row in rows} == {
        (merchant_id, "mine"),
        (other, "theirs"),
    }


async def test_submitted_rows_are_encoded_at_once(database: Database, merchant_id: int) -> None:
    """Changing a row after submit does not change what is stored: the caller may drop it."""
    writer = IngestWriter(database, Metrics())
    await writer.start()
    try:
        row = canonical("p-1", name="as submitted")
        committed = writer.submit(merchant_id, [row])
        row["name"] = "changed afterwards"
        await committed
    finally:
        await writer.close()
    assert await stored_names(database) == {"p-1": "as submitted"}


async def test_idle_writer_gives_its_connection_back(database: Database, merchant_id: int) -> None:
    """After a commit the writer keeps its connection only while work keeps coming."""
    writer = IngestWriter(database, Metrics())
    await writer.start()
    pool = database.pool
    try:
        await writer.write(merchant_id, [canonical("p-1")])
        await wait_until(lambda: pool.get_idle_size() == pool.get_size())
        assert await stored_names(database) == {"p-1": "Product p-1"}
    finally:
        await writer.close()


async def test_closing_the_database_while_the_writer_holds_a_connection_does_not_hang(
    database: Database, merchant_id: int
) -> None:
    """The held connection goes back to its pool even once the database is closing."""
    writer = IngestWriter(database, Metrics())
    await writer.start()
    try:
        await writer.write(merchant_id, [canonical("p-1")])
        with structlog.testing.capture_logs() as logs:
            await database.close()
    finally:
        await writer.close()
    assert [entry for entry in logs if entry["event"] == "database.close_timeout"] == []


async def test_an_unexpected_commit_error_fails_those_requests_and_the_writer_goes_on(
    database: Database, merchant_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in one commit answers its requests with IngestUnavailable; later ones commit."""
    writer = IngestWriter(database, Metrics())
    await writer.start()
    try:
        # A query that is no text makes the driver raise a TypeError: a stand-in for a bug.
        monkeypatch.setitem(database.queries, "ingest_upsert_tag_products", None)
        with structlog.testing.capture_logs(), pytest.raises(IngestUnavailable):
            await asyncio.wait_for(writer.write(merchant_id, [canonical("p-1")]), 10)
        monkeypatch.undo()
        await asyncio.wait_for(writer.write(merchant_id, [canonical("p-2")]), 10)
    finally:
        await writer.close()
    assert await stored_names(database) == {"p-2": "Product p-2"}
