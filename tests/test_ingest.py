"""The public ingest listener: tag events over real HTTP into a real PostgreSQL database."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.apps import make_ingest_app
from ingest.context import Services
from ingest.tag_events import MerchantTokens, install_routes
from verifier.config import Config, DatabaseConfig, IngestConfig
from verifier.database import Database
from verifier.ingest_writer import IngestUnavailable, IngestWriter
from verifier.metrics import Metrics
from verifier.product_schema import FIELDS, validate_product

TOKEN = "tok-shop-0123456789"
OTHER_TOKEN = "tok-other-0123456789"
HOSTS = ["shop.example", "www.shop.example"]
VISITED = f"/v1/ingest/{TOKEN}/product-visited"
NOT_FOUND = f"/v1/ingest/{TOKEN}/product-not-found"

Post = Callable[..., Awaitable[ClientResponse]]


def product(product_id: str = "p-1", **changes: Any) -> dict[str, Any]:
    """A valid tag product object, as the browser tag sends it."""
    body: dict[str, Any] = {
        "product_id": product_id,
        "url": f"https://shop.example/p/{product_id}",
        "name": f"Product {product_id}",
        "unit_price": "19.90",
        "availability": "InStock",
        "categories": ["/Home/Kitchen"],
    }
    body.update(changes)
    return body


async def insert_merchant(db: Database, slug: str, token: str, hosts: list[str]) -> int:
    """A merchant row (the merchant store is exercised by its own tests)."""
    async with db.pool.acquire() as conn:
        merchant_id: int = await conn.fetchval(
            "INSERT INTO merchants (slug, name, hosts, currency, ingest_token)"
            " VALUES ($1, $1, $2, 'EUR', $3) RETURNING id",
            slug,
            hosts,
            token,
        )
    return merchant_id


async def fetch_product(db: Database, product_id: str) -> dict[str, Any] | None:
    """The products row of the test merchant's product, as a dict."""
    async with db.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT p.* FROM products p JOIN merchants m ON m.id = p.merchant_id"
            " WHERE m.ingest_token = $1 AND p.product_id = $2",
            TOKEN,
            product_id,
        )
    return dict(row) if row is not None else None


async def mark_verified(db: Database, data: dict[str, Any]) -> None:
    """Turn a stored product into a verified one with the given data, nothing queued."""
    async with db.pool.acquire() as conn:
        await conn.execute(
            "UPDATE products SET status = 'verified', source = 'page', data = $2,"
            " availability = $3, availability_detail = $3, verified_at = now(),"
            " changed_due_at = NULL, pending = NULL, pending_at = NULL WHERE product_id = $1",
            data["product_id"],
            data,
            data.get("availability"),
        )


@pytest.fixture
async def merchant_id(database: Database) -> int:
    """The test merchant (hosts shop.example and www.shop.example, EUR)."""
    await insert_merchant(database, "other", OTHER_TOKEN, ["other.example"])
    return await insert_merchant(database, "shop", TOKEN, HOSTS)


@pytest.fixture
def metrics() -> Metrics:
    """The app's metrics registry."""
    return Metrics()


@pytest.fixture
async def client(
    database: Database, merchant_id: int, metrics: Metrics
) -> AsyncIterator[TestClient[Any, Any]]:
    """A real HTTP client on the real ingest app (own writer, small body limit)."""
    config = Config(ingest=IngestConfig(max_body_bytes=512_000))
    app = make_ingest_app(Services(config, database, metrics), [install_routes])
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
def post(client: TestClient[Any, Any]) -> Post:
    """POST a JSON value to a path."""

    async def _post(path: str, value: Any, **kwargs: Any) -> ClientResponse:
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        return await client.post(path, data=json.dumps(value), headers=headers, **kwargs)

    return _post


async def error_of(response: ClientResponse, status: int) -> dict[str, Any]:
    """Assert the JSON error shape and status; return the error object."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body["error"]) == {"code", "message", "details"}
    error: dict[str, Any] = body["error"]
    return error


# --- storing observations ---------------------------------------------------------------------


async def test_new_product_is_stored_unverified_and_queued(post: Post, database: Database) -> None:
    """A first visit stores the tag data as data and pending, unverified, queued for changes."""
    response = await post(VISITED, product("p-1", unit_price=" 1234.5 "))
    assert response.status == 202
    assert await response.json() == {"accepted": 1, "rejected": 0, "errors": []}
    row = await fetch_product(database, "p-1")
    assert row is not None
    assert (row["status"], row["source"], row["availability"]) == ("unverified", "tag", None)
    assert row["data"]["unit_price"] == "1234.50"
    assert row["data"]["availability"] == "in_stock"
    assert row["data"]["currency"] == "EUR"
    assert row["pending"] == row["data"]
    assert row["changed_due_at"] is not None and row["pending_at"] is not None


async def test_unverified_product_takes_the_latest_tag_data(post: Post, database: Database) -> None:
    """Visits of an unverified product replace its data and pending with the newest tag data."""
    assert (await post(VISITED, product("p-1", name="Old name"))).status == 202
    assert (await post(VISITED, product("p-1", name="New name", unit_price=5))).status == 202
    row = await fetch_product(database, "p-1")
    assert row is not None
    assert row["data"]["name"] == row["pending"]["name"] == "New name"
    assert row["data"]["unit_price"] == "5.00"
    assert row["url"] == "https://shop.example/p/p-1"


async def test_tag_data_never_overwrites_verified_data(post: Post, database: Database) -> None:
    """A differing price on a verified product becomes pending and queues it; data stays."""
    await post(VISITED, product("p-1"))
    verified = {"product_id": "p-1", "name": "Product p-1", "unit_price": "19.90"}
    await mark_verified(database, {**verified, "availability": "in_stock"})
    response = await post(VISITED, product("p-1", unit_price="17.50", url="https://shop.example/x"))
    assert response.status == 202
    row = await fetch_product(database, "p-1")
    assert row is not None
    assert row["status"] == "verified"
    assert row["data"]["unit_price"] == "19.90"
    assert row["url"] == "https://shop.example/p/p-1"
    assert row["pending"]["unit_price"] == "17.50"
    assert row["pending_at"] is not None
    assert row["changed_due_at"] is not None


@pytest.mark.parametrize(
    ("change", "queued"),
    [
        ({}, False),
        ({"unit_price": "19.9000"}, False),
        ({"description": "new words", "brand": "ACME"}, False),
        ({"availability": None}, False),
        ({"unit_price": "19.91"}, True),
        ({"name": "Another name"}, True),
        ({"availability": "OutOfStock"}, True),
        ({"availability": "PreOrder"}, False),
    ],
)
async def test_verified_product_is_queued_only_on_material_difference(
    post: Post, database: Database, change: dict[str, Any], queued: bool
) -> None:
    """Only a different name, price or availability queues a verified product."""
    await post(VISITED, product("p-1"))
    verified = {"product_id": "p-1", "name": "Product p-1", "unit_price": "19.90"}
    await mark_verified(database, {**verified, "availability": "in_stock"})
    assert (await post(VISITED, product("p-1", **change))).status == 202
    row = await fetch_product(database, "p-1")
    assert row is not None
    assert row["pending"] is not None
    assert (row["changed_due_at"] is not None) is queued


async def test_repeated_visits_keep_one_row_and_one_queue_marker(
    post: Post, database: Database
) -> None:
    """Repeated differing visits neither duplicate the product nor move its queue marker."""
    await post(VISITED, product("p-1"))
    await mark_verified(
        database, {"product_id": "p-1", "name": "Product p-1", "unit_price": "19.90"}
    )
    await post(VISITED, product("p-1", unit_price="1.00"))
    first = await fetch_product(database, "p-1")
    for price in ("2.00", "3.00", "4.00"):
        assert (await post(VISITED, product("p-1", unit_price=price))).status == 202
    last = await fetch_product(database, "p-1")
    assert first is not None and last is not None
    assert last["changed_due_at"] == first["changed_due_at"]
    assert last["pending"]["unit_price"] == "4.00"
    async with database.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM products") == 1


async def test_identical_visit_leaves_the_row_untouched(post: Post, database: Database) -> None:
    """A visit repeating the pending observation writes nothing and re-queues nothing."""
    await post(VISITED, product("p-1", unit_price="1.00"))
    await mark_verified(database, {"product_id": "p-1", "name": "Product p-1", "unit_price": "2"})
    await post(VISITED, product("p-1", unit_price="1.00"))
    async with database.pool.acquire() as conn:
        await conn.execute("UPDATE products SET changed_due_at = NULL")
    before = await fetch_product(database, "p-1")
    assert (await post(VISITED, product("p-1", unit_price=" 1.0 "))).status == 202
    assert await fetch_product(database, "p-1") == before
    assert (await post(VISITED, product("p-1", unit_price="1.50"))).status == 202
    after = await fetch_product(database, "p-1")
    assert after is not None and before is not None
    assert after["changed_due_at"] is not None and after["updated_at"] > before["updated_at"]


async def test_duplicate_ids_in_one_batch_last_one_wins(post: Post, database: Database) -> None:
    """Within one request a later object with the same product_id replaces the earlier one."""
    batch = [product("p-1", name="first"), product("p-2"), product("p-1", name="last")]
    response = await post(VISITED, batch)
    assert response.status == 202
    assert (await response.json())["accepted"] == 3
    row = await fetch_product(database, "p-1")
    assert row is not None and row["data"]["name"] == "last"


async def test_partial_batch_keeps_good_items_and_reports_bad_ones(
    post: Post, database: Database, metrics: Metrics
) -> None:
    """Bad items are reported by index and field while the good ones are stored."""
    batch = [
        product("p-1"),
        product("p-2", unit_price="-1"),
        {"product_id": "p-3"},
        product("p-4", url="https://evil.example/p-4"),
        product("p-5"),
    ]
    response = await post(VISITED, batch)
    assert response.status == 202
    body = await response.json()
    assert (body["accepted"], body["rejected"]) == (2, 3)
    fields = {(e["index"], e["field"]) for e in body["errors"]}
    assert {(1, "unit_price"), (2, "url"), (2, "name"), (2, "unit_price"), (3, "url")} <= fields
    assert await fetch_product(database, "p-1") is not None
    assert await fetch_product(database, "p-5") is not None
    assert await fetch_product(database, "p-2") is None
    assert metrics.ingest_events.labels("accepted")._value.get() == 2
    assert metrics.ingest_events.labels("rejected")._value.get() == 3


async def test_all_bad_items_give_422_with_details(post: Post, database: Database) -> None:
    """A request without one valid product is refused with per-item details."""
    error = await error_of(await post(VISITED, [{"name": "x"}, 17]), 422)
    assert {(d["index"], d["field"]) for d in error["details"]} >= {(0, "product_id"), (1, None)}
    single = await error_of(await post(VISITED, product("p-1", unit_price="abc")), 422)
    assert single["details"] == [
        {"index": None, "field": "unit_price", "message": "must be a decimal number such as 12.50"}
    ]
    async with database.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM products") == 0


async def test_products_are_stored_under_the_tokens_merchant(
    post: Post, database: Database
) -> None:
    """The token decides the merchant: its hosts, its currency, its rows."""
    other = f"/v1/ingest/{OTHER_TOKEN}/product-visited"
    error = await error_of(await post(other, product("p-1")), 422)
    assert error["details"][0]["field"] == "url"
    assert (await post(other, product("p-1", url="http://OTHER.example:81/a"))).status == 202
    assert await fetch_product(database, "p-1") is None


# --- request errors ----------------------------------------------------------------------------


async def test_unknown_token_gives_404_unknown_token(post: Post) -> None:
    """A token no merchant has is a JSON 404 with code unknown_token."""
    error = await error_of(await post("/v1/ingest/nope/product-visited", product()), 404)
    assert error["code"] == "unknown_token"
    error = await error_of(await post(f"/v1/ingest/{'x' * 300}/product-not-found", {}), 404)
    assert error["code"] == "unknown_token"


async def test_malformed_json_gives_400(client: TestClient[Any, Any]) -> None:
    """A body that is not JSON is a JSON 400."""
    headers = {"Content-Type": "application/json"}
    for body in (b"{", b"", b"\xff\xfe", b'{"a": NaN}'):
        await error_of(await client.post(VISITED, data=body, headers=headers), 400)


@pytest.mark.parametrize(
    "content_type", ["application/xml", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_other_content_types_give_415(
    client: TestClient[Any, Any], content_type: str
) -> None:
    """Only JSON and text/plain bodies are read."""
    data = json.dumps(product())
    response = await client.post(VISITED, data=data, headers={"Content-Type": content_type})
    await error_of(response, 415)


async def test_text_plain_beacons_are_accepted(client: TestClient[Any, Any]) -> None:
    """sendBeacon's text/plain;charset=UTF-8 bodies are parsed as JSON."""
    headers = {"Content-Type": "text/plain;charset=UTF-8"}
    response = await client.post(VISITED, data=json.dumps(product()), headers=headers)
    assert response.status == 202


async def test_empty_array_gives_400(post: Post) -> None:
    """An empty batch is a bad request."""
    await error_of(await post(VISITED, []), 400)


async def test_more_than_500_items_gives_413(post: Post, database: Database) -> None:
    """A batch over 500 objects is refused whole; exactly 500 is fine."""
    await error_of(await post(VISITED, [product(f"p-{i}") for i in range(501)]), 413)
    response = await post(VISITED, [product(f"p-{i}") for i in range(500)])
    assert response.status == 202
    assert (await response.json())["accepted"] == 500


async def test_body_over_max_body_bytes_gives_413(client: TestClient[Any, Any]) -> None:
    """A body over ingest.max_body_bytes is refused, announced or streamed."""
    big = json.dumps(product(description="x" * 600_000)).encode()
    headers = {"Content-Type": "application/json"}
    await error_of(await client.post(VISITED, data=big, headers=headers), 413)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    await error_of(await client.post(VISITED, data=chunks(), headers=headers), 413)


async def test_unknown_route_and_wrong_method_are_json_errors(client: TestClient[Any, Any]) -> None:
    """404 for an unknown path and 405 with Allow for GET on an ingest route, both JSON."""
    await error_of(await client.post("/v1/ingest/x/product-liked", json={}), 404)
    response = await client.get(VISITED)
    await error_of(response, 405)
    assert "POST" in response.headers["Allow"]


async def test_database_failure_gives_503(
    merchant_id: int, db_dsn: str, tmp_path: Any, metrics: Metrics
) -> None:
    """When the data cannot be committed the answer is a JSON 503 with Retry-After, not 202."""
    db = Database(DatabaseConfig(dsn=db_dsn, pool_min_size=1, pool_max_size=4), tmp_path)
    await db.open()
    app = make_ingest_app(Services(Config(), db, metrics), [install_routes])
    async with TestClient(TestServer(app)) as client:
        assert (await client.post(VISITED, json=product("p-1"))).status == 202
        await db.close()
        response = await client.post(VISITED, json=product("p-2"))
        await error_of(response, 503)
        assert response.headers["Retry-After"] == "1"


# --- product-not-found -------------------------------------------------------------------------


async def test_not_found_queues_known_products_and_lists_unknown_ones(
    post: Post, database: Database
) -> None:
    """Known ids get a changed-lane marker (kept if already set); unknown ids are reported."""
    await post(VISITED, [product("p-1"), product("p-2")])
    await mark_verified(database, {"product_id": "p-1", "name": "P", "unit_price": "1.00"})
    queued_before = (await fetch_product(database, "p-2") or {})["changed_due_at"]
    response = await post(NOT_FOUND, [{"product_id": "p-1"}, {"product_id": "p-2"}, "p-9", {}])
    assert response.status == 202
    body = await response.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert body["unknown_product_ids"] == ["p-9"]
    assert body["errors"] == [{"index": 3, "field": "product_id", "message": "is required"}]
    assert (await fetch_product(database, "p-1") or {})["changed_due_at"] is not None
    assert (await fetch_product(database, "p-2") or {})["changed_due_at"] == queued_before


async def test_not_found_single_object_and_errors(post: Post) -> None:
    """A single object works; a request without any valid id is a 422."""
    response = await post(NOT_FOUND, {"product_id": 42})
    assert response.status == 202
    assert (await response.json())["unknown_product_ids"] == ["42"]
    await error_of(await post(NOT_FOUND, {"product_id": ""}), 422)
    await error_of(await post(NOT_FOUND, []), 400)


# --- CORS --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [VISITED, NOT_FOUND])
@pytest.mark.parametrize(
    ("origin", "granted"),
    [
        ("https://shop.example", True),
        ("http://WWW.shop.example:8443", True),
        ("https://evil.example", False),
        ("https://shop.example.evil.example", False),
        ("null", False),
    ],
)
async def test_cors_preflight_is_granted_to_allowed_hosts_only(
    client: TestClient[Any, Any], path: str, origin: str, granted: bool
) -> None:
    """Preflights from the merchant's hosts get the CORS grant; others get none."""
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    response = await client.options(path, headers=headers)
    assert response.status == 204
    assert response.headers["Vary"] == "Origin"
    if granted:
        assert response.headers["Access-Control-Allow-Origin"] == origin
        assert response.headers["Access-Control-Allow-Methods"] == "POST"
        assert response.headers["Access-Control-Allow-Headers"] == "Content-Type"
        assert int(response.headers["Access-Control-Max-Age"]) > 0
    else:
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_header_on_responses_of_allowed_origins(post: Post, database: Database) -> None:
    """Successes and errors carry the grant for allowed origins; others are still processed."""
    allowed = {"Origin": "https://shop.example"}
    response = await post(VISITED, product("p-1"), headers=allowed)
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    response = await post(VISITED, {"product_id": "x"}, headers=allowed)
    assert response.status == 422
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    response = await post(VISITED, product("p-2"), headers={"Origin": "https://evil.example"})
    assert response.status == 202
    assert "Access-Control-Allow-Origin" not in response.headers
    assert response.headers["Vary"] == "Origin"
    assert await fetch_product(database, "p-2") is not None


async def test_cors_preflight_with_unknown_token_is_404(client: TestClient[Any, Any]) -> None:
    """A preflight for a token nobody has is a JSON 404."""
    response = await client.options(
        "/v1/ingest/nope/product-visited", headers={"Origin": "https://shop.example"}
    )
    await error_of(response, 404)


# --- concurrency and group commit ---------------------------------------------------------------


async def test_200_concurrent_requests_are_all_committed(
    post: Post, database: Database, metrics: Metrics
) -> None:
    """Concurrent requests each get 202 and every product is stored exactly once."""
    responses = await asyncio.gather(
        *(post(VISITED, product(f"p-{i}", unit_price=i)) for i in range(200))
    )
    assert [r.status for r in responses] == [202] * 200
    async with database.pool.acquire() as conn:
        rows = await conn.fetch("SELECT product_id, data FROM products")
    assert {r["product_id"]: r["data"]["unit_price"] for r in rows} == {
        f"p-{i}": f"{i}.00" for i in range(200)
    }
    committed = next(iter(metrics.ingest_batch_rows.collect())).samples
    assert {s.name: s.value for s in committed}["catalog_verifier_ingest_commit_rows_sum"] == 200


async def test_50_clients_posting_one_product_leave_one_row_with_the_latest_data(
    post: Post, database: Database
) -> None:
    """In each round 50 clients post the same product; after it, the row holds that round's data."""
    for round_number in range(4):
        responses = await asyncio.gather(
            *(
                post(VISITED, product("p-1", name=f"round {round_number} client {c}"))
                for c in range(50)
            )
        )
        assert {r.status for r in responses} == {202}
        async with database.pool.acquire() as conn:
            rows = await conn.fetch("SELECT data FROM products")
        assert len(rows) == 1
        assert rows[0]["data"]["name"].startswith(f"round {round_number} client ")


async def test_writer_commits_one_product_in_hand_in_order(
    database: Database, merchant_id: int
) -> None:
    """Writes of one product handed in one after the other commit in that order."""
    writer = IngestWriter(database, Metrics(), writers=3)
    await writer.start()
    try:
        rows = [product("p-1", name=f"version {i}") for i in range(50)]
        canonical = [
            validate_product(row, allowed_hosts=HOSTS, default_currency="EUR")[0] for row in rows
        ]
        await asyncio.gather(*(writer.write(merchant_id, [row]) for row in canonical if row))
    finally:
        await writer.close()
    stored = await fetch_product(database, "p-1")
    assert stored is not None and stored["data"]["name"] == "version 49"


async def test_writer_coalesces_concurrent_writes_into_few_commits(
    database: Database, merchant_id: int
) -> None:
    """Writes queued while the writer is busy share one statement."""
    metrics = Metrics()
    writer = IngestWriter(database, metrics, writers=1)
    await writer.start()
    try:
        rows = [
            validate_product(product(f"p-{i}"), allowed_hosts=HOSTS, default_currency="EUR")[0]
            for i in range(100)
        ]
        await asyncio.gather(*(writer.write(merchant_id, [row]) for row in rows if row))
    finally:
        await writer.close()
    samples = {s.name: s.value for s in next(iter(metrics.ingest_batch_rows.collect())).samples}
    assert samples["catalog_verifier_ingest_commit_rows_sum"] == 100
    assert samples["catalog_verifier_ingest_commit_rows_count"] < 100


async def test_writer_close_commits_what_is_queued_then_refuses(
    database: Database, merchant_id: int
) -> None:
    """close() flushes queued writes; later writes fail instead of hanging."""
    writer = IngestWriter(database, Metrics(), writers=2)
    row = validate_product(product("p-1"), allowed_hosts=HOSTS, default_currency="EUR")[0]
    assert row is not None
    pending = asyncio.ensure_future(writer.write(merchant_id, [row]))
    await asyncio.sleep(0)  # one loop step: the task queues its rows and waits for the commit
    await writer.close()
    await asyncio.wait_for(pending, timeout=5)
    assert await fetch_product(database, "p-1") is not None
    with pytest.raises(IngestUnavailable, match="shutting down"):
        await writer.write(merchant_id, [row])


async def test_token_cache_serves_hits_and_misses_until_they_expire(
    database: Database, merchant_id: int
) -> None:
    """Lookups are cached (negative ones shorter) and refreshed after their TTL."""
    now = [0.0]
    tokens = MerchantTokens(database, ttl_s=10, negative_ttl_s=2, clock=lambda: now[0])
    assert await tokens.get("new-token") is None
    found = await tokens.get(TOKEN)
    assert found is not None and found.id == merchant_id
    async with database.pool.acquire() as conn:
        await conn.execute(
            "UPDATE merchants SET ingest_token = 'new-token' WHERE id = $1", found.id
        )
    now[0] = 1.0
    assert await tokens.get("new-token") is None
    assert await tokens.get(TOKEN) == found
    now[0] = 3.0
    assert await tokens.get("new-token") == found
    now[0] = 11.0
    assert await tokens.get(TOKEN) is None


# --- property: arbitrary JSON in any field -----------------------------------------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
_counter = itertools.count()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    field=st.sampled_from([*FIELDS, "custom_field_1", "unknown_field"]),
    value=_json_values,
    as_batch=st.booleans(),
)
async def test_any_json_in_any_field_never_gives_500_nor_loses_valid_products(
    post: Post, database: Database, field: str, value: Any, as_batch: bool
) -> None:
    """Any JSON value in any field gives 202 or a 4xx error body; a valid sibling is stored."""
    number = next(_counter)
    valid = product(f"valid-{number}", name=f"valid {number}")
    odd = product(f"odd-{number}")
    odd[field] = value
    response = await post(VISITED, [odd, valid] if as_batch else odd)
    assert response.status == 202 or 400 <= response.status < 500, await response.text()
    if response.status != 202:
        await error_of(response, response.status)
    if as_batch:
        assert response.status == 202
        row = await fetch_product(database, f"valid-{number}")
        expected, _ = validate_product(valid, allowed_hosts=HOSTS, default_currency="EUR")
        assert row is not None and row["data"] == expected
