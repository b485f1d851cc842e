"""Group commit of tag observations: many concurrent requests, few transactions.

Each request hands its validated rows to :meth:`IngestWriter.write` (or ``submit``) and waits.
A writer task takes everything queued (up to ``max_rows_per_commit``) and stores it with one
``INSERT ... SELECT FROM unnest`` statement, then wakes every request whose rows were in it.
While a commit is in flight the next one fills up, so the number of transactions per second
stays bounded by the database's commit latency, not by the request rate, and rows per commit
grow with load. Rows travel as one text of JSON lines per request: one parameter value per
request rather than four per row, whose encoding in the driver cost more than the rest of the
writer. The statement parses them, keeps the last row of each product and writes in key order.

There is one writer by default; with several, rows are sharded by (merchant, product). Either
way writes of one product are committed in the order they were handed in (the last request
wins), and concurrent writers never touch the same row, so they cannot deadlock each other.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Mapping, Sequence
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
# A writer idle this long gives its connection back to the pool.
IDLE_HOLD_S = 0.1
# Measured on 2 cores: one writer makes the biggest commits and uses the least CPU per row
# (in the application and in PostgreSQL); more pay off only with a database on spare cores.
DEFAULT_WRITERS = 1
_RETRIES_ON_CONFLICT = 3
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
# Errors that say something about the rows rather than about the database being reachable.
_ROW_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


class IngestUnavailable(CatalogVerifierError):
    """Raised by :meth:`IngestWriter.write` when the rows could not be committed."""


@dataclass(slots=True)
class _Entry:
    merchant_id: int
    rows: int
    lines: str  # the canonical products as JSON, one per line
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        """Start the writer tasks (``write`` also starts them on first use)."""
        self._ensure_started()

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        # Looking the loop up costs a system call (getpid) per request: remember it.
        if self._loop is not None:
            return self._loop
        self._loop = asyncio.get_running_loop()
        self._wakeups = [asyncio.Event() for _ in range(self._shards)]
        self._tasks = [
            asyncio.create_task(self._run_shard(shard), name=f"ingest-writer-{shard}")
            for shard in range(self._shards)
        ]
        return self._loop

    async def write(self, merchant_id: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Durably store canonical product dicts of one merchant; returns after the commit.

        Raises :class:`IngestUnavailable` when the database refused or could not be reached.
        Within ``rows`` a later duplicate product_id wins.
        """
        await self.submit(merchant_id, rows)

    def submit(self, merchant_id: int, rows: Sequence[Mapping[str, Any]]) -> Awaitable[None]:
        """Queue rows as :meth:`write` does; awaiting the result waits for their commit.

        The rows are encoded at once, so the caller need not keep them while it waits.
        """
        if self._closed:
            raise IngestUnavailable("the ingest writer is shutting down")
        loop = self._ensure_started()
        shards = self._shards
        by_shard: dict[int, list[Mapping[str, Any]]] = {0: list(rows)}
        if shards > 1:
            by_shard = {}
            for row in rows:
                # All writes of one product go to one writer, which commits them in order.
                shard = hash((merchant_id, row["product_id"])) % shards
                by_shard.setdefault(shard, []).append(row)
        futures = []
        for shard, shard_rows in by_shard.items():
            if not shard_rows:
                continue
            # orjson escapes control characters: a newline never occurs inside a product's JSON.
            lines = b"\n".join([orjson.dumps(row) for row in shard_rows]).decode()
            future: asyncio.Future[None] = loop.create_future()
            self._queues[shard].append(_Entry(merchant_id, len(shard_rows), lines, future))
            self._wakeups[shard].set()
            futures.append(future)
        return futures[0] if len(futures) == 1 else _all_committed(futures)

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
                    if self._closed:
                        return
                    # No await between the look at the queue and clear(): no lost wake-up.
                    wakeup.clear()
                    if not link.held:
                        await wakeup.wait()
                    elif not await _woken(wakeup, IDLE_HOLD_S):
                        # Idle for a while: the connection goes back to the pool. A busy
                        # listener is idle for milliseconds between commits; giving the
                        # connection back then would cost the pool's reset round trip.
                        await link.release()
                    continue
                batch = [queue.popleft()]
                rows = batch[0].rows
                while queue and rows + queue[0].rows <= self._max_rows:
                    entry = queue.popleft()
                    rows += entry.rows
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
        except Exception as exc:
            # Whatever else went wrong (a pool error, a bug): these requests get 503 and the
            # writer keeps serving the next ones instead of leaving them waiting forever.
            log.exception("ingest.commit_crashed", requests=len(batch))
            await link.discard()
            _fail(batch, exc)
            return
        except BaseException as exc:
            _fail(batch, exc)
            raise
        self._accepted.inc(sum(entry.rows for entry in batch))
        for entry in batch:
            if not entry.future.done():
                entry.future.set_result(None)

    async def _execute(self, batch: list[_Entry], link: _HeldConnection) -> None:
        merchant_ids = [entry.merchant_id for entry in batch]
        lines = [entry.lines for entry in batch]
        sql = self._db.queries["ingest_upsert_tag_products"]
        for attempt in range(_RETRIES_ON_CONFLICT):
            try:
                conn = await link.get()
                await conn.execute(sql, merchant_ids, lines)
                break
            except _RETRYABLE:
                if attempt == _RETRIES_ON_CONFLICT - 1:
                    raise
        self._batch_rows.observe(sum(entry.rows for entry in batch))


async def _all_committed(futures: list[asyncio.Future[None]]) -> None:
    # Wait for every shard, so that no failure is left unretrieved.
    for outcome in await asyncio.gather(*futures, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


async def _woken(wakeup: asyncio.Event, timeout_s: float) -> bool:
    """Whether the event was set within timeout_s."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await wakeup.wait()
            return True
    return False


class _HeldConnection:
    """A pool connection a writer keeps while it has work, and a moment after.

    Acquiring per commit would cost the pool's reset round trip on every release. The
    connection goes back to the pool it came from, even once the database is closing (the
    pool's close waits for it).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._held: tuple[asyncpg.Pool, asyncpg.Connection] | None = None

    @property
    def held(self) -> bool:
        """Whether a connection is held."""
        return self._held is not None

    async def get(self) -> asyncpg.Connection:
        if self._held is None:
            pool = self._db.pool
            conn = await pool.acquire(timeout=self._db.config.connect_timeout_s)
            self._held = (pool, conn)
        return self._held[1]

    async def release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            await held[0].release(held[1])

    async def discard(self) -> None:
        """Drop a connection that failed: the pool opens a fresh one when needed."""
        held, self._held = self._held, None
        if held is not None:
            held[1].terminate()
            await held[0].release(held[1])


def _fail(batch: list[_Entry], exc: BaseException) -> None:
    error = IngestUnavailable(f"the tag data could not be stored: {exc}")
    for entry in batch:
        if not entry.future.done():
            entry.future.set_exception(error)
