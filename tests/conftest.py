"""Shared fixtures: one real PostgreSQL cluster per test run, a fresh database per test.

The cluster is started through the same embedded launcher the daemon uses. The schema is built
once in a template database; each test that touches data gets its own copy
(``CREATE DATABASE ... TEMPLATE``), so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import uvloop

from verifier.config import DatabaseConfig
from verifier.database import Database
from verifier.embedded_pg import EmbeddedPostgres
from verifier.migrations import migrate

TEMPLATE = "cv_template"
_counter = itertools.count()


# Tests run on uvloop, like the daemon. A process-wide policy (rather than a per-test loop
# factory) keeps one session loop shared by async fixtures used from sync tests too.
asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[EmbeddedPostgres]:
    """A private PostgreSQL cluster for the whole run (durability off: tests only)."""
    root = Path(tempfile.mkdtemp(prefix="cv-test-"))
    root.chmod(0o755)
    cluster = EmbeddedPostgres(
        root,
        database="postgres",
        settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
    )
    cluster.acquire()
    yield cluster
    cluster.release()


@pytest.fixture(scope="session")
async def template_dsn(pg_cluster: EmbeddedPostgres) -> str:
    """A migrated template database."""
    admin = await asyncpg.connect(pg_cluster.dsn("postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        await admin.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(pg_cluster.dsn(TEMPLATE))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return pg_cluster.dsn(TEMPLATE)


@pytest.fixture
async def db_dsn(pg_cluster: EmbeddedPostgres, template_dsn: str) -> AsyncIterator[str]:
    """The DSN of a fresh, migrated database of this test's own."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(pg_cluster.dsn("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        yield pg_cluster.dsn(name)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def database(db_dsn: str, tmp_path: Path) -> AsyncIterator[Database]:
    """An open Database (pool) on this test's own database."""
    db = Database(DatabaseConfig(dsn=db_dsn, pool_min_size=1, pool_max_size=10), tmp_path)
    await db.open()
    yield db
    await db.close()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Print a failure as soon as it happens (a later hang must not hide it)."""
    if report.failed:
        sys.__stderr__.write(f"\n=== FAILED {report.nodeid} ({report.when})\n{report.longrepr}\n")
