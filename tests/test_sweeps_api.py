"""The sweep endpoints of the merchant API on a real socket and a real database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ingest.sweeps_api import install_routes
from tests.merchant_api import api_client, merchant_with_key
from verifier.database import Database
from verifier.merchants import Merchant

Client = TestClient[Any, Any]


@pytest.fixture
async def client(database: Database) -> AsyncIterator[Client]:
    async with api_client(database, routes=(install_routes,)) as c:
        yield c


async def _products(database: Database, merchant: Merchant, count: int) -> None:
    await database.pool.execute(
        "INSERT INTO products (merchant_id, product_id, source, url, data) "
        "SELECT $1, 'p' || g, 'tag', 'https://shop.example/p/' || g, '{}' "
        "FROM generate_series(1, $2) g",
        merchant.id,
        count,
    )


async def test_start_returns_the_sweep_and_a_second_start_conflicts(
    client: Client, database: Database
) -> None:
    """POST /v1/sweeps starts a running sweep of the whole catalog; another one is a 409."""
    merchant, auth = await merchant_with_key(database, "shop-a")
    await _products(database, merchant, 7)
    resp = await client.post("/v1/sweeps", headers=auth)
    assert resp.status == 201
    body = await resp.json()
    assert body["state"] == "running" and body["trigger"] == "manual" and body["total"] == 7
    assert resp.headers["Location"] == f"/v1/sweeps/{body['sweep_id']}"
    assert {"checked", "changed", "discontinued", "errors", "eta_seconds"} <= body.keys()
    again = await client.post("/v1/sweeps", headers=auth)
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "conflict"


async def test_current_is_a_json_404_when_no_sweep_is_active(
    client: Client, database: Database
) -> None:
    """Without an active sweep, /v1/sweeps/current is a 404 JSON error."""
    _, auth = await merchant_with_key(database, "shop-a")
    resp = await client.get("/v1/sweeps/current", headers=auth)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_pause_resume_and_cancel_the_current_sweep(
    client: Client, database: Database
) -> None:
    """pause -> paused, resume -> running, DELETE -> cancelled (then no current sweep)."""
    _, auth = await merchant_with_key(database, "shop-a")
    started = await (await client.post("/v1/sweeps", headers=auth)).json()
    paused = await client.post("/v1/sweeps/current/pause", headers=auth)
    assert paused.status == 200 and (await paused.json())["state"] == "paused"
    current = await (await client.get("/v1/sweeps/current", headers=auth)).json()
    assert current["sweep_id"] == started["sweep_id"] and current["state"] == "paused"
    resumed = await client.post("/v1/sweeps/current/resume", headers=auth)
    assert (await resumed.json())["state"] == "running"
    cancelled = await client.delete("/v1/sweeps/current", headers=auth)
    body = await cancelled.json()
    assert body["state"] == "cancelled" and body["finished_at"] is not None
    assert (await client.get("/v1/sweeps/current", headers=auth)).status == 404
    assert (await client.post("/v1/sweeps/current/pause", headers=auth)).status == 404


async def test_list_is_newest_first_and_keyset_paginated(
    client: Client, database: Database
) -> None:
    """GET /v1/sweeps pages through every sweep, newest first, without repeats."""
    _, auth = await merchant_with_key(database, "shop-a")
    ids = []
    for _ in range(3):
        ids.append((await (await client.post("/v1/sweeps", headers=auth)).json())["sweep_id"])
        await client.delete("/v1/sweeps/current", headers=auth)
    first = await (await client.get("/v1/sweeps?limit=2", headers=auth)).json()
    assert [s["sweep_id"] for s in first["items"]] == ids[::-1][:2]
    second = await (
        await client.get(f"/v1/sweeps?limit=2&after={first['next']}", headers=auth)
    ).json()
    assert [s["sweep_id"] for s in second["items"]] == ids[:1] and second["next"] is None
    one = await (await client.get(f"/v1/sweeps/{ids[1]}", headers=auth)).json()
    assert one["sweep_id"] == ids[1] and one["state"] == "cancelled"
    bad = await client.get("/v1/sweeps?after=nonsense", headers=auth)
    assert bad.status == 422


async def test_another_merchants_sweep_is_not_found(client: Client, database: Database) -> None:
    """A key sees only its merchant's sweeps: another's id, changes and controls are 404."""
    _, auth_a = await merchant_with_key(database, "shop-a")
    _, auth_b = await merchant_with_key(database, "shop-b")
    sweep_a = (await (await client.post("/v1/sweeps", headers=auth_a)).json())["sweep_id"]
    assert (await client.get(f"/v1/sweeps/{sweep_a}", headers=auth_b)).status == 404
    assert (await client.get(f"/v1/sweeps/{sweep_a}/changes", headers=auth_b)).status == 404
    assert (await client.get("/v1/sweeps/current", headers=auth_b)).status == 404
    assert (await client.delete("/v1/sweeps/current", headers=auth_b)).status == 404
    listed = await (await client.get("/v1/sweeps", headers=auth_b)).json()
    assert listed["items"] == []
    # B's own sweep is independent of A's.
    assert (await client.post("/v1/sweeps", headers=auth_b)).status == 201
    current_a = await (await client.get("/v1/sweeps/current", headers=auth_a)).json()
    assert current_a["sweep_id"] == sweep_a and current_a["state"] == "running"


async def test_unknown_or_malformed_sweep_id_is_404(client: Client, database: Database) -> None:
    """A sweep id that is not a UUID, or no sweep's, is a 404."""
    _, auth = await merchant_with_key(database, "shop-a")
    assert (await client.get("/v1/sweeps/not-a-uuid", headers=auth)).status == 404
    assert (await client.get(f"/v1/sweeps/{uuid.uuid4()}", headers=auth)).status == 404


async def test_sweep_endpoints_need_an_api_key(client: Client) -> None:
    """No key: 401 JSON error."""
    resp = await client.get("/v1/sweeps")
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"


async def test_changes_lists_the_sync_log_of_a_sweep(client: Client, database: Database) -> None:
    """GET /v1/sweeps/{id}/changes lists product_id, field, old, new, at, page by page."""
    merchant, auth = await merchant_with_key(database, "shop-a")
    sweep = await (await client.post("/v1/sweeps", headers=auth)).json()
    await database.pool.execute(
        "INSERT INTO changes (merchant_id, product_id, sweep_id, cause, field, old_value, "
        "new_value) VALUES ($1, 'p1', $2, 'sweep', 'unit_price', '\"9.99\"', '\"12.50\"'), "
        "($1, 'p2', $2, 'sweep', 'availability', '\"in_stock\"', '\"discontinued\"'), "
        "($1, 'p3', NULL, 'changed', 'name', '\"a\"', '\"b\"')",
        merchant.id,
        uuid.UUID(sweep["sweep_id"]),
    )
    path = f"/v1/sweeps/{sweep['sweep_id']}/changes"
    first = await (await client.get(f"{path}?limit=1", headers=auth)).json()
    assert [(c["product_id"], c["field"], c["old"], c["new"]) for c in first["items"]] == [
        ("p1", "unit_price", "9.99", "12.50")
    ]
    assert first["items"][0]["at"] and first["next"]
    rest = await (await client.get(f"{path}?limit=1&after={first['next']}", headers=auth)).json()
    assert [c["product_id"] for c in rest["items"]] == ["p2"]
    assert rest["items"][0]["new"] == "discontinued"
    last = await (await client.get(f"{path}?after={first['next']}", headers=auth)).json()
    assert last["next"] is None and len(last["items"]) == 1


async def test_schedule_shows_the_config_file_as_its_source(
    client: Client, database: Database
) -> None:
    """Without an override the effective schedule is the config's, with its next window."""
    _, auth = await merchant_with_key(database, "shop-a")
    body = await (await client.get("/v1/sweep-schedule", headers=auth)).json()
    assert body["source"] == "config" and body["override"] is None
    assert (body["enabled"], body["every"], body["start_time"], body["window"]) == (
        True,
        "1d",
        "02:00",
        "4h",
    )
    assert body["next_window"]["start"] and body["sources"]["timezone"] == "config"


async def test_patch_overrides_the_schedule_until_cleared(
    client: Client, database: Database
) -> None:
    """PATCH stores the merchant's keys (they win), null clears one, DELETE clears all."""
    _, auth = await merchant_with_key(database, "shop-a")
    patched = await client.patch(
        "/v1/sweep-schedule",
        json={"enabled": False, "start_time": "03:30", "timezone": "Europe/Madrid"},
        headers=auth,
    )
    assert patched.status == 200
    body = await patched.json()
    assert body["source"] == "override" and body["enabled"] is False
    assert body["start_time"] == "03:30" and body["sources"]["every"] == "config"
    assert body["next_window"] is None
    again = await (
        await client.patch("/v1/sweep-schedule", json={"enabled": None}, headers=auth)
    ).json()
    assert again["enabled"] is True and again["override"] == {
        "start_time": "03:30",
        "timezone": "Europe/Madrid",
    }
    cleared = await (await client.delete("/v1/sweep-schedule", headers=auth)).json()
    assert cleared["source"] == "config" and cleared["start_time"] == "02:00"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"every": "daily"}, "every"),
        ({"start_time": "25:00"}, "start_time"),
        ({"window": 4}, "window"),
        ({"enabled": "yes"}, "enabled"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_patch_rejects_bad_schedule_keys(
    client: Client, database: Database, patch: dict[str, Any], field: str
) -> None:
    """A bad or unknown key is a 422 that names it; nothing is stored."""
    _, auth = await merchant_with_key(database, "shop-a")
    resp = await client.patch("/v1/sweep-schedule", json=patch, headers=auth)
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["details"][0]["field"] == field
    body = await (await client.get("/v1/sweep-schedule", headers=auth)).json()
    assert body["override"] is None


async def test_patch_needs_a_json_object(client: Client, database: Database) -> None:
    """Malformed JSON is a 400, a non-object a 422."""
    _, auth = await merchant_with_key(database, "shop-a")
    headers = {**auth, "Content-Type": "application/json"}
    assert (await client.patch("/v1/sweep-schedule", data=b"{", headers=headers)).status == 400
    assert (await client.patch("/v1/sweep-schedule", data=b"[]", headers=headers)).status == 422
