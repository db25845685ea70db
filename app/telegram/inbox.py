"""The update inbox: webhook requests and polled batches are stored here before Telegram is told
we have them.

Webhook requests go through a group commit: updates arriving together share one INSERT and one
commit. Storing wakes this instance's workers in process (no NOTIFY: see app/db/telegram_updates.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.db import telegram_updates as db
from app.db.batching import GroupCommitter, Resolve
from app.db.connection import Executor
from app.db.database import Database
from app.logs import get_logger
from app.metrics import TELEGRAM_UPDATES
from app.telegram.updates import chat_of, update_id_of

log = get_logger(__name__)

_STORE_TIMEOUT_S = 5.0

Row = tuple[int, int | None, dict[str, Any]]


class UpdateInbox:
    """Stores raw updates, once each (a duplicate ``update_id`` is acknowledged, not stored)."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._writer: GroupCommitter[Row, bool] = GroupCommitter(
            "telegram_inbox", self._write, timeout=_STORE_TIMEOUT_S
        )
        self.stored = asyncio.Event()  # set when updates were stored here: this instance's workers wake

    def start(self) -> None:
        """Start the group-commit writer (webhook requests)."""
        self._writer.start()

    async def stop(self) -> None:
        """Stop it; webhook requests still waiting fail (and Telegram sends them again)."""
        await self._writer.stop()

    async def receive(self, update: dict[str, Any]) -> bool:
        """Store one webhook update (group-committed); True when it was new. Raises NotAnUpdate,
        or a database error while the database is away."""
        row = (update_id_of(update), chat_of(update), update)
        return await self._writer.submit(row)

    async def store(self, updates: list[dict[str, Any]], conn: Executor | None = None) -> int:
        """Store a batch (polling, inside the caller's transaction); how many were new."""
        rows = [(update_id_of(update), chat_of(update), update) for update in updates]
        return len(await self._insert(conn or self._database.require_pool(), rows))

    async def _write(self, batch: list[Row], resolve: Resolve[bool]) -> None:
        new = set(await self._insert(self._database.require_pool(), batch))
        resolve([row[0] in new for row in batch])

    async def _insert(self, conn: Executor, rows: list[Row]) -> list[int]:
        new = await db.store(conn, rows)
        if new:
            self.stored.set()
        duplicates = len(rows) - len(new)
        TELEGRAM_UPDATES.labels("stored").inc(len(new))
        if duplicates:
            TELEGRAM_UPDATES.labels("duplicate").inc(duplicates)
        log.debug("telegram.update_stored", stored=len(new), duplicates=duplicates)
        return new
