"""Numbered ``.sql`` migrations, applied at startup in one transaction under an advisory lock.

Two instances starting together serialise on the lock; the second finds every
version already recorded and applies nothing. Applied files are never edited:
a change is a new numbered file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from app.db.connection import Conn
from app.db.keys import advisory_key
from app.logs import get_logger

log = get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_KEY = advisory_key("kie_gateway.migrations")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
_TAKE_LOCK = "SELECT pg_advisory_xact_lock($1)"
_APPLIED = "SELECT version FROM schema_migrations"
_RECORD = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"


class MigrationError(RuntimeError):
    """A migration file failed; startup must stop."""


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Read every migration file, ordered by version; reject misnamed or duplicate ones."""
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_snake_case.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"{path.name}: version {version} is used twice")
        migrations[version] = Migration(version, path.name, path.read_text(encoding="utf-8"))
    return [migrations[v] for v in sorted(migrations)]


async def apply_migrations(conn: Conn, migrations: list[Migration] | None = None) -> list[str]:
    """Apply the migrations not yet recorded; return the names applied."""
    migrations = load_migrations() if migrations is None else migrations
    applied_now: list[str] = []
    async with conn.transaction():
        await conn.execute(_TAKE_LOCK, _LOCK_KEY)
        await conn.execute(_CREATE_TABLE)
        done = {row["version"] for row in await conn.fetch(_APPLIED)}
        for migration in migrations:
            if migration.version in done:
                continue
            try:
                await conn.execute(migration.sql)
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
            await conn.execute(_RECORD, migration.version, migration.name)
            applied_now.append(migration.name)
    if applied_now:
        log.info("db.migrated", applied=applied_now)
    return applied_now
