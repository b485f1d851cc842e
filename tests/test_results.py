"""The batched result writer: many decisions, one transaction, every one applied in order."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from verifier.database import Database
from verifier.exceptions import DatabaseError
from verifier.outcomes import Change, Decision
from verifier.results import ResultRecord, ResultWriter


async def _merchant_with_products(db: Database, count: int) -> int:
    merchant_id: int = await db.pool.fetchval(
        "INSERT INTO merchants (slug, name, hosts, currency, ingest_token)"
        " VALUES ('shop', 'Shop', '{shop.example}', 'EUR', 'tok-results') RETURNING id"
    )
    for n in range(count):
        url = f"https://shop.example/p/{n}"
        await db.pool.execute(
            "INSERT INTO products (merchant_id, product_id, status, source, url, data)"
            " VALUES ($1, $2, 'unverified', 'tag', $3, $4)",
            merchant_id,
            f"p{n}",
            url,
            {"product_id": f"p{n}", "url": url, "name": "Tag name", "unit_price": "9.99"},
        )
    return merchant_id


def _verified(price: str) -> Decision:
    data = {"product_id": "p0", "url": "u", "name": "Page name", "unit_price": price}
    return Decision(
        "verified",
        http_status=200,
        error=None,
        data=data,
        status="verified",
        availability="in_stock",
        availability_detail="in_stock",
        clear_pending=True,
        content_sha256=b"digest",
        etag='"v1"',
    )


def _failed(status: int) -> Decision:
    return Decision(
        "fetch_error", http_status=status, error=f"HTTP {status}", counts_as_failure=True
    )


async def test_a_batch_writes_each_product_its_own_decision(database: Database) -> None:
    """Decisions queued together land in one commit, each on its own product."""
    merchant_id = await _merchant_with_products(database, 3)
    writer = ResultWriter(database, "owner")
    await writer.start()
    try:
        await asyncio.gather(
            writer.write(ResultRecord(merchant_id, "p0", "sweep", _verified("19.90"))),
            writer.write(ResultRecord(merchant_id, "p1", "sweep", _failed(500))),
            writer.write(ResultRecord(merchant_id, "p2", "changed", _failed(502))),
        )
    finally:
        await writer.close()
    rows = {
        r["product_id"]: r
        for r in await database.pool.fetch(
            "SELECT product_id, status, data, last_outcome, last_http_status, failure_count,"
            " etag FROM products"
        )
    }
    assert rows["p0"]["status"] == "verified" and rows["p0"]["data"]["unit_price"] == "19.90"
    assert rows["p0"]["etag"] == '"v1"'
    assert (rows["p1"]["last_outcome"], rows["p1"]["last_http_status"]) == ("fetch_error", 500)
    assert rows["p1"]["status"] == "unverified" and rows["p1"]["data"]["name"] == "Tag name"
    assert (rows["p2"]["last_http_status"], rows["p2"]["failure_count"]) == (502, 1)


async def test_two_decisions_for_one_product_in_one_batch_apply_in_order(
    database: Database,
) -> None:
    """A product finished twice in one batch (two lanes) gets both results, the later last."""
    merchant_id = await _merchant_with_products(database, 1)
    writer = ResultWriter(database, "owner")
    await writer.start()
    try:
        await asyncio.gather(
            writer.write(ResultRecord(merchant_id, "p0", "sweep", _failed(500))),
            writer.write(ResultRecord(merchant_id, "p0", "on_demand", _failed(503))),
        )
    finally:
        await writer.close()
    row = await database.pool.fetchrow(
        "SELECT last_http_status, failure_count FROM products WHERE product_id = 'p0'"
    )
    assert row is not None
    assert (row["last_http_status"], row["failure_count"]) == (503, 2)


async def test_values_round_trip_through_the_batch(database: Database) -> None:
    """Digest bytes, change-log values of every JSON shape, timestamps and requests land as
    written: a null old value is the jsonb null, a retry re-queues its request."""
    merchant_id = await _merchant_with_products(database, 2)
    # Ids as the engine has them: read from the database (asyncpg's own UUID type).
    done_id, retry_id = [
        await database.pool.fetchval(
            "INSERT INTO verification_requests (id, merchant_id, product_id, state, lease_owner)"
            " VALUES ($1, $2, $3, 'running', 'owner') RETURNING id",
            uuid.uuid4(),
            merchant_id,
            product_id,
        )
        for product_id in ("p0", "p1")
    ]
    digest = bytes(range(32))
    changes = (
        Change("status", "unverified", "verified"),
        Change("availability", None, "in_stock"),
        Change("categories", ["/A"], ["/A", '/A/B "quoted" \u00e9']),
        Change("custom_fields", {}, {"k": "v"}),
    )
    verified = replace(_verified("19.90"), content_sha256=digest, changes=changes)
    retry = replace(_failed(503), outcome="rate_limited", final=False, retry_in_s=120.0)
    claimed_at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    writer = ResultWriter(database, "owner")
    await writer.start()
    try:
        await asyncio.gather(
            writer.write(
                ResultRecord(merchant_id, "p0", "on_demand", verified, request_id=done_id)
            ),
            writer.write(
                ResultRecord(
                    merchant_id, "p1", "changed", retry, claimed_at=claimed_at, request_id=retry_id
                )
            ),
        )
    finally:
        await writer.close()
    p0 = await database.pool.fetchrow("SELECT * FROM products WHERE product_id = 'p0'")
    assert p0 is not None and p0["content_sha256"] == digest
    assert p0["data"] == verified.data and p0["availability"] == "in_stock"
    p1 = await database.pool.fetchrow("SELECT * FROM products WHERE product_id = 'p1'")
    assert p1 is not None and p1["changed_attempts"] == 1
    assert 110 < (p1["changed_due_at"] - datetime.now(UTC)).total_seconds() <= 120
    logged = await database.pool.fetch(
        "SELECT field, old_value, new_value, old_value IS NULL AS sql_null, cause,"
        " verification_id FROM changes ORDER BY id"
    )
    assert [(r["field"], r["old_value"], r["new_value"]) for r in logged] == [
        (c.field, c.old, c.new) for c in changes
    ]
    assert not any(r["sql_null"] for r in logged)
    assert {(r["cause"], r["verification_id"]) for r in logged} == {("on_demand", done_id)}
    requests = {
        r["id"]: r for r in await database.pool.fetch("SELECT * FROM verification_requests")
    }
    assert requests[done_id]["state"] == "done" and requests[done_id]["outcome"] == "verified"
    assert requests[done_id]["finished_at"] is not None
    assert requests[retry_id]["state"] == "queued" and requests[retry_id]["attempts"] == 1
    assert (requests[retry_id]["http_status"], requests[retry_id]["error"]) == (503, "HTTP 503")
    assert requests[retry_id]["not_before"] > datetime.now(UTC)


async def test_a_value_the_database_refuses_fails_only_its_own_result(database: Database) -> None:
    """A result PostgreSQL cannot store (a NUL character in text) fails alone: the other results
    of its batch are written, and the writer goes on with later batches."""
    merchant_id = await _merchant_with_products(database, 3)
    refused = replace(_failed(500), error="HTTP 500 \x00")
    writer = ResultWriter(database, "owner")
    await writer.start()
    try:
        outcomes = await asyncio.gather(
            writer.write(ResultRecord(merchant_id, "p0", "sweep", _verified("19.90"))),
            writer.write(ResultRecord(merchant_id, "p1", "sweep", refused)),
            writer.write(ResultRecord(merchant_id, "p2", "sweep", _failed(502))),
            return_exceptions=True,
        )
        assert outcomes[0] is None and outcomes[2] is None
        assert isinstance(outcomes[1], DatabaseError)
        await writer.write(ResultRecord(merchant_id, "p1", "sweep", _failed(503)))
    finally:
        await writer.close()
    rows = {
        r["product_id"]: r["last_http_status"]
        for r in await database.pool.fetch("SELECT product_id, last_http_status FROM products")
    }
    assert rows == {"p0": 200, "p1": 503, "p2": 502}
