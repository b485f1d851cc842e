"""The PostgreSQL connection pool, the embedded cluster when no DSN is set, and named queries.

All SQL lives in ``sql/``: migrations in ``NNNN_*.sql`` and named statements in
``queries_*.sql``, as blocks introduced by ``-- name --`` and a one-line description.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson
import structlog

from verifier.config import DatabaseConfig
from verifier.embedded_pg import EmbeddedPostgres
from verifier.exceptions import DatabaseError

log = structlog.get_logger(__name__)

_BLOCK_RE = re.compile(r"^-- ([a-z0-9_]+) --$", re.MULTILINE)


def load_queries() -> dict[str, str]:
    """Every named query block of ``sql/queries_*.sql``."""
    queries: dict[str, str] = {}
    files = sorted(
        (e for e in resources.files("verifier.sql").iterdir() if e.name.startswith("queries")),
        key=lambda e: e.name,
    )
    for entry in files:
        text = entry.read_text("utf-8")
        parts = _BLOCK_RE.split(text)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in queries:
                raise DatabaseError(f"query {name!r} is defined twice in sql/")
            # drop the description comment lines that follow the name
            lines = [ln for ln in body.strip().splitlines() if not ln.startswith("--")]
            queries[name] = "\n".join(lines).strip()
    return queries


# jsonb's binary wire format: a version byte, then the JSON text (UTF-8); json's is the text.
_JSONB_VERSION = b"\x01"


def _encode_jsonb(value: Any) -> bytes:
    return _JSONB_VERSION + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    if data[:1] != _JSONB_VERSION:
        raise ValueError(f"unsupported jsonb format version {data[:1]!r}")
    return orjson.loads(memoryview(data)[1:])


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection set-up: JSON codecs backed by orjson, in the binary format.

    The binary format carries the JSON as UTF-8 bytes, which orjson reads and writes directly;
    the text format would decode every document to a str and encode it back.
    """
    await conn.set_type_codec(
        "json", encoder=orjson.dumps, decoder=orjson.loads, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )


def describe_dsn(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return dsn


async def ensure_database(dsn: str, timeout_s: float) -> None:
    """Create the DSN's database if it does not exist (embedded cluster only)."""
    name = urlsplit(dsn).path.lstrip("/")
    admin_dsn = dsn.replace(f"/{name}?", "/postgres?", 1)
    conn = await asyncpg.connect(admin_dsn, timeout=timeout_s)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # another process may create it concurrently
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


class Database:
    """Owns the asyncpg pool and, when ``dsn`` is empty, the embedded cluster's lifetime."""

    def __init__(self, config: DatabaseConfig, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.embedded: EmbeddedPostgres | None = None
        self.dsn = config.dsn
        self._pool: asyncpg.Pool | None = None
        self.queries: Mapping[str, str] = load_queries()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise DatabaseError("the database is not open")
        return self._pool

    async def open(self) -> None:
        """Start the embedded cluster if needed and open the pool."""
        if not self.dsn:
            self.embedded = EmbeddedPostgres(self.data_dir)
            self.dsn = await asyncio.to_thread(self.embedded.acquire)
        try:
            if self.embedded is not None:
                await ensure_database(self.dsn, self.config.connect_timeout_s)
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.config.pool_min_size,
                max_size=self.config.pool_max_size,
                timeout=self.config.connect_timeout_s,
                init=init_connection,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            await self._release_embedded()
            raise DatabaseError(
                f"cannot connect to the database {describe_dsn(self.dsn)}: {exc}"
            ) from exc

    async def close(self) -> None:
        """Close the pool and let go of the embedded cluster."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                # A connection still held by a stuck task must not hold up a shutdown forever.
                await asyncio.wait_for(pool.close(), timeout=self.config.connect_timeout_s)
            except TimeoutError:
                log.warning("database.close_timeout", action="terminating connections")
                pool.terminate()
        await self._release_embedded()

    async def _release_embedded(self) -> None:
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.release)

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
