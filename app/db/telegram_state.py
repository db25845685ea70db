"""SQL of the bot's shared state: conversations (aiogram's FSM storage) and the polling offset.

Both live in PostgreSQL so any instance can continue any conversation, and a new leader resumes
``getUpdates`` exactly where the old one stopped.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from app.db.connection import Conn, Executor
from app.db.jsonb import to_jsonb

_SET_STATE = """
INSERT INTO telegram_conversations (key, state) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state, updated_at = now()
"""
_SET_DATA = """
INSERT INTO telegram_conversations (key, data) VALUES ($1, $2::jsonb)
ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data, updated_at = now()
"""
_UPDATE_DATA = """
INSERT INTO telegram_conversations (key, data) VALUES ($1, $2::jsonb)
ON CONFLICT (key) DO UPDATE SET data = telegram_conversations.data || EXCLUDED.data, updated_at = now()
RETURNING data
"""
_GET = "SELECT state, data FROM telegram_conversations WHERE key = $1"
# See migration 0011: the read in it happens after the lock is granted, with a fresh snapshot.
_LOCK_AND_READ = "SELECT locked, state, data FROM telegram_lock_conversation($1, $2)"

_GET_OFFSET = "SELECT next_offset FROM telegram_poll_offset WHERE bot_id = $1"
_SET_OFFSET = """
INSERT INTO telegram_poll_offset (bot_id, next_offset) VALUES ($1, $2)
ON CONFLICT (bot_id) DO UPDATE
SET next_offset = greatest(telegram_poll_offset.next_offset, EXCLUDED.next_offset), updated_at = now()
"""


async def set_state(conn: Executor, key: str, state: str | None) -> None:
    """The conversation's FSM state (None clears it)."""
    await conn.execute(_SET_STATE, key, state)


async def set_data(conn: Executor, key: str, data: dict[str, Any]) -> None:
    """Replace the conversation's data."""
    await conn.execute(_SET_DATA, key, to_jsonb(data))


async def update_data(conn: Executor, key: str, data: dict[str, Any]) -> dict[str, Any]:
    """Merge ``data`` into the conversation's data (one statement, so concurrent merges both land)."""
    merged = await conn.fetchval(_UPDATE_DATA, key, to_jsonb(data))
    return dict(merged or {})


async def get(conn: Executor, key: str) -> tuple[str | None, dict[str, Any]]:
    """The conversation's state and data (None and {} when it has none)."""
    row = await conn.fetchrow(_GET, key)
    if row is None:
        return None, {}
    return row["state"], dict(row["data"] or {})


async def poll_offset(conn: Executor, bot_id: int) -> int | None:
    """The ``offset`` the next ``getUpdates`` asks for, or None before the first batch."""
    value = await conn.fetchval(_GET_OFFSET, bot_id)
    return int(value) if value is not None else None


async def advance_poll_offset(conn: Executor, bot_id: int, next_offset: int) -> None:
    """Move the offset forward (never back), once the updates before it are stored."""
    await conn.execute(_SET_OFFSET, bot_id, next_offset)


async def lock_and_read(
    conn: Conn, lock_key: int, key: str, timeout_s: float = 30.0
) -> tuple[str | None, dict[str, Any]]:
    """Take the conversation's session lock, waiting at most ``timeout_s`` (then TimeoutError), and
    return its state and data as they are once the lock is held."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = await conn.fetchrow(_LOCK_AND_READ, lock_key, key)
        assert row is not None
        if row["locked"]:
            return row["state"], dict(row["data"] or {})
        if time.monotonic() > deadline:
            raise TimeoutError("another instance holds this conversation")
        await asyncio.sleep(0.05)


async def unlock_conversation(conn: Conn, key: int) -> None:
    """Release the conversation's session lock."""
    await conn.execute("SELECT pg_advisory_unlock($1)", key)
