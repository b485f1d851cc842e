"""The verification engine end to end: real PostgreSQL, a real local shop, the real fetcher."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from ingest.context import Services
from tests.shop_server import Page, RunningShop, ShopState, running_shop
from verifier.config import Config
from verifier.database import Database
from verifier.engine import VerificationEngine, job_from_row, merchant_hosts
from verifier.hostslot import Lane
from verifier.merchants import Merchant, MerchantStore
from verifier.metrics import Metrics
from verifier.verify_requests import CompletionWaiter, request_verification


def tag_page(product_id: str, name: str, price: str, availability: str = "InStock") -> bytes:
    """A product page with the hidden cn_product_visited block."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>shop</title></head><body>"
        f"<h1>{name}</h1><div class='cn_product_visited' style='display:none'>"
        f"<span class='product_id'>{product_id}</span><span class='name'>{name}</span>"
        f"<span class='unit_price'>{price}</span><span class='availability'>{availability}</span>"
        "<span class='brand'>Acme</span><span class='category'>/Kitchen/Mugs</span>"
        "</div></body></html>"
    ).encode()


def not_found_tag_page(product_id: str) -> bytes:
    return (
        "<html><body><div class='cn_product_not_found' style='display:none'>"
        f"<span class='product_id'>{product_id}</span></div></body></html>"
    ).encode()


@dataclass
class Env:
    db: Database
    shop: RunningShop
    merchant: Merchant
    engine: VerificationEngine
    waiter: CompletionWaiter

    async def add_product(self, product_id: str, path: str, **columns: Any) -> None:
        data = {
            "product_id": product_id,
            "url": self.shop.url(path),
            "name": "Tag name",
            "unit_price": "9.99",
        }
        await self.db.pool.execute(
            "INSERT INTO products (merchant_id, product_id, status, source, url, data, pending, "
            "availability, etag, content_sha256, changed_due_at) "
            "VALUES ($1, $2, $3, 'tag', $4, $5, $6, $7, $8, $9, $10)",
            self.merchant.id,
            product_id,
            columns.get("status", "unverified"),
            self.shop.url(path),
            columns.get("data", data),
            columns.get("pending", data),
            columns.get("availability"),
            columns.get("etag"),
            columns.get("content_sha256"),
            columns.get("changed_due_at"),
        )

    async def verify(self, product_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
        row = await request_verification(self.db, self.merchant.id, product_id)
        self.engine.wake()
        done = await self.waiter.wait(self.merchant.id, row["id"], timeout_s)
        assert done["state"] == "done", dict(done)
        return dict(done)

    async def product(self, product_id: str) -> dict[str, Any]:
        row = await self.db.pool.fetchrow(
            "SELECT * FROM products WHERE merchant_id = $1 AND product_id = $2",
            self.merchant.id,
            product_id,
        )
        assert row is not None
        return dict(row)


@pytest.fixture
async def env(database: Database) -> AsyncIterator[Env]:
    state = ShopState()
    async with running_shop(state) as shop:
        merchant = await MerchantStore(database).create("shop-a", [shop.host])
        config = Config.model_validate(
            {
                "crawler": {
                    "allow_private_networks": True,
                    "respect_robots_txt": False,
                    "per_host_rate": 200.0,
                    "timeout_s": 5.0,
                }
            }
        )
        services = Services(config=config, db=database, metrics=Metrics())
        engine = VerificationEngine(services, poll_s=0.05, lease_s=5.0)
        task = asyncio.create_task(engine.run())
        waiter = CompletionWaiter(database)
        try:
            yield Env(database, shop, merchant, engine, waiter)
        finally:
            await waiter.close()
            await engine.drain(2.0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_on_demand_verifies_an_unverified_product_from_its_page(env: Env) -> None:
    """The page's tag becomes the verified snapshot; the tag data that matched is cleared."""
    env.shop.state.pages["/p/1"] = Page(tag_page("P1", "Tag name", "9.99"))
    await env.add_product("P1", "/p/1")
    done = await env.verify("P1")
    assert done["outcome"] == "verified" and done["http_status"] == 200
    product = await env.product("P1")
    assert product["status"] == "verified" and product["availability"] == "in_stock"
    assert Decimal(product["data"]["unit_price"]) == Decimal("9.99")
    assert product["data"]["brand"] == "Acme" and product["data"]["categories"] == ["/Kitchen/Mugs"]
    assert product["pending"] is None and product["verified_at"] is not None
    changes = await env.db.pool.fetch("SELECT field FROM changes WHERE product_id = 'P1'")
    assert "status" in {c["field"] for c in changes}


async def test_page_price_wins_over_tag_data_and_is_logged(env: Env) -> None:
    """A forged tag price is replaced by the page's price; the change log keeps old and new."""
    env.shop.state.pages["/p/2"] = Page(tag_page("P2", "Tag name", " 1234.50 "))
    await env.add_product("P2", "/p/2")
    await env.verify("P2")
    product = await env.product("P2")
    assert Decimal(product["data"]["unit_price"]) == Decimal("1234.50")
    row = await env.db.pool.fetchrow(
        "SELECT old_value, new_value FROM changes WHERE product_id = 'P2' AND field = 'unit_price'"
    )
    assert row is not None and Decimal(row["new_value"]) == Decimal("1234.50")
    assert Decimal(row["old_value"]) == Decimal("9.99")


async def test_404_discontinues_the_product(env: Env) -> None:
    """A 404 on verify-now makes the product discontinued (and not usable)."""
    env.shop.state.pages["/p/gone"] = Page(b"gone", status=404)
    await env.add_product("P3", "/p/gone", status="verified", availability="in_stock")
    done = await env.verify("P3")
    assert done["outcome"] == "not_found" and done["http_status"] == 404
    assert (await env.product("P3"))["availability"] == "discontinued"


async def test_not_found_tag_discontinues_the_product(env: Env) -> None:
    """A cn_product_not_found block on a 200 page means the product is gone."""
    env.shop.state.pages["/p/nf"] = Page(not_found_tag_page("P4"))
    await env.add_product("P4", "/p/nf", status="verified", availability="in_stock")
    assert (await env.verify("P4"))["outcome"] == "not_found"
    assert (await env.product("P4"))["availability"] == "discontinued"


async def test_page_of_another_product_is_a_mismatch(env: Env) -> None:
    """A page describing another product_id leaves the product unverified."""
    env.shop.state.pages["/p/5"] = Page(tag_page("OTHER", "Other", "5.00"))
    await env.add_product("P5", "/p/5")
    done = await env.verify("P5")
    assert done["outcome"] == "mismatch" and "OTHER" in done["error"]
    assert (await env.product("P5"))["status"] == "unverified"


async def test_page_without_product_data_is_unparseable(env: Env) -> None:
    """No tag and no schema.org data: unparseable, nothing verified."""
    env.shop.state.pages["/p/6"] = Page(b"<html><body><p>hello</p></body></html>")
    await env.add_product("P6", "/p/6")
    assert (await env.verify("P6"))["outcome"] == "unparseable"
    assert (await env.product("P6"))["status"] == "unverified"


async def test_second_verification_sends_validators_and_304_is_not_modified(env: Env) -> None:
    """A stored ETag is sent back; the shop's 304 is a cheap not_modified verification."""
    env.shop.state.pages["/p/7"] = Page(tag_page("P7", "Mug", "3.00"), etag='"v1"')
    await env.add_product("P7", "/p/7")
    assert (await env.verify("P7"))["outcome"] == "verified"
    assert (await env.product("P7"))["etag"] == '"v1"'
    done = await env.verify("P7")
    assert done["outcome"] == "not_modified" and done["http_status"] == 304
    assert env.shop.state.last("/p/7").headers.get("If-None-Match") == '"v1"'


async def test_rate_limited_request_is_retried_later_not_finished(env: Env) -> None:
    """429 with Retry-After requeues the request for later and keeps the last good data."""
    env.shop.state.pages["/p/8"] = Page(b"slow down", status=429, headers={"Retry-After": "30"})
    await env.add_product("P8", "/p/8", status="verified", availability="in_stock")
    row = await request_verification(env.db, env.merchant.id, "P8")
    env.engine.wake()
    await env.shop.state.wait_until(lambda: env.shop.state.count("/p/8") >= 1, timeout_s=5)

    async def requeued() -> dict[str, Any]:
        while True:
            current = await env.db.pool.fetchrow(
                "SELECT * FROM verification_requests WHERE id = $1", row["id"]
            )
            assert current is not None
            if current["attempts"] >= 1:
                return dict(current)
            await asyncio.sleep(0.02)

    current = await asyncio.wait_for(requeued(), timeout=5)
    assert current["state"] == "queued" and current["outcome"] == "rate_limited"
    product = await env.product("P8")
    assert product["availability"] == "in_stock" and product["failure_count"] == 1


async def test_url_outside_allowed_hosts_is_blocked(env: Env) -> None:
    """A product URL on a host the merchant does not own is never fetched."""
    await env.db.pool.execute(
        "INSERT INTO products (merchant_id, product_id, status, source, url, data) "
        "VALUES ($1, 'P9', 'unverified', 'tag', 'http://evil.example/p', '{}')",
        env.merchant.id,
    )
    assert (await env.verify("P9"))["outcome"] == "blocked"


async def test_changed_lane_marker_is_verified_and_cleared(env: Env) -> None:
    """A product marked due in the changed lane is verified without any request row."""
    from datetime import UTC, datetime

    env.shop.state.pages["/p/10"] = Page(tag_page("P10", "Changed", "2.00"))
    await env.add_product("P10", "/p/10", changed_due_at=datetime.now(UTC))

    async def verified() -> dict[str, Any]:
        while True:
            product = await env.product("P10")
            if product["status"] == "verified":
                return product
            await asyncio.sleep(0.02)

    product = await asyncio.wait_for(verified(), timeout=10)
    assert product["changed_due_at"] is None and product["changed_lease_owner"] is None


async def test_repeated_verify_requests_share_one_open_request(env: Env) -> None:
    """Asking again while a request is open returns the same request."""
    env.shop.state.gate = asyncio.Event()  # hold the page so the request stays open
    env.shop.state.pages["/p/11"] = Page(tag_page("P11", "Mug", "1.00"))
    await env.add_product("P11", "/p/11")
    first = await request_verification(env.db, env.merchant.id, "P11")
    second = await request_verification(env.db, env.merchant.id, "P11")
    assert first["id"] == second["id"]
    env.shop.state.gate.set()


async def test_unknown_product_cannot_be_verified(env: Env) -> None:
    """A verification of a product that does not exist is NotFound."""
    from verifier.exceptions import NotFound

    with pytest.raises(NotFound):
        await request_verification(env.db, env.merchant.id, f"missing-{uuid.uuid4()}")


async def test_tag_data_that_arrives_during_the_fetch_stays_pending(env: Env) -> None:
    """A verification only confirms tag data older than its fetch; newer data stays pending."""
    env.shop.state.gate = asyncio.Event()
    env.shop.state.pages["/p/12"] = Page(tag_page("P12", "Tag name", "9.99"))
    await env.add_product("P12", "/p/12")
    request = await request_verification(env.db, env.merchant.id, "P12")
    env.engine.wake()
    await env.shop.state.wait_until(lambda: env.shop.state.count("/p/12") >= 1, timeout_s=5)
    newer = {"product_id": "P12", "url": env.shop.url("/p/12"), "name": "New", "unit_price": "1"}
    await env.db.pool.execute(
        "UPDATE products SET pending = $2, pending_at = now() WHERE product_id = $1", "P12", newer
    )
    env.shop.state.gate.set()
    done = await env.waiter.wait(env.merchant.id, request["id"], 10)
    assert done["outcome"] == "verified"
    product = await env.product("P12")
    assert product["status"] == "verified" and product["pending"] == newer


async def test_claimed_rows_carry_each_merchants_hosts_and_pending_data(
    database: Database,
) -> None:
    """Claims state a merchant's hosts once and a pending observation equal to the data only
    as a flag: the jobs built from them still see every merchant's hosts and every pending,
    and come oldest first across merchants."""
    store = MerchantStore(database)
    merchants = [
        await store.create("shop-a", ["a.example", "www.a.example"]),
        await store.create("shop-b", ["b.example"]),
    ]
    data = {"product_id": "X", "url": "u", "name": "Mug", "unit_price": "1.00"}
    other = {**data, "unit_price": "2.00"}
    expected = {}
    # Interleaved over the merchants, each due a minute after the one before.
    for n, (product_id, pending) in enumerate((("same", data), ("other", other), ("none", None))):
        for m, merchant in enumerate(merchants):
            await database.pool.execute(
                "INSERT INTO products (merchant_id, product_id, source, url, data, pending,"
                " changed_due_at) VALUES ($1, $2, 'tag', 'https://a.example/p', $3, $4,"
                " now() - make_interval(mins => $5))",
                merchant.id,
                product_id,
                data,
                pending,
                60 - 2 * n - m,
            )
            expected[(merchant.id, product_id)] = (tuple(merchant.hosts), pending)
    rows = await database.pool.fetch(database.queries["claim_changed"], 100, "me", 60.0, 100, [])
    hosts = merchant_hosts(rows)
    jobs = [job_from_row(row, Lane.CHANGED, hosts[row["merchant_id"]]) for row in rows]
    assert [(j.key, (j.hosts, j.state.pending)) for j in jobs] == list(expected.items())
    assert all(j.state.data == data for j in jobs)
    for product_id in ("same", "other"):
        for merchant in merchants:
            await request_verification(database, merchant.id, product_id)
    rows = await database.pool.fetch(database.queries["claim_on_demand"], 100, "me", 60.0)
    hosts = merchant_hosts(rows)
    jobs = [job_from_row(row, Lane.ON_DEMAND, hosts[row["merchant_id"]]) for row in rows]
    assert [(j.key, (j.hosts, j.state.pending)) for j in jobs] == [
        (key, value) for key, value in expected.items() if key[1] != "none"
    ]
