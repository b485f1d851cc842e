"""Batched writes of verification outcomes: many results, one transaction.

Workers hand each decision to :class:`ResultWriter` and await it; a writer task takes everything
queued and applies it in one transaction (product rows, on-demand requests, the sync log, the
completion notifications), so the database cost per page stays small at high page rates.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from verifier.database import Database
from verifier.exceptions import DatabaseError
from verifier.outcomes import Decision
from verifier.records import record

log = structlog.get_logger(__name__)

DONE_CHANNEL = "cv_verification_done"
_MAX_BATCH = 500
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


@record
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


def _product_row(rec: ResultRecord, now: datetime) -> dict[str, Any]:
    """The apply_result object of one record (JSON: keys as the statement's columns)."""
    d = rec.decision
    retry_at = _retry_at(d, now)
    changed_lane = rec.lane == "changed"
    return {
        "merchant_id": rec.merchant_id,
        "product_id": rec.product_id,
        "status": None if d.unchanged_content else d.status,
        "data": None if d.unchanged_content else d.data,
        "availability": d.availability,
        "availability_detail": d.availability_detail,
        "clear_pending": d.clear_pending,
        "confirmed": d.outcome in ("verified", "not_modified")
        or (d.outcome == "not_found" and d.final),
        "outcome": d.outcome,
        "http_status": d.http_status,
        "error": d.error,
        "set_validators": d.outcome in ("verified", "not_modified"),
        "etag": d.etag,
        "last_modified": d.last_modified,
        # bytea's hex input format
        "content_sha256": None if d.content_sha256 is None else "\\x" + d.content_sha256.hex(),
        "counts_as_failure": d.counts_as_failure,
        "not_found_count": d.not_found_count,
        "changed_lane": changed_lane,
        "retry_at": retry_at if changed_lane else None,
        "claimed_at": rec.claimed_at or now,
    }


def _request_row(rec: ResultRecord, now: datetime) -> dict[str, Any]:
    """The finish_request object of an on-demand record."""
    d = rec.decision
    return {
        "id": str(rec.request_id),
        "outcome": d.outcome,
        "http_status": d.http_status,
        "error": d.error,
        "retry_at": _retry_at(d, now),
    }


def _text(value: uuid.UUID | None) -> str | None:
    # Ids read from the database are asyncpg's own UUID type, which JSON encoders do not know.
    return None if value is None else str(value)


def _change_rows(rec: ResultRecord) -> list[dict[str, Any]]:
    """The insert_changes objects of one record's changes."""
    return [
        {
            "merchant_id": rec.merchant_id,
            "product_id": rec.product_id,
            "sweep_id": _text(rec.sweep_id),
            "verification_id": _text(rec.request_id),
            "cause": rec.lane,
            "field": change.field,
            "old_value": change.old,
            "new_value": change.new,
        }
        for change in rec.decision.changes
    ]


def _rounds(records: Sequence[ResultRecord]) -> list[list[ResultRecord]]:
    """Records split into rounds in which no product repeats, in their order."""
    if len({(r.merchant_id, r.product_id) for r in records}) == len(records):
        return [list(records)]  # the common case: one round
    rounds: list[list[ResultRecord]] = []
    seen: list[set[tuple[int, str]]] = []
    for rec in records:
        key = (rec.merchant_id, rec.product_id)
        index = next((i for i, keys in enumerate(seen) if key not in keys), len(seen))
        if index == len(seen):
            rounds.append([])
            seen.append(set())
        rounds[index].append(rec)
        seen[index].add(key)
    return rounds


def _settle(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(DatabaseError(f"writing results failed: {error}"))


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
                except asyncpg.DataError as exc:
                    # A value the database refuses fails the whole transaction: write the
                    # results one by one, so only that one fails.
                    log.warning("results.batch_refused", error=str(exc), rows=len(batch))
                    for rec, fut in batch:
                        await self._write_alone(rec, fut)
                    continue
                except _DB_ERRORS as exc:
                    log.error("results.write_failed", error=str(exc), rows=len(batch))
                    for _, fut in batch:
                        _settle(fut, exc)
                    continue
                for _, fut in batch:
                    _settle(fut, None)
            if self._closed:
                return

    async def _write_alone(self, rec: ResultRecord, fut: asyncio.Future[None]) -> None:
        try:
            await self._flush([rec])
        except _DB_ERRORS as exc:
            log.error("results.write_failed", error=str(exc), rows=1, product=rec.product_id)
            _settle(fut, exc)
        else:
            _settle(fut, None)

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
        # Each statement takes its rows as one JSON parameter (the pool's codec encodes it).
        changes = [row for rec in records for row in _change_rows(rec)]
        async with self._db.pool.acquire() as conn, conn.transaction():
            # One statement per round of distinct products (a product finished twice in one
            # batch, e.g. by two lanes, gets its results applied in order).
            for round_records in _rounds(records):
                await conn.execute(
                    q["apply_result"], [_product_row(rec, now) for rec in round_records]
                )
                requests = sorted(
                    (_request_row(rec, now) for rec in round_records if rec.request_id is not None),
                    key=lambda row: row["id"],
                )
                if requests:
                    await conn.execute(q["finish_request"], requests, self._owner)
                    done = [row["id"] for row in requests if row["retry_at"] is None]
                    if done:
                        await conn.execute(
                            "SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id",
                            DONE_CHANNEL,
                            done,
                        )
            if changes:
                await conn.execute(q["insert_changes"], changes)
