"""Edge cases of the HTTP edge shared by every handler: odd ids, odd numbers, a lost database."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import products_api, sweeps_api, verify_api
from tests.merchant_api import api_client, merchant_with_key
from verifier.config import DatabaseConfig
from verifier.database import Database

ROUTES = (products_api.install_routes, verify_api.install_routes, sweeps_api.install_routes)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/products/a%00b/verify"),
        ("GET", "/v1/products/a%00b"),
        ("POST", "/v1/products/" + "x" * 256 + "/verify"),
    ],
)
async def test_ids_no_product_can_have_are_404_everywhere(
    database: Database, method: str, path: str
) -> None:
    """A NUL or an over-long product id is a JSON 404 on every product route, never a 500."""
    _, headers = await merchant_with_key(database, "shop-a")
    async with api_client(database, routes=ROUTES) as client:
        response = await client.request(method, path, headers=headers)
        body = await response.json()
    assert response.status == 404 and body["error"]["code"] == "not_found"


@pytest.mark.parametrize("limit", ["%C2%B2", "-1", "0", "1e3", "abc", "1001"])
@pytest.mark.parametrize("path", ["/v1/products", "/v1/sweeps"])
async def test_limits_must_be_plain_ascii_integers(
    database: Database, path: str, limit: str
) -> None:
    """?limit= with a superscript digit or out of range is a 400, not a 500."""
    _, headers = await merchant_with_key(database, "shop-a")
    async with api_client(database, routes=ROUTES) as client:
        response = await client.get(f"{path}?limit={limit}", headers=headers)
        body = await response.json()
    assert response.status == 400 and "limit" in body["error"]["message"]


async def test_a_lost_database_is_a_503_with_retry_after(db_dsn: str, tmp_path: Path) -> None:
    """When the database cannot be reached, the API answers 503 JSON, not a 500."""
    db = Database(DatabaseConfig(dsn=db_dsn, pool_min_size=1, pool_max_size=2), tmp_path)
    await db.open()
    _, headers = await merchant_with_key(db, "shop-a")
    async with api_client(db, routes=ROUTES) as client:
        await db.close()
        response = await client.get("/v1/products/p1", headers=headers)
        body = await response.json()
    assert response.status == 503
    assert body["error"]["code"] == "unavailable" and response.headers["Retry-After"] == "5"


async def test_product_ids_with_slashes_and_unicode_round_trip_url_encoded(
    database: Database,
) -> None:
    """Any UTF-8 product_id works in paths when URL-encoded ("a/b", accents, spaces)."""
    from urllib.parse import quote

    from tests.merchant_api import product

    _, headers = await merchant_with_key(database, "shop-a")
    async with api_client(database, routes=ROUTES) as client:
        for product_id in ("a/b", "été x", "import"):
            path = "/v1/products/" + quote(product_id, safe="")
            body = product(product_id, url=f"https://shop.example/p/{quote(product_id)}")
            put = await client.put(path, json=body, headers=headers)
            assert put.status in (200, 201), await put.text()
            got = await client.get(path, headers=headers)
            assert got.status == 200 and (await got.json())["product_id"] == product_id
            verify = await client.post(path + "/verify", headers=headers)
            assert verify.status == 202, await verify.text()
