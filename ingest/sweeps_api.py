"""The merchant API's sweep endpoints: the schedule, starting and steering sweeps, the sync log.

Schedule: ``GET /v1/sweep-schedule`` shows the effective schedule and where each key comes from;
``PATCH`` stores the merchant's own keys (they win over the config file; a key sent as null goes
back to the file's value); ``DELETE`` clears them all.

Sweeps: ``POST /v1/sweeps`` starts one now (201; 409 while one is active), ``GET /v1/sweeps``
lists them newest first, ``/v1/sweeps/current`` is the active one (404 when none is running,
waiting for its window, paused or halted) with ``pause``, ``resume`` and ``DELETE`` (cancel).
``GET /v1/sweeps/{sweep_id}/changes`` pages through what a sweep changed. Every handler is
scoped to the caller's merchant: another merchant's sweep is a plain 404.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ingest.auth import require_merchant
from ingest.context import SERVICES, Services
from ingest.errors import ApiError, json_response
from ingest.params import is_ascii_digits, page_size_param, read_json_object
from verifier.merchants import Merchant
from verifier.sweep_schedules import effective, load_override, merge_override, store_override
from verifier.sweeps import SweepStore, render_sweep

SCHEDULE_PATH = "/v1/sweep-schedule"
SWEEPS_PATH = "/v1/sweeps"
CURRENT_PATH = "/v1/sweeps/current"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def _services(request: web.Request) -> Services:
    return request.app[SERVICES]


def _store(request: web.Request) -> SweepStore:
    return SweepStore(_services(request).db)


def _wake_scheduler(request: web.Request) -> None:
    scheduler = _services(request).extras.get("sweep_scheduler")
    if scheduler is not None:
        scheduler.wake()


def _sweep_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["sweep_id"])
    except ValueError:
        raise ApiError(404, "no such sweep") from None


# -- schedule ------------------------------------------------------------------------------


async def _schedule_body(request: web.Request, merchant: Merchant) -> dict[str, Any]:
    services = _services(request)
    override = await load_override(services.db, merchant.id)
    latest = await SweepStore(services.db).latest(merchant.id)
    schedule = effective(services.config, merchant.slug, override)
    return schedule.as_dict(datetime.now(UTC), latest["started_at"] if latest else None)


async def get_schedule(request: web.Request) -> web.Response:
    """GET /v1/sweep-schedule: the effective schedule and its source."""
    merchant = await require_merchant(request)
    return json_response(await _schedule_body(request, merchant))


async def patch_schedule(request: web.Request) -> web.Response:
    """PATCH /v1/sweep-schedule: set (or, with null, clear) the merchant's own keys."""
    merchant = await require_merchant(request)
    patch = await read_json_object(request, "a JSON object of schedule keys")
    services = _services(request)
    current = await load_override(services.db, merchant.id)
    override = merge_override(current, patch)
    effective(services.config, merchant.slug, override)  # InvalidInput (422) names the key
    await store_override(services.db, merchant.id, override)
    _wake_scheduler(request)
    return json_response(await _schedule_body(request, merchant))


async def delete_schedule(request: web.Request) -> web.Response:
    """DELETE /v1/sweep-schedule: back to the config file's schedule."""
    merchant = await require_merchant(request)
    await store_override(_services(request).db, merchant.id, None)
    _wake_scheduler(request)
    return json_response(await _schedule_body(request, merchant))


# -- sweeps --------------------------------------------------------------------------------


async def list_sweeps(request: web.Request) -> web.Response:
    """GET /v1/sweeps: newest first, keyset-paginated."""
    merchant = await require_merchant(request)
    limit = page_size_param(request, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    rows, next_cursor = await _store(request).list(
        merchant.id, limit, request.query.get("after") or None
    )
    return json_response({"items": [render_sweep(r) for r in rows], "next": next_cursor})


async def start_sweep(request: web.Request) -> web.Response:
    """POST /v1/sweeps: start a sweep now (409 while one is active)."""
    merchant = await require_merchant(request)
    services = _services(request)
    row = await _store(request).start_manual(
        services.config, merchant.id, merchant.slug, merchant.hosts
    )
    _wake_scheduler(request)
    return json_response(
        render_sweep(row), status=201, headers={"Location": f"{SWEEPS_PATH}/{row['id']}"}
    )


async def current_sweep(request: web.Request) -> web.Response:
    """GET /v1/sweeps/current: the active sweep, 404 when none."""
    merchant = await require_merchant(request)
    row = await _store(request).current(merchant.id)
    if row is None:
        raise ApiError(404, "no sweep is running, waiting for its window, paused or halted")
    return json_response(render_sweep(row))


async def get_sweep(request: web.Request) -> web.Response:
    """GET /v1/sweeps/{sweep_id}."""
    merchant = await require_merchant(request)
    row = await _store(request).get(merchant.id, _sweep_id(request))
    return json_response(render_sweep(row))


async def pause_sweep(request: web.Request) -> web.Response:
    """POST /v1/sweeps/current/pause."""
    merchant = await require_merchant(request)
    return json_response(render_sweep(await _store(request).pause(merchant.id)))


async def resume_sweep(request: web.Request) -> web.Response:
    """POST /v1/sweeps/current/resume: run now and until done."""
    merchant = await require_merchant(request)
    row = await _store(request).resume(merchant.id)
    _wake_scheduler(request)
    return json_response(render_sweep(row))


async def cancel_sweep(request: web.Request) -> web.Response:
    """DELETE /v1/sweeps/current: cancel the active sweep."""
    merchant = await require_merchant(request)
    return json_response(render_sweep(await _store(request).cancel(merchant.id)))


async def sweep_changes(request: web.Request) -> web.Response:
    """GET /v1/sweeps/{sweep_id}/changes: the sync log of one sweep, oldest first."""
    merchant = await require_merchant(request)
    limit = page_size_param(request, 100, MAX_PAGE_SIZE)
    raw_after = request.query.get("after", "")
    if raw_after and not is_ascii_digits(raw_after):
        raise ApiError(400, "after: not a cursor returned by this API")
    rows, next_id = await _store(request).changes(
        merchant.id, _sweep_id(request), limit, int(raw_after or 0)
    )
    items = [
        {
            "product_id": r["product_id"],
            "field": r["field"],
            "old": r["old_value"],
            "new": r["new_value"],
            "at": r["at"].isoformat(),
        }
        for r in rows
    ]
    return json_response({"items": items, "next": str(next_id) if next_id else None})


def install_routes(app: web.Application) -> None:
    """Add the sweep and sweep-schedule routes to the API app."""
    router = app.router
    router.add_get(SCHEDULE_PATH, get_schedule)
    router.add_patch(SCHEDULE_PATH, patch_schedule)
    router.add_delete(SCHEDULE_PATH, delete_schedule)
    router.add_get(SWEEPS_PATH, list_sweeps)
    router.add_post(SWEEPS_PATH, start_sweep)
    # Registered before /v1/sweeps/{sweep_id} so "current" is never read as an id.
    router.add_get(CURRENT_PATH, current_sweep)
    router.add_delete(CURRENT_PATH, cancel_sweep)
    router.add_post(f"{CURRENT_PATH}/pause", pause_sweep)
    router.add_post(f"{CURRENT_PATH}/resume", resume_sweep)
    router.add_get(f"{SWEEPS_PATH}/{{sweep_id}}", get_sweep)
    router.add_get(f"{SWEEPS_PATH}/{{sweep_id}}/changes", sweep_changes)
