"""Conversation state on PostgreSQL: aiogram's FSM storage and event isolation, so any instance can
continue any conversation and a deploy loses nothing.

Isolation takes a PostgreSQL advisory lock per conversation key, held on one pooled connection
for the length of the handler: two instances handling updates of one chat never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder, StateType, StorageKey

from app.db import telegram_state as db
from app.db.database import Database
from app.db.keys import advisory_key

_KEYS = DefaultKeyBuilder(prefix="tg", with_destiny=True)


def _state_name(state: StateType) -> str | None:
    return state.state if isinstance(state, State) else state


class PostgresStorage(BaseStorage):
    """FSM state and data in ``telegram_conversations`` (jsonb)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        """Set the conversation's state."""
        await db.set_state(self._database.require_pool(), _KEYS.build(key), _state_name(state))

    async def get_state(self, key: StorageKey) -> str | None:
        """The conversation's state."""
        state, _ = await db.get(self._database.require_pool(), _KEYS.build(key))
        return state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        """Replace the conversation's data."""
        await db.set_data(self._database.require_pool(), _KEYS.build(key), dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        """The conversation's data."""
        _, data = await db.get(self._database.require_pool(), _KEYS.build(key))
        return data

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``data`` into the conversation's data, in one statement."""
        return await db.update_data(self._database.require_pool(), _KEYS.build(key), dict(data))

    async def close(self) -> None:
        """The pool belongs to the database part: nothing to close."""


class AdvisoryLockIsolation(BaseEventIsolation):
    """One handler at a time per conversation, across instances (a session advisory lock)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @contextlib.asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        """Hold the conversation's lock while the handler runs."""
        lock_key = advisory_key("telegram:" + _KEYS.build(key))
        async with self._database.require_pool().acquire() as conn:
            await db.lock_conversation(conn, lock_key)
            try:
                yield
            finally:
                try:
                    await asyncio.shield(db.unlock_conversation(conn, lock_key))
                except BaseException:
                    # A session lock must never stay behind on a pooled connection: drop the
                    # connection (the server releases its locks) rather than hand it back.
                    conn.terminate()
                    raise

    async def close(self) -> None:
        """Nothing to release."""
