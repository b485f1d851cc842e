"""Schema migrations: ordered ``NNNN_name.sql`` files in ``sql/``, applied once each.

Migrations run in one transaction under an advisory lock, so daemons starting together do not
race, and each applied file is recorded with its sha256: an applied file that was edited since
makes startup fail with a clear error instead of silently diverging.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

from verifier.exceptions import MigrationError

log = structlog.get_logger(__name__)

# pg_advisory_xact_lock key: the bytes "cvmigrat" as a signed 64-bit integer.
_LOCK_KEY = int.from_bytes(b"cvmigrat", "big", signed=True)
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    sha256      text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """All migration files shipped with the package, in order."""
    found = []
    for entry in resources.files("verifier.sql").iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in sql/: {versions}")
    return found


async def applied_versions(conn: asyncpg.Connection) -> dict[int, str]:
    """Version -> sha256 of the migrations applied to this database ({} if none)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, sha256 FROM schema_migrations")
    return {row["version"]: row["sha256"] for row in rows}


def _check_edited(migrations: list[Migration], applied: dict[int, str]) -> None:
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.sha256:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name}.sql was edited after it was "
                "applied (checksum differs); restore the file and add a new migration instead"
            )


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Apply pending migrations; return the versions applied now."""
    migrations = load_migrations() if migrations is None else migrations
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            await conn.execute(_CREATE_TABLE)
            applied = await applied_versions(conn)
            _check_edited(migrations, applied)
            done = []
            for migration in migrations:
                if migration.version in applied:
                    continue
                log.info("migration.apply", version=migration.version, name=migration.name)
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.sha256,
                )
                done.append(migration.version)
            return done
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"applying migrations failed: {exc}") from exc


async def is_up_to_date(conn: asyncpg.Connection) -> bool:
    """True when every shipped migration is applied with a matching checksum."""
    applied = await applied_versions(conn)
    return all(applied.get(m.version) == m.sha256 for m in load_migrations())
