"""Batched writes of verification outcomes: many results, one transaction.

Workers hand each decision to :class:`ResultWriter` and await it; a writer task takes everything
queued and applies it in one transaction (product rows, on-demand requests, the sync log, the
completion notifications), so the database cost per page stays small at high page rates.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import structlog

from verifier.database import Database
from verifier.exceptions import DatabaseError
from verifier.outcomes import Decision

log = structlog.get_logger(__name__)

DONE_CHANNEL = "cv_verification_done"
_MAX_BATCH = 500


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """One decision and where it applies."""

    merchant_id: int
    product_id: str
    lane: str
    decision: Decision
    claimed_at: datetime | None = None  # changed lane: when the marker was leased
    request_id: uuid.UUID | None = None  # on-demand request
    sweep_id: uuid.UUID | None = None


def _retry_at(decision: Decision, now: datetime) -> datetime | None:
    """When a non-final attempt is due again (None: the decision is final)."""
    if decision.retry_in_s is None:
        return None
    return now + timedelta(seconds=decision.retry_in_s)


def _product_args(rec: ResultRecord, now: datetime) -> tuple[Any, ...]:
    d = rec.decision
    retry_at = _retry_at(d, now)
    confirmed = d.outcome in ("verified", "not_modified") or (d.outcome == "not_found" and d.final)
    data = None if d.unchanged_content or d.data is None else orjson.dumps(d.data).decode()
    set_validators = d.outcome in ("verified", "not_modified")
    return (
        rec.merchant_id,
        rec.product_id,
        None if d.unchanged_content else d.status,
        data,
        d.availability,
        d.availability_detail,
        d.clear_pending,
        confirmed,
        d.outcome,
        d.http_status,
        d.error,
        set_validators,
        d.etag,
        d.last_modified,
        d.content_sha256,
        d.counts_as_failure,
        d.not_found_count,
        rec.lane == "changed",
        retry_at if rec.lane == "changed" else None,
        rec.claimed_at or now,
    )


def _rounds(
    records: Sequence[ResultRecord], rows: Sequence[tuple[Any, ...]]
) -> list[list[tuple[Any, ...]]]:
    """Rows split into rounds in which no product repeats, in their order."""
    rounds: list[list[tuple[Any, ...]]] = []
    seen: list[set[tuple[int, str]]] = []
    for record, row in zip(records, rows, strict=True):
        key = (record.merchant_id, record.product_id)
        index = next((i for i, keys in enumerate(seen) if key not in keys), len(seen))
        if index == len(seen):
            rounds.append([])
            seen.append(set())
        rounds[index].append(row)
        seen[index].add(key)
    return rounds


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows (at least one) as one list per column: the arrays an unnest statement takes."""
    return [list(column) for column in zip(*rows, strict=True)]


class ResultWriter:
    """Group-commits verification results; ``write`` returns once the result is durable."""

    def __init__(self, db: Database, owner: str) -> None:
        self._db = db
        self._owner = owner
        self._queue: list[tuple[ResultRecord, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="result-writer")

    async def close(self) -> None:
        """Flush what is queued, then stop."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    async def write(self, record: ResultRecord) -> None:
        """Queue one result and wait until it is committed."""
        if self._closed:
            raise DatabaseError("the result writer is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((record, future))
        self._wakeup.set()
        await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
                try:
                    await self._flush([rec for rec, _ in batch])
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                    log.error("results.write_failed", error=str(exc), rows=len(batch))
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(DatabaseError(f"writing results failed: {exc}"))
                    continue
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
            if self._closed:
                return

    async def _flush(self, records: Sequence[ResultRecord]) -> None:
        # Rows go in key order (as every other writer of products sends them): the batch's
        # primary-key lookups then lock rows in that order and concurrent writers wait for each
        # other. The plan decides the order in the end; a deadlock is retried once anyway.
        records = sorted(records, key=lambda r: (r.merchant_id, r.product_id))
        try:
            await self._write(records)
        except asyncpg.DeadlockDetectedError:
            log.warning("results.deadlock_retry", rows=len(records))
            await self._write(records)

    async def _write(self, records: Sequence[ResultRecord]) -> None:
        q = self._db.queries
        now = datetime.now(UTC)
        products = [_product_args(rec, now) for rec in records]
        requests = []
        for rec in sorted(records, key=lambda r: str(r.request_id)):
            if rec.request_id is None:
                continue
            d = rec.decision
            requests.append(
                (rec.request_id, self._owner, d.outcome, d.http_status, d.error, _retry_at(d, now))
            )
        changes: list[list[Any]] = [[] for _ in range(8)]
        for rec in records:
            for change in rec.decision.changes:
                row = (
                    rec.merchant_id,
                    rec.product_id,
                    rec.sweep_id,
                    rec.request_id,
                    rec.lane,
                    change.field,
                    orjson.dumps(change.old).decode(),
                    orjson.dumps(change.new).decode(),
                )
                for column, value in zip(changes, row, strict=True):
                    column.append(value)
        async with self._db.pool.acquire() as conn, conn.transaction():
            # One statement per round of distinct products (a product finished twice in one
            # batch, e.g. by two lanes, gets its results applied in order).
            for round_rows in _rounds(records, products):
                await conn.execute(q["apply_result"], *_columns(round_rows))
            if requests:
                await conn.executemany(q["finish_request"], requests)
                done = [str(r[0]) for r in requests if r[5] is None]
                if done:
                    await conn.execute(
                        "SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id", DONE_CHANNEL, done
                    )
            if changes[0]:
                await conn.execute(q["insert_changes"], *changes)
