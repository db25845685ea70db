"""SQL of the ``settings`` table: small values shared by every instance."""

from __future__ import annotations

import secrets

import asyncpg

_INSERT_IF_MISSING = "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
_READ = "SELECT value FROM settings WHERE key = $1"


async def get_or_create(pool: asyncpg.Pool, key: str, candidate: str) -> str:
    """The stored value of ``key``; ``candidate`` becomes it if none exists (first writer wins)."""
    async with pool.acquire() as conn:
        await conn.execute(_INSERT_IF_MISSING, key, candidate)
        value = await conn.fetchval(_READ, key)
    assert value is not None
    return str(value)


class SharedSecret:
    """A secret every instance must agree on: configured, or generated once and kept in ``settings``."""

    def __init__(self, name: str, configured: str | None) -> None:
        self.name = name
        self.value: str | None = configured

    async def load(self, pool: asyncpg.Pool) -> str:
        """The secret (read, or created by the first instance to ask, when it is not configured)."""
        if self.value is None:
            self.value = await get_or_create(pool, self.name, secrets.token_urlsafe(32))
        return self.value
