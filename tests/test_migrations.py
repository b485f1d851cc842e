"""Migrations: applied once, safe when two processes start together, edits detected."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest

from verifier.exceptions import MigrationError
from verifier.migrations import Migration, applied_versions, is_up_to_date, load_migrations, migrate


@pytest.fixture
async def empty_dsn(pg_cluster, db_dsn: str) -> str:  # type: ignore[no-untyped-def]
    """A database with no schema at all."""
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    return db_dsn


def test_migration_files_are_ordered_and_named() -> None:
    """Shipped migrations load in version order with unique versions."""
    migrations = load_migrations()
    assert migrations and migrations[0].version == 1
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})


async def test_migrate_applies_everything_once(empty_dsn: str) -> None:
    """The first run applies all files and records checksums; the second applies nothing."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        first = await migrate(conn)
        second = await migrate(conn)
        recorded = await applied_versions(conn)
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
    finally:
        await conn.close()
    assert first == [m.version for m in load_migrations()]
    assert second == []
    assert recorded == {m.version: m.sha256 for m in load_migrations()}
    assert {"merchants", "api_keys", "products", "verification_requests", "sweeps"} <= tables


async def test_concurrent_migrations_do_not_race(empty_dsn: str) -> None:
    """Several processes migrating at once: the advisory lock lets exactly one apply each file."""
    conns = [await asyncpg.connect(empty_dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
    finally:
        for conn in conns:
            await conn.close()
    applied = [v for result in results for v in result]
    assert sorted(applied) == [m.version for m in load_migrations()]


async def test_edited_applied_migration_is_refused(empty_dsn: str) -> None:
    """A file whose checksum differs from the recorded one stops startup with a clear error."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn)
        edited = [
            dataclasses.replace(m, sql=m.sql + "\n-- edited\n") if m.version == 1 else m
            for m in load_migrations()
        ]
        with pytest.raises(MigrationError, match="was edited after it was applied"):
            await migrate(conn, edited)
        assert not await _up_to_date_with(conn, edited)
    finally:
        await conn.close()


async def _up_to_date_with(conn: asyncpg.Connection, migrations: list[Migration]) -> bool:
    applied = await applied_versions(conn)
    return all(applied.get(m.version) == m.sha256 for m in migrations)


async def test_failed_migration_rolls_back_completely(empty_dsn: str) -> None:
    """A broken migration leaves no partial schema and no record."""
    broken = [*load_migrations(), Migration(9999, "broken", "CREATE TABLE x (a int); SELECT 1/0;")]
    conn = await asyncpg.connect(empty_dsn)
    try:
        with pytest.raises(MigrationError, match="division by zero"):
            await migrate(conn, broken)
        assert await applied_versions(conn) == {}
        assert await conn.fetchval("SELECT to_regclass('x')") is None
        assert not await is_up_to_date(conn)
    finally:
        await conn.close()
