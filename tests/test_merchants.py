"""Merchants, API keys and Bearer authentication, on real PostgreSQL and a real API socket."""

from __future__ import annotations

import hashlib

import pytest

from tests.merchant_api import api_client, merchant_with_key
from verifier.database import Database
from verifier.exceptions import Conflict, InvalidInput, NotFound
from verifier.merchants import ApiKeyStore, MerchantStore, parse_api_key


async def test_create_merchant_normalises_hosts_and_draws_a_random_token(
    database: Database,
) -> None:
    """Hosts are stored lower-case without duplicates; each merchant gets its own long token."""
    store = MerchantStore(database)
    a = await store.create("shop-a", ["Shop.Example.", "shop.example", "[::1]", "Bücher.example"])
    b = await store.create("shop-b", ["127.0.0.1"], name="Shop B", currency="USD")
    assert a.hosts == ("shop.example", "::1", "xn--bcher-kva.example")
    assert a.name == "shop-a" and a.currency == "EUR"
    assert (b.name, b.currency, b.hosts) == ("Shop B", "USD", ("127.0.0.1",))
    assert a.ingest_token != b.ingest_token and len(a.ingest_token) >= 32
    assert [m.slug for m in await store.list()] == ["shop-a", "shop-b"]
    assert (await store.get("shop-b")).id == b.id


async def test_duplicate_slug_is_a_conflict(database: Database) -> None:
    """A second merchant with a taken slug is refused."""
    store = MerchantStore(database)
    await store.create("shop-a", ["shop.example"])
    with pytest.raises(Conflict):
        await store.create("shop-a", ["other.example"])


@pytest.mark.parametrize(
    ("slug", "hosts", "currency"),
    [
        ("Shop", ["shop.example"], "EUR"),
        ("-shop", ["shop.example"], "EUR"),
        ("s", ["shop.example"], "EUR"),
        ("shop", [], "EUR"),
        ("shop", ["shop.example:8080"], "EUR"),
        ("shop", ["https://shop.example/"], "EUR"),
        ("shop", ["bad_host.example"], "EUR"),
        ("shop", ["shop.example"], "euro"),
    ],
)
async def test_invalid_merchant_fields_are_rejected(
    database: Database, slug: str, hosts: list[str], currency: str
) -> None:
    """Bad slugs, hosts with ports or paths, no hosts and bad currencies are InvalidInput."""
    with pytest.raises(InvalidInput):
        await MerchantStore(database).create(slug, hosts, currency=currency)
    assert await MerchantStore(database).list() == []


async def test_unknown_slug_is_not_found(database: Database) -> None:
    """Looking up a merchant that does not exist raises NotFound."""
    with pytest.raises(NotFound):
        await MerchantStore(database).get("nobody")


async def test_key_secret_is_stored_only_as_sha256(database: Database) -> None:
    """The database holds the key id and the secret's sha256, never the secret itself."""
    merchant = await MerchantStore(database).create("shop-a", ["shop.example"])
    key = await ApiKeyStore(database).create(merchant)
    parsed = parse_api_key(key.key)
    assert parsed is not None and parsed[0] == key.key_id
    secret = parsed[1]
    row = await database.pool.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", key.key_id)
    assert row is not None
    assert bytes(row["secret_sha256"]) == hashlib.sha256(secret.encode()).digest()
    dump = await database.pool.fetchval("SELECT string_agg(t::text, ' ') FROM api_keys t")
    assert secret not in dump and key.key not in dump


async def test_authenticate_accepts_the_key_and_refuses_forgeries(database: Database) -> None:
    """The real key maps to its merchant; a changed secret, unknown id or junk maps to None."""
    merchant = await MerchantStore(database).create("shop-a", ["shop.example"])
    keys = ApiKeyStore(database)
    key = await keys.create(merchant)
    found = await keys.authenticate(key.key)
    assert found is not None and found.id == merchant.id
    forged_secret = key.key[:-1] + ("A" if key.key[-1] != "A" else "B")
    forged_id = f"cvk_{'0' * 16}_{key.key.rsplit('_', 1)[1]}"
    for forged in (forged_secret, forged_id, "cvk_", "", key.key + "x", key.key.upper()):
        assert await keys.authenticate(forged) is None


async def test_revoked_key_is_refused_at_once_and_revoke_is_idempotent(
    database: Database,
) -> None:
    """After revoke the very next authentication fails; revoking twice keeps the first time."""
    merchant = await MerchantStore(database).create("shop-a", ["shop.example"])
    keys = ApiKeyStore(database)
    key = await keys.create(merchant)
    assert await keys.authenticate(key.key) is not None
    first = await keys.revoke(key.key_id)
    assert await keys.authenticate(key.key) is None
    second = await keys.revoke(key.key_id)
    assert first.revoked_at is not None and second.revoked_at == first.revoked_at
    listed = await keys.list(merchant)
    assert [(k.key_id, k.revoked_at) for k in listed] == [(key.key_id, first.revoked_at)]
    assert listed[0].last_used_at is not None
    with pytest.raises(NotFound):
        await keys.revoke("0123456789abcdef")


async def test_missing_forged_and_revoked_keys_get_401_with_bearer_challenge(
    database: Database,
) -> None:
    """The API answers 401 JSON with WWW-Authenticate: Bearer, and a revoked key stops at once."""
    _, headers = await merchant_with_key(database, "shop-a")
    key_id = headers["Authorization"].split("_")[1]
    async with api_client(database) as client:
        response = await client.get("/v1/products")
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        body = await response.json()
        assert body["error"]["code"] == "unauthorized"
        for value in ("Bearer cvk_nope", "Basic dXNlcjpwYXNz", headers["Authorization"] + "x"):
            response = await client.get("/v1/products", headers={"Authorization": value})
            assert response.status == 401, value
            assert "Bearer" in response.headers["WWW-Authenticate"]
        response = await client.get("/v1/products", headers=headers)
        assert response.status == 200
        await ApiKeyStore(database).revoke(key_id)
        response = await client.get("/v1/products", headers=headers)
        assert response.status == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
