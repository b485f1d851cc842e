"""Helpers for tests of the merchant API: a real API app on a real socket, merchants and keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from ingest.apps import RouteInstaller, make_api_app
from ingest.context import Services
from ingest.products_api import install_routes
from verifier.config import Config
from verifier.database import Database
from verifier.merchants import ApiKeyStore, Merchant, MerchantStore
from verifier.metrics import Metrics


def make_config(**api: Any) -> Config:
    """A default config with [api] overrides."""
    return Config.model_validate({"api": api} if api else {})


@asynccontextmanager
async def api_client(
    database: Database,
    *,
    config: Config | None = None,
    routes: Iterable[RouteInstaller] = (install_routes,),
) -> AsyncIterator[TestClient[Any, Any]]:
    """A client of the real API app served on 127.0.0.1."""
    services = Services(config or make_config(), database, Metrics())
    app = make_api_app(services, routes)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def merchant_with_key(
    database: Database, slug: str, hosts: tuple[str, ...] = ("shop.example",)
) -> tuple[Merchant, dict[str, str]]:
    """A new merchant and the Authorization header of a fresh key of its own."""
    merchant = await MerchantStore(database).create(slug, hosts)
    key = await ApiKeyStore(database).create(merchant)
    return merchant, {"Authorization": f"Bearer {key.key}"}


def product(product_id: str, host: str = "shop.example", **fields: Any) -> dict[str, Any]:
    """A valid product object on ``host``."""
    return {
        "product_id": product_id,
        "url": f"https://{host}/p/{product_id}",
        "name": f"Product {product_id}",
        "unit_price": "10.50",
        **fields,
    }
