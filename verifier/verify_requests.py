"""On-demand verification requests ("verify product now"): create, read, wait for completion.

A request is a durable row; the daemon that claims it is woken by NOTIFY on ``cv_verify``.
Repeated requests for a product while one is open share it. Completion is announced on
``cv_verification_done``; waiters also poll, so a lost notification only costs latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from typing import Any

import asyncpg

from verifier.database import Database
from verifier.engine import WAKE_CHANNEL
from verifier.exceptions import NotFound
from verifier.product_schema import render_product
from verifier.results import DONE_CHANNEL

_POLL_S = 0.5


async def request_verification(db: Database, merchant_id: int, product_id: str) -> asyncpg.Record:
    """Queue a verification of one product (or join the open one); NotFound if no product."""
    async with db.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            db.queries["create_verification_request"], merchant_id, product_id, uuid.uuid4()
        )
        if row is None:
            raise NotFound(f"product {product_id!r} does not exist")
        await conn.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)
    return row


async def get_verification(
    db: Database, merchant_id: int, request_id: uuid.UUID
) -> asyncpg.Record | None:
    """One request of one merchant, or None."""
    async with db.pool.acquire() as conn:
        row: asyncpg.Record | None = await conn.fetchrow(
            db.queries["get_verification_request"], request_id, merchant_id
        )
        return row


async def render_verification(db: Database, row: asyncpg.Record) -> dict[str, Any]:
    """The verification object; includes the product once the request is done."""
    body: dict[str, Any] = {
        "verification_id": str(row["id"]),
        "product_id": row["product_id"],
        "status": row["state"],
        "requested_at": row["requested_at"].isoformat(),
        "started_at": row["started_at"].isoformat() if row["started_at"] else None,
        "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
        "attempts": row["attempts"],
        "outcome": row["outcome"],
        "http_status": row["http_status"],
        "error": row["error"],
        "product": None,
    }
    if row["state"] == "done":
        async with db.pool.acquire() as conn:
            product = await conn.fetchrow(
                db.queries["catalog_get_product"], row["merchant_id"], row["product_id"]
            )
        if product is not None:
            body["product"] = render_product(product)
    return body


class CompletionWaiter:
    """Waits for requests to finish: LISTEN on the completion channel plus polling."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._events: dict[str, list[asyncio.Event]] = defaultdict(list)
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        for event in self._events.get(payload, ()):
            event.set()

    async def _ensure_listening(self) -> None:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                self._conn = await self._db.pool.acquire()
                await self._conn.add_listener(DONE_CHANNEL, self._on_notify)

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(asyncpg.InterfaceError, OSError):
                await self._conn.remove_listener(DONE_CHANNEL, self._on_notify)
                await self._db.pool.release(self._conn)
            self._conn = None

    async def wait(
        self, merchant_id: int, request_id: uuid.UUID, timeout_s: float
    ) -> asyncpg.Record:
        """The request row once done, or as it is when ``timeout_s`` runs out."""
        await self._ensure_listening()
        key = str(request_id)
        event = asyncio.Event()
        self._events[key].append(event)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                row = await get_verification(self._db, merchant_id, request_id)
                if row is None:
                    raise NotFound(f"verification {request_id} does not exist")
                remaining = deadline - time.monotonic()
                if row["state"] == "done" or remaining <= 0:
                    return row
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=min(_POLL_S, remaining))
                event.clear()
        finally:
            self._events[key].remove(event)
            if not self._events[key]:
                del self._events[key]
