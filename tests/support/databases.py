"""A real PostgreSQL for the test suite: one server per session, a fresh database per test.

The embedded server runs with durability turned off (fsync, synchronous_commit,
full_page_writes), which tests do not need; the schema is built once into a
template database, and each test gets a copy of it (``CREATE DATABASE ... TEMPLATE``,
a few tens of milliseconds). ``TEST_DATABASE_URL`` points the suite at an
external server instead.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from app.db.database import Database
from app.db.migrations import apply_migrations

TEMPLATE_NAME = "kg_test_template"
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


async def connected_database(dsn: str, pool_max_size: int = 4) -> Database:
    """Our own ``Database`` part on ``dsn``, connected (the caller closes it)."""
    database = Database(dsn, pool_max_size=pool_max_size)
    database.start()
    assert await database.wait_ready(15)
    return database


def with_database(dsn: str, database: str) -> str:
    """``dsn`` pointing at ``database`` instead of its own."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@dataclass
class TestServer:
    """A PostgreSQL server the tests may create and drop databases on."""

    admin_dsn: str

    async def create_template(self) -> None:
        """(Re)build the migrated template database."""
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_NAME}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{TEMPLATE_NAME}"')
        finally:
            await conn.close()
        conn = await asyncpg.connect(with_database(self.admin_dsn, TEMPLATE_NAME))
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()

    async def create_database(self, *, migrated: bool = True) -> str:
        """A new database (a copy of the template, or empty); returns its DSN."""
        name = f"kg_test_{uuid.uuid4().hex[:12]}"
        template = f' TEMPLATE "{TEMPLATE_NAME}"' if migrated else ""
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"{template}')
        finally:
            await conn.close()
        return with_database(self.admin_dsn, name)

    async def drop_database(self, dsn: str) -> None:
        """Drop a database made by :meth:`create_database`, even with sessions still open."""
        name = urlsplit(dsn).path.lstrip("/")
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def run(coro):  # type: ignore[no-untyped-def]
    """Run a coroutine from a synchronous (session-scoped) fixture."""
    return asyncio.run(coro)
