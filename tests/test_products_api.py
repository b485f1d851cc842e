"""The merchant API's product endpoints on a real socket and real PostgreSQL."""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from ingest import verify_api
from ingest.products_api import install_routes
from tests.merchant_api import api_client, make_config, merchant_with_key, product
from verifier.database import Database


async def _insert_tag_product(
    database: Database, merchant_id: int, product_id: str, pending: dict[str, Any] | None = None
) -> None:
    """An unverified product as the tag path stores it."""
    data = product(product_id)
    await database.pool.execute(
        "INSERT INTO products (merchant_id, product_id, status, source, url, data, pending,"
        " pending_at) VALUES ($1, $2, 'unverified', 'tag', $3, $4, $5, now())",
        merchant_id,
        product_id,
        data["url"],
        data,
        pending,
    )


async def test_put_creates_then_reports_unchanged_then_updates(database: Database) -> None:
    """PUT answers 201 for a new product, 200 after; the product is verified, source api."""
    _, headers = await merchant_with_key(database, "shop-a")
    async with api_client(database) as client:
        body = product("p1", unit_price=1234.5, tags=["a", "b"])
        response = await client.put("/v1/products/p1", json=body, headers=headers)
        assert response.status == 201
        created = await response.json()
        assert created["unit_price"] == "1234.50"
        assert (created["status"], created["source"], created["usable"]) == (
            "verified",
            "api",
            True,
        )
        assert created["availability"] == "in_stock"
        response = await client.put("/v1/products/p1", json=body, headers=headers)
        assert response.status == 200
        assert (await response.json())["updated_at"] == created["updated_at"]
        body["availability"] = "OutOfStock"
        response = await client.put("/v1/products/p1", json=body, headers=headers)
        updated = await response.json()
        assert response.status == 200
        assert (updated["availability"], updated["usable"]) == ("out_of_stock", False)
        response = await client.get("/v1/products/p1", headers=headers)
        assert (await response.json())["availability"] == "out_of_stock"


async def test_put_takes_the_id_from_the_path_and_refuses_a_different_one(
    database: Database,
) -> None:
    """A body without product_id gets the path's; a different id in the body is 422."""
    _, headers = await merchant_with_key(database, "shop-a")
    async with api_client(database) as client:
        body = product("a/b é", url="https://shop.example/p/a%2Fb%20%C3%A9")
        del body["product_id"]
        path = "/v1/products/" + quote("a/b é", safe="")
        response = await client.put(path, json=body, headers=headers)
        assert response.status == 201
        assert (await response.json())["product_id"] == "a/b é"
        response = await client.get(path, headers=headers)
        assert response.status == 200
        response = await client.put("/v1/products/other", json=product("p1"), headers=headers)
        assert response.status == 422
        error = (await response.json())["error"]
        assert error["details"][0]["field"] == "product_id"
        response = await client.get("/v1/products/other", headers=headers)
        assert response.status == 404


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (orjson.dumps(product("p1", url="https://evil.example/p1")), "application/json", 422),
        (orjson.dumps({"product_id": "p1"}), "application/json", 422),
        (orjson.dumps([product("p1")]), "application/json", 422),
        (b"{not json", "application/json", 400),
        (orjson.dumps(product("p1")), "text/plain", 415),
        (b"{" + b" " * 5000 + b"}", "application/json", 413),
    ],
)
async def test_put_rejects_bad_bodies_with_json_errors(
    database: Database, body: bytes, content_type: str, status: int
) -> None:
    """Foreign hosts, missing fields, non-objects, bad JSON, wrong types and big bodies fail."""
    _, headers = await merchant_with_key(database, "shop-a")
    async with api_client(database, config=make_config(max_body_bytes=4096)) as client:
        response = await client.put(
            "/v1/products/p1", data=body, headers={**headers, "Content-Type": content_type}
        )
        assert response.status == status
        assert "error" in await response.json()
        response = await client.get("/v1/products/p1", headers=headers)
        assert response.status == 404


async def test_put_replaces_pending_tag_data_with_trusted_data(database: Database) -> None:
    """An unverified tag product with a pending observation becomes verified, pending cleared."""
    merchant, headers = await merchant_with_key(database, "shop-a")
    await _insert_tag_product(database, merchant.id, "p1", pending=product("p1", name="Tag"))
    async with api_client(database) as client:
        before = await (await client.get("/v1/products/p1", headers=headers)).json()
        assert before["status"] == "unverified" and before["pending_observation"] is not None
        response = await client.put("/v1/products/p1", json=product("p1"), headers=headers)
        assert response.status == 200
        after = await response.json()
        assert after["status"] == "verified" and after["pending_observation"] is None
        assert after["first_seen_at"] == before["first_seen_at"]


async def test_delete_marks_discontinued_and_keeps_the_product(database: Database) -> None:
    """DELETE makes the product verified-discontinued (not usable); unknown ids are 404."""
    _, headers = await merchant_with_key(database, "shop-a")
    async with api_client(database) as client:
        await client.put("/v1/products/p1", json=product("p1"), headers=headers)
        response = await client.delete("/v1/products/p1", headers=headers)
        assert response.status == 200
        gone = await response.json()
        assert (gone["availability"], gone["usable"], gone["status"]) == (
            "discontinued",
            False,
            "verified",
        )
        fetched = await (await client.get("/v1/products/p1", headers=headers)).json()
        assert fetched["availability"] == "discontinued" and fetched["name"] == "Product p1"
        response = await client.delete("/v1/products/nope", headers=headers)
        assert response.status == 404


async def test_a_key_never_reaches_another_merchants_products(database: Database) -> None:
    """Key A gets 404 for B's ids (read, delete, verify) and writes only ever create A's rows."""
    merchant_a, headers_a = await merchant_with_key(database, "shop-a")
    merchant_b, headers_b = await merchant_with_key(database, "shop-b", hosts=("b.example",))
    routes = (install_routes, verify_api.install_routes)
    async with api_client(database, routes=routes) as client:
        for product_id in ("secret-1", "secret-2"):
            body = product(product_id, host="b.example")
            response = await client.put(f"/v1/products/{product_id}", json=body, headers=headers_b)
            assert response.status == 201
        assert (await client.get("/v1/products/secret-1", headers=headers_a)).status == 404
        assert (await client.delete("/v1/products/secret-2", headers=headers_a)).status == 404
        verify = await client.post("/v1/products/secret-1/verify?wait=0", headers=headers_a)
        assert verify.status == 404
        verify = await client.post("/v1/products/secret-1/verify?wait=0", headers=headers_b)
        assert verify.status == 202
        verification_id = (await verify.json())["verification_id"]
        response = await client.get(f"/v1/verifications/{verification_id}", headers=headers_a)
        assert response.status == 404
        listing = await (await client.get("/v1/products", headers=headers_a)).json()
        assert listing == {"items": [], "next": None}
        # A write by A to the same id stays in A's catalog (and must use A's hosts).
        refused = product("secret-1", host="b.example")
        response = await client.put("/v1/products/secret-1", json=refused, headers=headers_a)
        assert response.status == 422
        response = await client.put(
            "/v1/products/secret-1", json=product("secret-1"), headers=headers_a
        )
        assert response.status == 201
        ndjson = orjson.dumps(product("secret-2", name="A's")) + b"\n"
        response = await client.post(
            "/v1/products/import",
            data=ndjson,
            headers={**headers_a, "Content-Type": "application/x-ndjson"},
        )
        assert (await response.json())["created"] == 1
        rows = await database.pool.fetch(
            "SELECT product_id, availability, data->>'name' AS name FROM products"
            " WHERE merchant_id = $1 ORDER BY product_id",
            merchant_b.id,
        )
        assert [tuple(row) for row in rows] == [
            ("secret-1", "in_stock", "Product secret-1"),
            ("secret-2", "in_stock", "Product secret-2"),
        ]
        count_a = await database.pool.fetchval(
            "SELECT count(*) FROM products WHERE merchant_id = $1", merchant_a.id
        )
        assert count_a == 2


async def _walk(client: Any, headers: dict[str, str], query: str) -> list[str]:
    seen: list[str] = []
    url: str | None = f"/v1/products?limit=7&{query}"
    for _ in range(1000):
        response = await client.get(url, headers=headers)
        assert response.status == 200
        page = await response.json()
        assert len(page["items"]) <= 7
        seen.extend(item["product_id"] for item in page["items"])
        if page["next"] is None:
            return seen
        url = f"/v1/products?limit=7&{query}&after={page['next']}"
    raise AssertionError("pagination did not end")


async def test_pagination_walks_every_filtered_item_exactly_once(database: Database) -> None:
    """Following `next` returns each matching product once, in id order, for every filter."""
    merchant, headers = await merchant_with_key(database, "shop-a")
    availabilities = itertools.cycle(["InStock", "OutOfStock", "Discontinued", None])
    verified: dict[str, str] = {}
    async with api_client(database) as client:
        lines = []
        for number in range(60):
            product_id = f"v{number:03d}-{'é' if number % 5 == 0 else 'x'}"
            availability = next(availabilities)
            body = product(product_id)
            if availability is not None:
                body["availability"] = availability
            lines.append(orjson.dumps(body))
            verified[product_id] = {
                "InStock": "in_stock",
                "OutOfStock": "out_of_stock",
                "Discontinued": "discontinued",
                None: "in_stock",
            }[availability]
        response = await client.post(
            "/v1/products/import",
            data=b"\n".join(lines),
            headers={**headers, "Content-Type": "application/x-ndjson"},
        )
        assert (await response.json())["created"] == 60
        unverified = [f"u{number:03d}" for number in range(25)]
        for product_id in unverified:
            await _insert_tag_product(database, merchant.id, product_id)
        everything = sorted([*verified, *unverified])
        assert await _walk(client, headers, "") == everything
        in_stock = sorted(pid for pid, value in verified.items() if value == "in_stock")
        assert await _walk(client, headers, "usable=true") == in_stock
        assert await _walk(client, headers, "availability=in_stock") == in_stock
        not_usable = sorted(set(everything) - set(in_stock))
        assert await _walk(client, headers, "usable=false") == not_usable
        assert await _walk(client, headers, "status=unverified") == sorted(unverified)
        gone = sorted(pid for pid, value in verified.items() if value == "discontinued")
        assert await _walk(client, headers, "status=verified&availability=discontinued") == gone
        default_page = await (await client.get("/v1/products", headers=headers)).json()
        assert len(default_page["items"]) == 85 and default_page["next"] is None
        blank = "/v1/products?status=&availability=&usable=&limit=&after="
        assert await (await client.get(blank, headers=headers)).json() == default_page


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "limit=-5",
        "limit=%C2%B2",
        "status=pending",
        "availability=maybe",
        "usable=perhaps",
        "usable=1",
        "after=%%%",
        "after=bm90LWNhbm9uaWNhbA=",
        "after=YQA",
    ],
)
async def test_bad_list_parameters_are_400(database: Database, query: str) -> None:
    """Out-of-range limits, unknown filter values and forged cursors are 400 JSON errors."""
    _, headers = await merchant_with_key(database, "shop-a")
    async with api_client(database) as client:
        response = await client.get(f"/v1/products?{query}", headers=headers)
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "bad_request"


@pytest.mark.parametrize("path_id", ["x" * 300, "a%00b"])
async def test_impossible_product_ids_in_the_path_are_404(database: Database, path_id: str) -> None:
    """Ids no product can have (over 255 characters, a NUL) are simply not found."""
    _, headers = await merchant_with_key(database, "shop-a")
    async with api_client(database) as client:
        for method in ("GET", "DELETE"):
            response = await client.request(method, f"/v1/products/{path_id}", headers=headers)
            assert response.status == 404
