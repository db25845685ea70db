"""Conversation state on PostgreSQL: aiogram's FSM storage and event isolation, so any instance can
continue any conversation and a deploy loses nothing.

Isolation takes a PostgreSQL advisory lock per conversation key, held on one pooled connection
for the length of the handler: two instances handling updates of one chat never interleave. The
statement that takes the lock also reads the conversation (after the lock is granted, see
migration 0011), and while the lock is held that copy answers the handler's reads: nobody else
may change the conversation meanwhile, and aiogram reads it at least twice per update (its FSM
middleware, then our access middleware), which would otherwise be two more round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncGenerator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder, StateType, StorageKey

from app.db import telegram_state as db
from app.db.database import Database
from app.db.keys import advisory_key

_KEYS = DefaultKeyBuilder(prefix="tg", with_destiny=True)


@dataclass(slots=True)
class _Held:
    """The conversation whose lock this handler holds, as stored: its key, state and data."""

    key: str
    state: str | None
    data: dict[str, Any]


# Set by the isolation lock for the handler's task (the handler runs inside the lock's context).
_HELD: ContextVar[_Held | None] = ContextVar("telegram_conversation_held", default=None)


def _held(key: str) -> _Held | None:
    held = _HELD.get()
    return held if held is not None and held.key == key else None


def _state_name(state: StateType) -> str | None:
    return state.state if isinstance(state, State) else state


class PostgresStorage(BaseStorage):
    """FSM state and data in ``telegram_conversations`` (jsonb); writes go to the database at once."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        """Set the conversation's state."""
        name, built = _state_name(state), _KEYS.build(key)
        await db.set_state(self._database.require_pool(), built, name)
        if (held := _held(built)) is not None:
            held.state = name

    async def get_state(self, key: StorageKey) -> str | None:
        """The conversation's state."""
        built = _KEYS.build(key)
        if (held := _held(built)) is not None:
            return held.state
        state, _ = await db.get(self._database.require_pool(), built)
        return state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        """Replace the conversation's data."""
        built = _KEYS.build(key)
        await db.set_data(self._database.require_pool(), built, dict(data))
        if (held := _held(built)) is not None:
            held.data = copy.deepcopy(dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        """The conversation's data (a copy: changing it changes nothing until it is set)."""
        built = _KEYS.build(key)
        if (held := _held(built)) is not None:
            return copy.deepcopy(held.data)
        _, data = await db.get(self._database.require_pool(), built)
        return data

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``data`` into the conversation's data, in one statement."""
        built = _KEYS.build(key)
        merged = await db.update_data(self._database.require_pool(), built, dict(data))
        if (held := _held(built)) is not None:
            held.data = copy.deepcopy(merged)
        return merged

    async def close(self) -> None:
        """The pool belongs to the database part: nothing to close."""


class AdvisoryLockIsolation(BaseEventIsolation):
    """One handler at a time per conversation, across instances (a session advisory lock)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @contextlib.asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        """Hold the conversation's lock while the handler runs."""
        built = _KEYS.build(key)
        lock_key = advisory_key("telegram:" + built)
        async with self._database.require_pool().acquire() as conn:
            state, data = await db.lock_and_read(conn, lock_key, built)
            token = _HELD.set(_Held(built, state, data))
            try:
                yield
            finally:
                _HELD.reset(token)
                try:
                    await asyncio.shield(db.unlock_conversation(conn, lock_key))
                except BaseException:
                    # A session lock must never stay behind on a pooled connection: drop the
                    # connection (the server releases its locks) rather than hand it back.
                    conn.terminate()
                    raise

    async def close(self) -> None:
        """Nothing to release."""
