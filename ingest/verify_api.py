"""Verify now: ``POST /v1/products/{id}/verify?wait=`` and ``GET /v1/verifications/{id}``."""

from __future__ import annotations

import uuid

from aiohttp import web

from ingest.auth import require_merchant
from ingest.context import SERVICES, Services
from ingest.errors import ApiError, json_response
from ingest.params import product_id_param
from verifier.verify_requests import (
    CompletionWaiter,
    get_verification,
    render_verification,
    request_verification,
)

MAX_WAIT_S = 30.0
WAITER = web.AppKey("completion_waiter", CompletionWaiter)


def _wait_s(request: web.Request) -> float:
    raw = request.query.get("wait", "0")
    try:
        wait = float(raw)
    except ValueError:
        raise ApiError(400, "wait: must be a number of seconds from 0 to 30") from None
    if not 0 <= wait <= MAX_WAIT_S:
        raise ApiError(400, "wait: must be a number of seconds from 0 to 30")
    return wait


async def verify_now(request: web.Request) -> web.Response:
    """Queue an on-demand verification; 200 with the result if it finishes within ``wait``."""
    merchant = await require_merchant(request)
    services: Services = request.app[SERVICES]
    product_id = product_id_param(request)
    wait = _wait_s(request)
    row = await request_verification(services.db, merchant.id, product_id)
    engine = services.extras.get("verification_engine")
    if engine is not None:
        engine.wake()
    if wait > 0:
        row = await request.app[WAITER].wait(merchant.id, row["id"], wait)
    if row["state"] == "done":
        return json_response(await render_verification(services.db, row))
    return json_response(
        {"verification_id": str(row["id"]), "status": "queued"},
        status=202,
        headers={"Location": f"/v1/verifications/{row['id']}"},
    )


async def get_verification_handler(request: web.Request) -> web.Response:
    """One verification of the caller's merchant."""
    merchant = await require_merchant(request)
    services: Services = request.app[SERVICES]
    try:
        request_id = uuid.UUID(request.match_info["verification_id"])
    except ValueError:
        raise ApiError(404, "no such verification") from None
    row = await get_verification(services.db, merchant.id, request_id)
    if row is None:
        raise ApiError(404, "no such verification")
    return json_response(await render_verification(services.db, row))


async def _waiter_ctx(app: web.Application):  # type: ignore[no-untyped-def]
    waiter = CompletionWaiter(app[SERVICES].db)
    app[WAITER] = waiter
    yield
    await waiter.close()


def install_routes(app: web.Application) -> None:
    """Add the verify-now routes to the API app."""
    app.cleanup_ctx.append(_waiter_ctx)
    app.router.add_post("/v1/products/{product_id}/verify", verify_now)
    app.router.add_get("/v1/verifications/{verification_id}", get_verification_handler)
