"""SQL of the ``settings`` table: small values shared by every instance."""

from __future__ import annotations

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
