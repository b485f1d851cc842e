"""Group commit of tag observations: many concurrent requests, few transactions.

Each request hands its validated rows to :meth:`IngestWriter.write` and waits. A writer task
takes everything queued (up to ``max_rows_per_commit``) and stores it with one ``INSERT ...
SELECT FROM unnest`` statement, then wakes every request whose rows were in it. While a commit
is in flight the next one fills up, so the number of transactions per second stays bounded by
the database's commit latency, not by the request rate, and rows per commit grow with load.

There is one writer by default; with several, rows are sharded by (merchant, product). Either
way writes of one product are committed in the order they were handed in (the last request
wins), and concurrent writers never touch the same row, so they cannot deadlock each other.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import structlog

from verifier.config import Config
from verifier.database import Database
from verifier.exceptions import CatalogVerifierError
from verifier.metrics import Metrics

log = structlog.get_logger(__name__)

MAX_ROWS_PER_COMMIT = 5000
# Measured on 2 cores: one writer makes the biggest commits and uses the least CPU per row
# (in the application and in PostgreSQL); more pay off only with a database on spare cores.
DEFAULT_WRITERS = 1
_RETRIES_ON_CONFLICT = 3
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
# Errors that say something about the rows rather than about the database being reachable.
_ROW_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)

# (merchant_id, product_id, url, canonical product as JSON text)
_Row = tuple[int, str, str, str]


class IngestUnavailable(CatalogVerifierError):
    """Raised by :meth:`IngestWriter.write` when the rows could not be committed."""


@dataclass(slots=True)
class _Entry:
    rows: list[_Row]
    future: asyncio.Future[None]


class IngestWriter:
    """Coalesces concurrent writes of tag observations into few upsert transactions."""

    name = "ingest-writer"

    def __init__(
        self,
        db: Database,
        metrics: Metrics,
        *,
        writers: int | None = None,
        max_rows_per_commit: int = MAX_ROWS_PER_COMMIT,
    ) -> None:
        self._db = db
        self._accepted = metrics.ingest_events.labels("accepted")
        self._batch_rows = metrics.ingest_batch_rows
        # Each writer holds a connection while it has work; leave connections for readiness
        # checks, the API and the verification engine.
        self._shards = writers or max(1, min(DEFAULT_WRITERS, db.config.pool_max_size - 2))
        self._max_rows = max_rows_per_commit
        self._queues: list[collections.deque[_Entry]] = [
            collections.deque() for _ in range(self._shards)
        ]
        self._wakeups: list[asyncio.Event] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        """Start the writer tasks (``write`` also starts them on first use)."""
        self._ensure_started()

    def _ensure_started(self) -> None:
        if self._tasks:
            return
        self._wakeups = [asyncio.Event() for _ in range(self._shards)]
        self._tasks = [
            asyncio.create_task(self._run_shard(shard), name=f"ingest-writer-{shard}")
            for shard in range(self._shards)
        ]

    async def write(self, merchant_id: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Durably store canonical product dicts of one merchant; returns after the commit.

        Raises :class:`IngestUnavailable` when the database refused or could not be reached.
        Within ``rows`` a later duplicate product_id wins.
        """
        if self._closed:
            raise IngestUnavailable("the ingest writer is shutting down")
        if not rows:
            return
        self._ensure_started()
        loop = asyncio.get_running_loop()
        by_shard: dict[int, list[_Row]] = {}
        shards = self._shards
        for row in rows:
            product_id: str = row["product_id"]
            shard = hash((merchant_id, product_id)) % shards if shards > 1 else 0
            data = orjson.dumps(row).decode()
            by_shard.setdefault(shard, []).append((merchant_id, product_id, row["url"], data))
        futures = []
        for shard, shard_rows in by_shard.items():
            future: asyncio.Future[None] = loop.create_future()
            self._queues[shard].append(_Entry(shard_rows, future))
            self._wakeups[shard].set()
            futures.append(future)
        if len(futures) == 1:
            await futures[0]
        else:
            # Wait for every shard, so that no failure is left unretrieved.
            for outcome in await asyncio.gather(*futures, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    raise outcome
        self._accepted.inc(len(rows))

    async def close(self) -> None:
        """Refuse new writes, commit everything already queued, stop the writer tasks."""
        self._closed = True
        for wakeup in self._wakeups:
            wakeup.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._stopped.set()

    # Component protocol, so the composition root can run the writer as a daemon part.

    async def run(self) -> None:
        """Run the writer tasks until closed."""
        self._ensure_started()
        await self._stopped.wait()

    async def drain(self, timeout_s: float) -> None:
        """Commit what is queued and stop (the listener stops taking requests first)."""
        await asyncio.wait_for(self.close(), timeout=timeout_s or None)

    def reload(self, config: Config) -> None:
        """Nothing to reload."""

    def status(self) -> str | None:
        """No STATUS= line."""
        return None

    # Writer side.

    async def _run_shard(self, shard: int) -> None:
        queue = self._queues[shard]
        wakeup = self._wakeups[shard]
        link = _HeldConnection(self._db)
        try:
            while True:
                if not queue:
                    # Idle: the connection goes back to the pool until work arrives. Work can
                    # arrive during the release, so look again before waiting (no await between
                    # that look and clear(), or a wake-up could be lost).
                    await link.release()
                    if not queue:
                        if self._closed:
                            return
                        wakeup.clear()
                        await wakeup.wait()
                    continue
                batch = [queue.popleft()]
                rows = len(batch[0].rows)
                while queue and rows + len(queue[0].rows) <= self._max_rows:
                    entry = queue.popleft()
                    rows += len(entry.rows)
                    batch.append(entry)
                await self._commit(batch, link)
        finally:
            await link.release()

    async def _commit(self, batch: list[_Entry], link: _HeldConnection) -> None:
        try:
            await self._execute(batch, link)
        except _ROW_ERRORS as exc:
            if len(batch) == 1:
                _fail(batch, exc)
                return
            # One request's rows should not sink the others': retry each on its own.
            log.warning("ingest.batch_rejected", error=str(exc), requests=len(batch))
            for entry in batch:
                await self._commit([entry], link)
            return
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            log.error("ingest.commit_failed", error=str(exc), requests=len(batch))
            await link.discard()
            _fail(batch, exc)
            return
        except BaseException as exc:
            _fail(batch, exc)
            raise
        for entry in batch:
            if not entry.future.done():
                entry.future.set_result(None)

    async def _execute(self, batch: list[_Entry], link: _HeldConnection) -> None:
        # A later write of the same product replaces an earlier one; ON CONFLICT cannot touch
        # a row twice in one statement. Sorted keys give a stable lock order.
        merged: dict[tuple[int, str], _Row] = {}
        for entry in batch:
            for row in entry.rows:
                merged[(row[0], row[1])] = row
        rows = [merged[key] for key in sorted(merged)]
        args = (
            [row[0] for row in rows],
            [row[1] for row in rows],
            [row[2] for row in rows],
            [row[3] for row in rows],
        )
        sql = self._db.queries["ingest_upsert_tag_products"]
        for attempt in range(_RETRIES_ON_CONFLICT):
            try:
                conn = await link.get()
                await conn.execute(sql, *args)
                break
            except _RETRYABLE:
                if attempt == _RETRIES_ON_CONFLICT - 1:
                    raise
        self._batch_rows.observe(len(rows))


class _HeldConnection:
    """A pool connection a writer keeps while it has work.

    Acquiring per commit would cost the pool's reset round trip on every release.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: asyncpg.Connection | None = None

    async def get(self) -> asyncpg.Connection:
        if self._conn is None:
            self._conn = await self._db.pool.acquire(timeout=self._db.config.connect_timeout_s)
        return self._conn

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._db.pool.release(conn)

    async def discard(self) -> None:
        """Drop a connection that failed: the pool opens a fresh one when needed."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()
            await self._db.pool.release(conn)


def _fail(batch: list[_Entry], exc: BaseException) -> None:
    error = IngestUnavailable(f"the tag data could not be stored: {exc}")
    for entry in batch:
        if not entry.future.done():
            entry.future.set_exception(error)
